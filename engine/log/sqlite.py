"""The embedded SQLite backend: a store is one file (WAL), the log in eventsourcing's SQLite
application recorder's table, the read models beside it. See :class:`csat.engine.log.backend.Backend`."""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import sqlite3
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any

from .sqlitedb import sqlite_utils
from eventsourcing.persistence import InfrastructureFactory, Tracking
from eventsourcing.sqlite import SQLiteCursor
from eventsourcing.utils import Environment

from .keys import SQLiteKeyStore, key_store_path
from .backend import Backend, busy_timeout, BUSY_ENV
from ..errors import NoStore, StoreError

_SQLITE_MAGIC = b"SQLite format 3\x00"


def sqlite_message(path: str, e: BaseException) -> str:
    """One line for a SQLite error, in the words of a csat user."""
    text = str(e)
    if "locked" in text or "busy" in text:
        return (f"the store {path} is busy: another csat process has held its write lock for more than "
                f"{busy_timeout():.0f} s (a rebuild or a large ingest?); run the command again when it has "
                f"finished, or wait longer with {BUSY_ENV}=SECONDS")
    if "unable to open" in text:
        return f"cannot open {path}: {text}"
    if "not a database" in text or "malformed" in text:
        return f"{path} is not a csat store or is damaged ({text})"
    return f"database {path}: {text}"


def _check_is_store_file(path: str) -> None:
    """A reading command must not create a store where the user mistyped a path."""
    if not os.path.exists(path):
        raise NoStore(f"no csat store at {path} (csat ingest creates one; --db or $CSAT_DB chooses another)")
    if os.path.isdir(path):
        raise StoreError(f"{path} is a folder, not a csat store")
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as e:
        raise StoreError(f"cannot read {path}: {e.strerror or e}") from None
    if head != _SQLITE_MAGIC:
        raise StoreError(f"{path} is not a csat store (not a SQLite database)")


class SQLiteBackend(Backend):
    """A store in one SQLite file."""

    unordered_table = " WITHOUT ROWID"

    def open(self, create: bool) -> None:
        if not create:
            _check_is_store_file(self.target)
        env = Environment("CSAT", {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": self.target,
            "ORIGINATOR_ID_TYPE": "text",
            "SQLITE_LOCK_TIMEOUT": str(int(busy_timeout())),
            "CREATE_TABLE": "false",  # created by the store, under the write lock
        })
        try:
            self.factory = InfrastructureFactory.construct(env)
            self.recorder = self.factory.application_recorder()
            self.tracking = self.factory.tracking_recorder()
        except Exception as e:  # eventsourcing wraps sqlite3 errors in its own
            raise StoreError(f"cannot open {self.target}: {e}") from e
        self.insert_statement = self.recorder.insert_events_statement
        try:  # csat's own connection for batch writes, bulk reads and the read models
            self.conn = sqlite3.connect(self.target, isolation_level=None, timeout=busy_timeout(),
                                        check_same_thread=False)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            # checkpoint every 16 MB of WAL instead of 4 MB: a checkpoint stalls the commit that
            # triggers it (~20 ms), and at the default every ~50th small append hit one
            self.conn.execute("PRAGMA wal_autocheckpoint=4000")
            # 32 MiB of page cache (SQLite's default is 2 MiB): rebuilds and big ingests walk indexes
            # much larger than that
            self.conn.execute("PRAGMA cache_size=-32768")
        except sqlite3.DatabaseError as e:
            raise StoreError(sqlite_message(self.target, e)) from e

    def missing_tables(self, names: Sequence[str]) -> list[str]:
        have = {n for (n,) in self.conn.execute(
            f"SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ({','.join('?' * len(names))})",
            tuple(names))}
        return [n for n in names if n not in have]

    def create_recorder_table(self, recorder: Any) -> None:
        recorder._create_table(SQLiteCursor(self.conn.cursor()))

    def not_a_store(self) -> str:
        return f"{self.target} is not a csat store (a SQLite database without a csat log)"

    def close(self) -> None:
        self.conn.close()
        self.factory.close()

    def discard(self) -> None:
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(OSError):
                os.remove(f"{self.target}{suffix}")

    def key_store(self) -> Any:
        return SQLiteKeyStore(key_store_path(self.target))

    def try_begin_write(self) -> bool:
        self.conn.execute("PRAGMA busy_timeout = 0")
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            return True
        except sqlite3.OperationalError:
            return False
        finally:
            self.conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout() * 1000)}")

    def tracked(self, name: str, conn: Any) -> int:
        return self.tracking._max_tracking_id(name, SQLiteCursor(conn.cursor())) or 0

    def track(self, position: int, name: str, conn: Any) -> None:
        self.tracking._insert_tracking(SQLiteCursor(conn.cursor()), Tracking(name, position))

    def create_tracking_table(self, conn: Any) -> None:
        for statement in self.tracking.create_table_statements:
            conn.execute(statement)

    def session(self) -> str:
        return f"pid:{socket.gethostname()}:{os.getpid()}"

    def session_alive(self, session: str) -> bool:
        kind, _, rest = session.partition(":")
        host, _, pid = rest.rpartition(":")
        if kind != "pid" or host != socket.gethostname() or not pid.isdigit():
            return True  # another host's: it cannot be told from here
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False
        except OSError:
            return True
        return True

    def verify_file(self) -> str | None:
        return self.target

    def database(self, conn: Any) -> Any:
        return sqlite_utils.Database(conn)

    @contextlib.contextmanager
    def private_views(self, prefix: str) -> Iterator[Any]:
        """A temporary file of its own, removed afterwards."""
        folder = tempfile.mkdtemp(prefix=prefix)
        conn = sqlite3.connect(os.path.join(folder, "views.db"), isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=OFF")
            conn.execute("PRAGMA synchronous=OFF")
            yield conn
        finally:
            conn.close()
            shutil.rmtree(folder, ignore_errors=True)

    @contextlib.contextmanager
    def published(self, conn: Any) -> Iterator[tuple[str, str]]:
        """The store's file attached as ``live``, read in one transaction."""
        conn.execute("ATTACH DATABASE ? AS live", (self.target,))
        conn.execute("BEGIN")
        try:
            yield "live.", "live.tracking"
            conn.execute("COMMIT")
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            conn.execute("DETACH DATABASE live")

    def columns(self, conn: Any, table: str) -> list[str]:
        return [r[1] for r in conn.execute(f"PRAGMA main.table_info({table})")]
