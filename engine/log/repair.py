"""Repairing a chain that csat itself broke (``csat repair``; ``events.md`` §6).

A fault of csat's own can leave rows it wrote without a chain hash (one
connection used by two threads at once did): ``csat verify`` then names the
first of them, and every read and ``csat rebuild`` stop there. :func:`repair`
chains such rows again — only when every row from the first break on whose
link does not hold is one csat wrote (:func:`csat.engine.log.chain.damage_from`)
— and records what it did as one ``chain_repaired`` event, all in one write
transaction under the store's write lock.

A row changed outside csat (a hash that does not match, a missing position, a
row that does not decode, a key or bytes that are not its event's) keeps the
refusal: nothing is written, and the store is restored from a backup instead.
What the repair cannot tell: a row forged to be exactly what csat writes, hash
left out — so ``csat verify`` lists the rows and ``csat log`` shows them before
anyone confirms, and a head published before the break still proves what came
before it.
"""
from __future__ import annotations

from typing import Any

import msgspec

from . import chain
from ..errors import StoreError
from .events import ChainRepaired, natural_key
from .store import Recorded, Store, now

REASON = ("rows csat wrote without a chain hash (each decodes to the bytes csat writes for its event, under "
          "the event's key and type), chained again as the append chains")
_DECODE = msgspec.json.Decoder(Recorded).decode


def repair(store: Store, *, actor: str | None = None, dry_run: bool = False) -> dict[str, Any]:
    """Chain again the rows csat wrote without a chain hash, from the first break on, and record
    that as a ``chain_repaired`` event (``actor``: the account doing it, kept with the event).

    Returns ``repaired`` (rows chained; 0 when the chain holds), ``ranges`` ([first, last]
    positions), ``from_position`` and ``to_position``, ``event`` (the recorded event's id)
    and ``position`` (where it was recorded), ``head_position`` and ``head_hash`` (the log's
    head after it), and ``dry_run``. With ``dry_run`` nothing is written: the result says what
    would be chained (no ``event`` then).

    :raises StoreError: a row from the break on was not written by csat, or was changed: one
        line naming its position and why; nothing is written.
    """
    store.begin_write()
    try:
        found = chain.verify(store.conn, _DECODE)  # inside the lock: nothing moves until the commit
        if found.broken is None:
            store.rollback()
            return {"repaired": 0, "ranges": [], "dry_run": dry_run, "head_position": found.head_position,
                    "head_hash": found.head_hash}
        damage = found.damage
        if damage is None or not damage.repairable:
            bad = damage.unrepairable if damage is not None and damage.unrepairable else found.broken
            raise StoreError(f"cannot repair the chain at position {bad.position}: {bad.problem}; only rows csat "
                             "wrote without a chain hash are chained again, so the log keeps its refusal (restore "
                             "it from a backup); nothing written")
        ranges = chain.rechain(store.conn, _DECODE, found.broken.position)
        rows = sum(last - first + 1 for first, last in ranges)
        done: dict[str, Any] = {"repaired": rows, "ranges": ranges, "from_position": ranges[0][0],
                                "to_position": ranges[-1][1], "dry_run": dry_run}
        if dry_run:
            store.rollback()
            return done
        position = store.max_position() + 1
        event = ChainRepaired(id=f"repair-{position}", from_position=ranges[0][0], to_position=ranges[-1][1],
                              rows=rows, reason=REASON, ranges=ranges)
        store.append([Recorded(now(), event, actor)], [natural_key(event)])
        store.commit(check=lambda: _holds(store))
    except BaseException:
        store.rollback()
        raise
    head_position, head_hash = store.head()
    return {**done, "event": event.id, "position": position, "head_position": head_position,
            "head_hash": head_hash}


def _holds(store: Store) -> None:
    """The whole chain holds, the repair's event with it (checked before the commit)."""
    again = chain.verify(store.conn, _DECODE)
    if again.broken is not None:
        raise StoreError(f"the chain still breaks after the repair, at position {again.broken.position}: "
                         f"{again.broken.problem}; nothing written")
