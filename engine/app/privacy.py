"""Personal data on the way in: sealed, anonymous where the round says so, compared when re-sent.

One :class:`IngestPrivacy` per ingest call (``docs/events.md`` §7):

- each event's personal fields are sealed under their owner's key (:mod:`csat.engine.log.personal`;
  a response's texts under its rater unit's, unless the rater is of kind person) before they reach the log — the key store commits the keys first, so no event is ever logged
  under a key that was not kept;
- a response to an anonymous round names no respondent (refused with one line); its recording
  time is its day only, and the anonymous responses reach the log in shuffled batches
  (:mod:`csat.engine.app.anonymous`) — every other event keeps its precise time;
- an id that contains its respondent's name is warned about (ids are never sealed);
- a re-sent event is compared with the stored one opened: equal is "already present", different
  a conflict; a field whose key was destroyed (erased) matches anything and is not taken in again.
"""
from __future__ import annotations

import random
from typing import Any

import msgspec

from ..log.events import Event, ResponseRecorded, RoundClosed, RoundOpened, UnitDeclared, same_event
from ..log.personal import Opener, Sealer, same_opened
from ..read.cases import ROUND_SPEC

_SHUFFLE = random.SystemRandom()


def erased_keys(conn: Any) -> set[str]:
    """The key ids destroyed by the erasures in the log (as applied to the read models)."""
    return {k for (k,) in conn.execute("SELECT key FROM rm_erasures")}


def anonymous_months(conn: Any) -> dict[tuple[str, str], str]:
    """(rule set, month) → the id of an anonymous round of it that is still open."""
    closed = {r for (r,) in conn.execute("SELECT round FROM rm_rounds WHERE kind = 'closed'")}
    out = {}
    for rid, spec in conn.execute("SELECT round, spec FROM rm_rounds WHERE kind = 'opened'"):
        r = ROUND_SPEC.decode(spec)
        if r.anonymous and rid not in closed:
            out[(r.ruleset, r.period)] = rid
    return out


class IngestPrivacy:
    """The personal-data side of one ingest call.

    :param store: the store (its key store and read models).
    :param dry_run: nothing is stored: nothing is sealed, no key is made.
    """

    def __init__(self, store: Any, dry_run: bool = False):
        self.store = store
        self.dry_run = dry_run
        self._sealer: Sealer | None = None
        self._opener: Opener | None = None
        self.anonymous = anonymous_months(store.conn)
        self.warnings: list[str] = []
        self._kinds: dict[str, str] | None = None  # unit -> its kind (the log's, then this call's)

    # -- checks -----------------------------------------------------------------------

    def note(self, ev: Event) -> None:
        """An event of this call (one that opens or closes a round, declares a unit's kind)."""
        if isinstance(ev, UnitDeclared) and ev.kind is not None:
            self._unit_kinds()[ev.id] = ev.kind
        if isinstance(ev, RoundOpened) and ev.anonymous:
            self.anonymous[(ev.ruleset, ev.period)] = ev.id
        elif isinstance(ev, RoundClosed):
            self.anonymous = {k: r for k, r in self.anonymous.items() if r != ev.round}

    def problems(self, ev: ResponseRecorded) -> list[str]:
        round_id = self.anonymous.get((ev.ruleset, ev.period))
        if round_id is not None and ev.respondent is not None:
            return [f"field `respondent`: round {round_id!r} is anonymous: its responses name no respondent "
                    "(leave the field out)"]
        return []

    def warn(self, where: str, ev: ResponseRecorded) -> None:
        who = (ev.respondent or "").strip()
        if len(who) >= 2 and who.casefold() in ev.id.casefold():
            self.warnings.append(f"{where}: id {ev.id!r} contains its respondent's name: ids are never sealed "
                                 "(give responses ids that name no one)")

    def is_anonymous(self, ev: Event) -> bool:
        return isinstance(ev, ResponseRecorded) and (ev.ruleset, ev.period) in self.anonymous

    # -- sealing and comparing ----------------------------------------------------------

    def _unit_kinds(self) -> dict[str, str]:
        if self._kinds is None:  # (the read models are current inside the ingest's transaction)
            self._kinds = {u: k for u, k in self.store.conn.execute(
                "SELECT id, kind FROM rm_units WHERE kind IS NOT NULL ORDER BY position")}
        return self._kinds

    def is_person(self, unit: str) -> bool:
        """Is ``unit`` of kind person (a rater that answers as a private person)?"""
        return self._unit_kinds().get(unit) == "person"

    def seal(self, ev: Event, target: ResponseRecorded | None = None, person_unit: bool = False) -> Event:
        if self.dry_run:
            return ev
        if self._sealer is None:
            self._sealer = Sealer(self.store.keys)
        return self._sealer.seal(ev, target, person_unit, self.is_person)

    def commit(self) -> None:
        """Commit the keys this call made (before the call's events are committed)."""
        if self._sealer is not None:
            self.store.keys.commit()

    def rollback(self) -> None:
        if self._sealer is not None:
            self.store.keys.rollback()

    def same(self, stored: Event, given: Event) -> bool:
        """Is ``given`` the event the log holds as ``stored`` (sealed or not)?"""
        if same_event(stored, given):
            return True
        if type(stored) is not type(given) and type(stored).__struct_config__.tag != type(given).__struct_config__.tag:
            return False
        if self._opener is None:
            keys = self.store.keys if self.store.keys.exists() else None
            self._opener = Opener(keys, erased_keys(self.store.conn))
        opened = self._opener.deep(msgspec.to_builtins(stored))
        return same_opened(opened, msgspec.to_builtins(given))

    @staticmethod
    def shuffle(pending: list[Any], keys: list[str], anonymous: list[int]) -> None:
        """Put the anonymous responses at ``anonymous`` (indexes into ``pending``) in a random
        order among their own places (the rest keep theirs)."""
        if len(anonymous) < 2:
            return
        order = anonymous[:]
        _SHUFFLE.shuffle(order)
        moved = [(pending[i], keys[i]) for i in order]
        for slot, (p, k) in zip(anonymous, moved):
            pending[slot], keys[slot] = p, k
