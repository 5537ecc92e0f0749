"""Moving a whole log from one store to another (``csat copy``): SQLite → PostgreSQL and back.

The rows are copied as they are stored — key, version, topic and state bytes
(the state holds each event's recording time) — in log order, so every
event keeps its position, its recording time and its chain hash: the target's
chain is computed afresh from the copied rows and must end on the source's
head hash, or nothing is written. The source is read through its chain (a
source that does not verify is refused, naming the position), in one read
snapshot, up to the position it had when the copy started; others may go on
appending to it. The target must be new or empty; the copy is one write
transaction there (all or nothing). Read models are not copied: the caller
rebuilds them on the target (:meth:`csat.engine.Engine.copy_to`).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import chain
from ..errors import StoreError
from .store import Store

#: rows per page read from the source and written to the target
PAGE = 20_000
_ROWS = (f"SELECT s.rowid, s.originator_id, s.originator_version, s.topic, s.state, {chain.HEAD}, h.hash "
         f"FROM stored_events s LEFT JOIN {chain.TABLE} h ON h.position = s.rowid WHERE s.rowid > ? "
         "AND s.rowid <= ? ORDER BY s.rowid LIMIT ?")


@dataclass(frozen=True)
class Copied:
    """What a copy wrote: the number of events and the head both stores now share."""

    events: int
    head_position: int
    head_hash: str


def copy_log(source: Store, target: Store, progress: Callable[[int], None] | None = None,
             page: int = PAGE) -> Copied:
    """Copy ``source``'s log (up to its current end) into the empty ``target``.

    :raises StoreError: the target already holds events, or the copy would not end on the
        source's head (nothing written).
    :raises LogDamaged: the source does not chain (nothing written).
    """
    if source.display == target.display:
        raise StoreError(f"cannot copy {source.display} onto itself")
    target.begin_write()
    try:
        held = target.max_position()
        if held:
            raise StoreError(f"{target.display} already holds {held} events: csat copy writes a whole log only "
                             "into a new, empty store")
        source.conn.execute("BEGIN")  # one read snapshot of the source
        try:
            upto = source.max_position()
            previous, after = chain.GENESIS, 0
            while after < upto:
                rows = source.conn.execute(_ROWS, (after, upto, page)).fetchall()
                if not rows:
                    break
                batch = []
                for position, key, version, topic, state, head, stored in rows:
                    digest, broken = chain.check_row(previous, after + len(batch) + 1, position, head, state, stored)
                    if broken is not None:
                        raise StoreError(f"the source {source.display} does not verify ({broken.line()}); "
                                         "nothing was copied: run csat verify on it")
                    previous = digest
                    batch.append((key, version, topic, state))
                target.conn.executemany(target.insert_statement, batch)
                after += len(batch)
                if progress is not None:
                    progress(len(batch))
        finally:
            source.conn.execute("COMMIT")
        expected = chain.text(previous)

        def ends_on_the_source_head() -> None:
            got = target.head(after)[1]
            if target.max_position() != after or got != expected:
                raise StoreError(f"the copy in {target.display} would end on {got} at position "
                                 f"{target.max_position()}, not on the source's {expected} at {after}; "
                                 "nothing was written")

        target.commit(check=ends_on_the_source_head)
    except BaseException:
        target.rollback()
        raise
    return Copied(after, after, expected)
