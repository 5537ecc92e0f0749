"""Private read models: built apart (the backend's private views: a temporary file beside a SQLite
store, a rolled-back schema in a PostgreSQL one), so that nothing of the store is locked or changed.

:func:`snapshot` replays the log up to a position (``--as-of``: scores and explanations as they
stood then); :func:`copy_of` copies one rule set's published read models in one read snapshot
(what-if applies its adoption there).
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

from ..log.events import ParametersAdopted
from .projection import Projection
from ..log.store import VIEWS


@contextlib.contextmanager
def _private(projection: Projection, prefix: str, only: Iterable[str] | None) -> Iterator[Projection]:
    """A projection over empty read models of its own (the backend's private views), gone afterwards."""
    with projection.store.backend.private_views(prefix) as conn:
        projection.store.create_tracking_table(conn)
        yield Projection(projection.store, projection.rulesets, views=conn, only=only)


@contextlib.contextmanager
def snapshot(projection: Projection, upto: int, only: Iterable[str] | None = None,
             then: Iterable[ParametersAdopted] = ()) -> Iterator[Projection]:
    """The read models replayed from the log up to ``upto`` (and the adoptions ``then``, as if
    appended after it): the scores and explanations as they stood when the log ended there."""
    with _private(projection, "csat-as-of-", only) as private:
        with private.transaction():
            private._reset(indexes=False)
            private.replay(upto=upto, then=then)
        private.forget_state()
        yield private


#: what a what-if copies: the rule set's own rows, and the tables every rule set reads (not its
#: credits: the rescoring credits each response again and compares scores, which need none stored;
#: nor its responses: those are read where they are published, in the same read snapshot)
_COPIED = (("scores", True), ("rm_adoptions", True),
           ("rm_dirty", True), ("rm_rulesets", True), ("rm_units", False), ("rm_cases", False),
           ("rm_closures", False), ("rm_rectifications", False), ("rm_rectification_updates", False))


@contextlib.contextmanager
def copy_of(projection: Projection, ruleset: str) -> Iterator[Projection]:
    """One rule set's published read models (with the org chart and the complaint tables),
    copied in one read snapshot of the store — a what-if applies its adoption there and rescores
    only from its month. Its responses, which a what-if only reads, are not copied: the private
    views have no ``rm_responses`` of their own, so the name finds the published table (SQLite
    looks in the attached store after the private one; PostgreSQL's search path goes on to the
    public schema), read in the same snapshot, which lasts until the what-if is done."""
    backend = projection.store.backend
    with _private(projection, "csat-whatif-", [ruleset]) as private:
        conn = private.conn
        conn.execute("DROP TABLE rm_responses")
        with backend.published(conn) as (live, tracking):
            for table, own in _COPIED:
                columns = ", ".join(backend.columns(conn, table))
                conn.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {live}{table}"
                             + (" WHERE ruleset = ?" if own else ""), (ruleset,) if own else ())
            position = conn.execute(f"SELECT notification_id FROM {tracking} WHERE application_name = ?",
                                    (VIEWS,)).fetchone()
            if position and position[0]:
                projection.store.track(position[0], conn=conn)
            yield private  # (inside the snapshot: the responses are read there)
