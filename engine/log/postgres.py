"""The PostgreSQL backend: a store shared by several sites. The log and tracking tables are
eventsourcing's PostgreSQL recorders' (created with their own statements), the read models live
beside them, and :class:`~csat.engine.log.pgsql.PgConnection` runs csat's SQL there (its dialect is in
:mod:`csat.engine.log.pgsql`). See :class:`csat.engine.log.backend.Backend`.

The store's one write lock is a transaction-scoped advisory lock; private read models
(``--as-of``, what-if) live in a schema of one transaction that is rolled back.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from typing import Any

from .keys import PgKeyStore
from .backend import EVENTS, Backend, busy_timeout
from ..errors import PgIntegrityError, StoreError  # noqa: F401 (PgIntegrityError: re-exported)
from .pgsql import PREFIXES, WRITE_LOCK, PgConnection, PgDatabase, PgDuplicateObject, StoreLost, is_postgres, redacted


class PostgresBackend(Backend):
    """A store in a PostgreSQL database."""

    empties_on_rebuild = True  # DROP would make every reader wait for the rebuild's commit

    def __init__(self, target: str):
        super().__init__(target)
        self.display = redacted(target)

    def open(self, create: bool) -> None:
        self.conn = PgConnection(self.target, busy_timeout())
        self.insert_statement = (f"INSERT INTO {EVENTS} (originator_id, originator_version, topic, state) "
                                 "VALUES (?, ?, ?, ?)")
        from eventsourcing.postgres import (PostgresApplicationRecorder, PostgresDatastore,
                                            PostgresTrackingRecorder)
        info = self.conn.raw.info  # eventsourcing's recorders, on a pool of their own that opens only when used
        self.datastore = PostgresDatastore(dbname=info.dbname, host=info.host, port=str(info.port), user=info.user,
                                           password=info.password or "", originator_id_type="text")
        self.recorder = PostgresApplicationRecorder(self.datastore, events_table_name=EVENTS)
        self.tracking = PostgresTrackingRecorder(self.datastore, tracking_table_name="tracking")

    def missing_tables(self, names: Sequence[str]) -> list[str]:
        return [n for n in names if self.conn.execute("SELECT to_regclass(?)", (n,)).fetchone()[0] is None]

    def create_recorder_table(self, recorder: Any) -> None:
        for statement in recorder.sql_create_statements:
            # eventsourcing's CREATE TYPE has no IF NOT EXISTS: a type already there is kept
            # (its own create_table does the same); the drill of four sites once met one
            with contextlib.suppress(PgDuplicateObject), self.conn.savepoint():
                self.conn.raw.execute(statement)

    def not_a_store(self) -> str:
        return f"no csat store at {self.display} (csat ingest creates one; --db or $CSAT_DB chooses another)"

    def close(self) -> None:
        self.conn.close()
        self.datastore.close()

    def discard(self) -> None:
        """A database is left as it is: its tables hold nothing."""

    def key_store(self) -> Any:
        return PgKeyStore(self.target)

    def log_continues_after(self, position: int) -> None:
        # a rolled-back ingest used up sequence numbers: positions stay gapless
        self.conn.execute(f"SELECT setval(pg_get_serial_sequence('{EVENTS}', 'notification_id'), ?, false)",
                          (position + 1,))

    def try_begin_write(self) -> bool:
        return self.conn.try_write_lock()

    def tracked(self, name: str, conn: Any) -> int:
        row = conn.execute("SELECT MAX(notification_id) FROM tracking WHERE application_name = ?", (name,)).fetchone()
        return row[0] or 0

    def track(self, position: int, name: str, conn: Any) -> None:
        """eventsourcing's single-row tracking, as its PostgreSQL recorder writes it; never back."""
        moved = conn.execute(
            "INSERT INTO tracking VALUES (?, ?) ON CONFLICT (application_name) DO UPDATE "
            "SET notification_id = EXCLUDED.notification_id "
            "WHERE tracking.notification_id < EXCLUDED.notification_id RETURNING notification_id",
            (name, position)).fetchone()
        if moved is None:
            raise StoreError(f"tracking of {name} cannot move back to {position}")

    def create_tracking_table(self, conn: Any) -> None:
        conn.execute("CREATE TABLE tracking (application_name TEXT PRIMARY KEY, notification_id BIGINT)")

    def session(self) -> str:
        return f"pg:{self.conn.execute('SELECT pg_backend_pid()').fetchone()[0]}"

    def session_alive(self, session: str) -> bool:
        kind, _, pid = session.partition(":")
        if kind != "pg" or not pid.isdigit():
            return True
        return self.conn.execute("SELECT 1 FROM pg_stat_activity WHERE pid = ?", (int(pid),)).fetchone() is not None

    def database(self, conn: Any) -> Any:
        return PgDatabase(conn)

    @contextlib.contextmanager
    def private_views(self, prefix: str) -> Iterator[Any]:
        """A schema of one transaction, never committed: it and all in it go with the rollback.
        The transaction is one read snapshot (repeatable read): what it reads of the published
        tables holds still while others write."""
        conn = PgConnection(self.target, 0)
        try:
            schema = prefix.strip("-").replace("-", "_") + f"_{os.getpid()}"
            conn.raw.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
            conn.raw.execute(f"CREATE SCHEMA {schema}")
            conn.raw.execute(f"SET LOCAL search_path TO {schema}, public")
            yield conn
        finally:
            if conn.in_transaction:
                conn.raw.execute("ROLLBACK")
            conn.close()

    @contextlib.contextmanager
    def published(self, conn: Any) -> Iterator[tuple[str, str]]:
        """The published tables are public's (the private schema comes first in the path); the
        private transaction is one read snapshot already."""
        yield "public.", "public.tracking"

    def columns(self, conn: Any, table: str) -> list[str]:
        return conn.table_shape(table).columns


__all__ = ["PREFIXES", "WRITE_LOCK", "PgConnection", "PgDatabase", "PgDuplicateObject", "PgIntegrityError",
           "PostgresBackend", "StoreLost", "is_postgres", "redacted"]
