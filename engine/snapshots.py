"""Private read models: built apart (a temporary file; on PostgreSQL a rolled-back schema), so that
nothing of the store is locked or changed.

:func:`snapshot` replays the log up to a position (``--as-of``: scores and explanations as they
stood then); :func:`copy_of` copies one rule set's published read models in one read snapshot
(what-if applies its adoption there).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator

from .events import ParametersAdopted
from .projection import Projection
from .store import VIEWS


@contextlib.contextmanager
def _private(projection: Projection, prefix: str, only: Iterable[str] | None) -> Iterator[Projection]:
    """A projection over empty read models of its own, removed afterwards: a temporary file beside
    a SQLite store; a schema of one transaction, rolled back, in a PostgreSQL store."""
    if projection.store.postgres:
        with _private_schema(projection, prefix, only) as private:
            yield private
        return
    folder = tempfile.mkdtemp(prefix=prefix)
    conn = sqlite3.connect(os.path.join(folder, "views.db"), isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        projection.store.create_tracking_table(conn)
        yield Projection(projection.store, projection.rulesets, views=conn, only=only)
    finally:
        conn.close()
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def _private_schema(projection: Projection, prefix: str, only: Iterable[str] | None) -> Iterator[Projection]:
    from .postgres import PgConnection
    conn = PgConnection(projection.store.path, 0)
    try:
        schema = prefix.strip("-").replace("-", "_") + f"_{os.getpid()}"
        conn.raw.execute("BEGIN")  # never committed: the schema and all in it go with the rollback
        conn.raw.execute(f"CREATE SCHEMA {schema}")
        conn.raw.execute(f"SET LOCAL search_path TO {schema}, public")
        projection.store.create_tracking_table(conn)  # type: ignore[arg-type]
        yield Projection(projection.store, projection.rulesets, views=conn, only=only)  # type: ignore[arg-type]
    finally:
        if conn.in_transaction:
            conn.raw.execute("ROLLBACK")
        conn.close()


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


#: what a what-if copies: the rule set's own rows, and the tables every rule set reads
_COPIED = (("scores", True), ("rm_responses", True), ("rm_credits", True), ("rm_adoptions", True),
           ("rm_dirty", True), ("rm_rulesets", True), ("rm_units", False), ("rm_cases", False),
           ("rm_closures", False), ("rm_rectifications", False), ("rm_rectification_updates", False))


@contextlib.contextmanager
def copy_of(projection: Projection, ruleset: str) -> Iterator[Projection]:
    """One rule set's published read models (with the org chart and the complaint tables),
    copied in one read snapshot of the store: a what-if applies its adoption there and rescores
    only from its month."""
    with _private(projection, "csat-whatif-", [ruleset]) as private:
        conn = private.conn
        postgres = projection.store.postgres
        if postgres:  # the published tables are public's; the private schema comes first in the path
            live, tracking = "public.", "public.tracking"
        else:
            conn.execute("ATTACH DATABASE ? AS live", (projection.store.path,))
            conn.execute("BEGIN")
            live, tracking = "live.", "live.tracking"
        for table, own in _COPIED:
            columns = ", ".join(_columns(conn, table, postgres))
            conn.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {live}{table}"
                         + (" WHERE ruleset = ?" if own else ""), (ruleset,) if own else ())
        position = conn.execute(f"SELECT notification_id FROM {tracking} WHERE application_name = ?",
                                (VIEWS,)).fetchone()
        if position and position[0]:
            projection.store.track(position[0], conn=conn)
        if not postgres:
            conn.execute("COMMIT")
            conn.execute("DETACH DATABASE live")
        yield private


def _columns(conn: sqlite3.Connection, table: str, postgres: bool) -> list[str]:
    if postgres:
        return conn.table_shape(table).columns  # type: ignore[attr-defined]
    return [r[1] for r in conn.execute(f"PRAGMA main.table_info({table})")]
