"""The event log: eventsourcing's application recorder with a msgspec mapper.

The log is eventsourcing's ``stored_events`` table (created and owned by
``eventsourcing.sqlite``): one row per event, ``originator_id`` = the event's
natural key, ``originator_version`` = 1, ``topic`` = the event's tag,
``state`` = our envelope ``[recorded_at, event]`` as JSON. The notification id
(SQLite ``rowid``) is the event's *position*. eventsourcing's primary key on
(originator_id, originator_version) is what makes a key appear once.

Batch paths. ``Application.save`` writes one aggregate at a time; csat writes
:class:`StoredEvent` batches with ``executemany`` inside one transaction and
reads the table in bulk pages for projections. This module is the only one
that touches the recorder's table directly; ``tests/test_store_shape.py`` pins
the table shape it relies on.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import os
import socket
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Union

import msgspec
from eventsourcing.persistence import InfrastructureFactory, Mapper, StoredEvent, Tracking
from eventsourcing.sqlite import SQLiteCursor
from eventsourcing.utils import Environment

from . import chain, postgres
from .errors import LogDamaged, NoStore, StoreError
from .events import EVENT_TYPES, Event, natural_key, tag_of

DEFAULT_DB = "csat.db"
VIEWS = "csat-views"  #: tracking name of the read models
_TABLE = "stored_events"


AnyEvent = Union[EVENT_TYPES]


class Recorded(msgspec.Struct, frozen=True, array_like=True):
    """What a row's ``state`` holds: when it was recorded, and the event."""

    at: str
    event: AnyEvent  # type: ignore[valid-type]


class Logged(msgspec.Struct, frozen=True):
    """An event read back from the log, with its position (``event`` is None only for a damaged
    row read leniently, for ``csat log``; ``damaged`` then says why)."""

    position: int
    at: str
    key: str
    event: Event
    damaged: str | None = None

    @property
    def type(self) -> str:
        return tag_of(self.event) if self.event is not None else "damaged"


_STATE_ENCODER = msgspec.json.Encoder()
_STATE_DECODER = msgspec.json.Decoder(Recorded)


class EventMapper(Mapper):
    """Maps csat events to eventsourcing's :class:`StoredEvent` and back.

    eventsourcing's default mapper serialises an object's ``__dict__``;
    msgspec Structs have none, so csat encodes them itself.
    """

    def __init__(self) -> None:  # no transcoder: msgspec encodes
        super().__init__(transcoder=None)  # type: ignore[arg-type]

    def to_stored_event(self, recorded: Recorded) -> StoredEvent:  # type: ignore[override]
        return StoredEvent(originator_id=natural_key(recorded.event), originator_version=1,
                           topic=tag_of(recorded.event), state=_STATE_ENCODER.encode(recorded))

    def to_domain_event(self, stored: StoredEvent) -> Recorded:  # type: ignore[override]
        return _STATE_DECODER.decode(stored.state)


MAPPER = EventMapper()


def decode_state(state: bytes) -> tuple[str, Event]:
    r = _STATE_DECODER.decode(state)
    return r.at, r.event


def _decoded(position: int, key: str, state: bytes) -> Logged:
    """A stored row as an event; a row that does not decode raises LogDamaged naming its position."""
    try:
        at, event = decode_state(state)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError, TypeError) as e:
        raise LogDamaged(position, f"the row cannot be decoded ({str(e).splitlines()[0][:120]})") from None
    return Logged(position, at, key, event)


def _leniently(rows: Iterable[tuple[int, str, bytes]]) -> list[Logged]:
    """Rows as events, a row that does not decode as a ``damaged`` one (for people listing the log)."""
    out = []
    for position, key, state in rows:
        try:
            out.append(_decoded(position, key, state))
        except LogDamaged as e:
            out.append(Logged(position, "", key, None, e.problem))  # type: ignore[arg-type]
    return out


BUSY_ENV = "CSAT_BUSY_TIMEOUT"
#: Seconds a command waits for another process's write (an ingest, a catch-up, a rebuild) to finish.
DEFAULT_BUSY_TIMEOUT = 600.0
_SQLITE_MAGIC = b"SQLite format 3\x00"


def busy_timeout() -> float:
    """How long to wait for the write lock: ``$CSAT_BUSY_TIMEOUT`` seconds, default 600 (a long rebuild)."""
    try:
        return max(0.0, float(os.environ.get(BUSY_ENV) or DEFAULT_BUSY_TIMEOUT))
    except ValueError:
        return DEFAULT_BUSY_TIMEOUT


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


def discard_new_store(target: str) -> None:
    """Remove a SQLite store a command just created and then failed in (nothing was written to it);
    a PostgreSQL database is left as it is (its tables are empty)."""
    if postgres.is_postgres(target):
        return
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(OSError):
            os.remove(f"{target}{suffix}")


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


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Store:
    """An opened csat database: the event log and, in the same database, the read models.

    ``target`` is a SQLite file path (default ``./csat.db``) or a
    ``postgresql://`` URL. The schema of the log and of the tracking table is
    eventsourcing's (its SQLite or PostgreSQL persistence module); everything
    that differs between the two stays in this class and in
    :mod:`csat.engine.postgres`.
    """

    def __init__(self, target: str | os.PathLike[str] = DEFAULT_DB, *, create: bool = True):
        self.path = os.fspath(target)
        #: one-line notes for the user about this store (e.g. its chain was computed on this open)
        self.notices: list[str] = []
        self._sealed_after: int | None = None
        self.postgres = postgres.is_postgres(self.path)
        self.display = self.path  #: the store as messages name it (a URL without its password)
        if self.postgres:
            self._open_postgres(create)
            return
        if not create:
            _check_is_store_file(self.path)
        env = Environment("CSAT", {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": self.path,
            "ORIGINATOR_ID_TYPE": "text",
            "SQLITE_LOCK_TIMEOUT": str(int(busy_timeout())),
            "CREATE_TABLE": "false",  # created below, under the write lock (see _create_log_tables)
        })
        try:
            self.factory = InfrastructureFactory.construct(env)
            self.recorder = self.factory.application_recorder()
            self.tracking = self.factory.tracking_recorder()
        except Exception as e:  # eventsourcing wraps sqlite3 errors in its own
            raise StoreError(f"cannot open {self.path}: {e}") from e
        self.insert_statement = self.recorder.insert_events_statement
        #: csat's own connection for batch writes, bulk reads and the read models.
        try:
            self.conn = sqlite3.connect(self.path, isolation_level=None, timeout=busy_timeout(),
                                        check_same_thread=False)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            # checkpoint every 16 MB of WAL instead of 4 MB: a checkpoint stalls the commit that
            # triggers it (~20 ms), and at the default every ~50th small append hit one
            self.conn.execute("PRAGMA wal_autocheckpoint=4000")
            # 32 MiB of page cache (SQLite's default is 2 MiB): rebuilds and big ingests walk indexes
            # much larger than that
            self.conn.execute("PRAGMA cache_size=-32768")
            self._create_log_tables(create)
        except sqlite3.DatabaseError as e:
            raise StoreError(sqlite_message(self.path, e)) from e

    def _open_postgres(self, create: bool) -> None:
        """A ``postgresql://`` store: the log and tracking tables are eventsourcing's PostgreSQL
        recorder's (created with its statements), the read models live beside them, and
        :class:`~csat.engine.postgres.PgConnection` runs csat's SQL there."""
        self.factory = None
        self.conn = postgres.PgConnection(self.path, busy_timeout())  # type: ignore[assignment]
        self.insert_statement = (f"INSERT INTO {_TABLE} (originator_id, originator_version, topic, state) "
                                 "VALUES (?, ?, ?, ?)")
        self.display = postgres.redacted(self.path)
        from eventsourcing.postgres import (PostgresApplicationRecorder, PostgresDatastore,
                                            PostgresTrackingRecorder)
        info = self.conn.raw.info  # eventsourcing's recorders, on a pool of their own that opens only when used
        self.datastore = PostgresDatastore(dbname=info.dbname, host=info.host, port=str(info.port), user=info.user,
                                           password=info.password or "", originator_id_type="text")
        self.recorder = PostgresApplicationRecorder(self.datastore, events_table_name=_TABLE)
        self.tracking = PostgresTrackingRecorder(self.datastore, tracking_table_name="tracking")
        self._create_log_tables(create)

    def _create_log_tables(self, create: bool) -> None:
        """Create eventsourcing's log and tracking tables, and the chain's, if they are missing.

        Done under the write lock with the check repeated inside it, so several
        processes opening a new store at once create it exactly once
        (eventsourcing's own ``create_table`` is not safe against that).
        """
        if not self._missing_tables():
            return
        if not create and _TABLE in self._missing_tables():
            raise NoStore(f"no csat store at {self.display} (csat ingest creates one; --db or $CSAT_DB "
                             "chooses another)" if self.postgres else
                             f"{self.path} is not a csat store (a SQLite database without a csat log)")
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            todo = self._missing_tables()  # again, under the lock: another process may have just created them
            for name, recorder in ((_TABLE, self.recorder), ("tracking", self.tracking)):
                if name in todo:
                    self._create_recorder_table(recorder)
            if chain.TABLE in todo:
                self.conn.execute(chain.CREATE)
                n = chain.chain_all(self.conn)  # a log of an earlier csat (or copied in): chained once
                if n:
                    self.notices.append(f"chained the {n} events of this log written by an earlier csat (once; "
                                        "csat verify checks the chain from now on)")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def _missing_tables(self) -> list[str]:
        names = (_TABLE, "tracking", chain.TABLE)
        if self.postgres:
            return [n for n in names if self.conn.execute("SELECT to_regclass(?)", (n,)).fetchone()[0] is None]
        have = {n for (n,) in self.conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN (?, ?, ?)", names)}
        return [n for n in names if n not in have]

    def _create_recorder_table(self, recorder: Any) -> None:
        """One of eventsourcing's tables, with its recorder's own statements."""
        if not self.postgres:
            recorder._create_table(SQLiteCursor(self.conn.cursor()))
            return
        for statement in recorder.sql_create_statements:
            # eventsourcing's CREATE TYPE has no IF NOT EXISTS: a type already there is kept
            # (its own create_table does the same); the drill of four sites once met one
            with contextlib.suppress(postgres.PgDuplicateObject), self.conn.savepoint():  # type: ignore[attr-defined]
                self.conn.raw.execute(statement)  # type: ignore[attr-defined]

    def close(self) -> None:
        self.conn.close()
        if self.factory is not None:
            self.factory.close()
        else:
            self.datastore.close()

    # -- reading ---------------------------------------------------------------

    def max_position(self) -> int:
        return self.conn.execute(f"SELECT COALESCE(MAX(rowid), 0) FROM {_TABLE}").fetchone()[0]

    def read(self, after: int, limit: int, upto: int | None = None) -> list[Logged]:
        """Up to ``limit`` events after position ``after`` (and up to ``upto``), in order, read
        through the hash chain: the events before a row that does not chain or decode are
        returned; a read that starts at such a row raises LogDamaged naming it."""
        sql = chain.ROWS + " WHERE s.rowid > ?" + (" AND s.rowid <= ?" if upto is not None else "") \
            + " ORDER BY s.rowid LIMIT ?"
        rows = self.conn.execute(sql, (after, upto, limit) if upto is not None else (after, limit)).fetchall()
        previous = chain.hash_at(self.conn, after)
        if previous is None and rows:
            raise LogDamaged(after, "the event there has no chain hash, so nothing after it can be checked")
        out = []
        for position, head, state, stored in rows:
            digest, broken = chain.check_row(previous, after + len(out) + 1, position, head, state, stored)
            if broken is None:
                try:
                    out.append(_decoded(position, head.decode("utf-8", "surrogatepass").rpartition("\x1f")[0], state))
                except LogDamaged as e:
                    broken = chain.Break(e.position, e.problem)
            if broken is not None:
                if out:
                    return out  # what chains is applied; the next read starts at the break and stops there
                raise LogDamaged(broken.position, broken.problem)
            previous = digest
        return out

    def pages(self, after: int = 0, page: int = 5000, upto: int | None = None) -> Iterator[list[Logged]]:
        """The log from ``after`` on, in pages, through the chain; never holds more than one page."""
        while True:
            batch = self.read(after, page, upto)
            if not batch:
                return
            yield batch
            after = batch[-1].position

    def lenient_pages(self, after: int = 0, page: int = 5000) -> Iterator[list[Logged]]:
        """The log as it is, for people looking at it (``csat log``): a row that does not decode
        comes back with ``damaged`` saying why instead of stopping the listing."""
        while True:
            rows = self.conn.execute(f"SELECT rowid, originator_id, state FROM {_TABLE} WHERE rowid > ? "
                                     "ORDER BY rowid LIMIT ?", (after, page)).fetchall()
            if not rows:
                return
            yield _leniently(rows)
            after = rows[-1][0]

    def pages_backwards(self, page: int = 5000) -> Iterator[list[Logged]]:
        """The log from its end back to the start, in pages (each page newest first)."""
        before = self.max_position() + 1
        while before > 1:
            rows = self.conn.execute(
                f"SELECT rowid, originator_id, state FROM {_TABLE} WHERE rowid < ? ORDER BY rowid DESC LIMIT ?",
                (before, page)).fetchall()
            if not rows:
                return
            yield _leniently(rows)
            before = rows[-1][0]

    def get(self, keys: Sequence[str]) -> dict[str, Logged]:
        """The events stored under ``keys`` (natural keys), those that exist."""
        found: dict[str, Logged] = {}
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            rows = self.conn.execute(
                f"SELECT rowid, originator_id, state FROM {_TABLE} "
                f"WHERE originator_id IN ({','.join('?' * len(chunk))}) AND originator_version = 1",
                chunk).fetchall()
            for position, key, state in rows:
                found[key] = _decoded(position, key, state)
        return found

    def at_positions(self, positions: Iterable[int]) -> dict[int, Logged]:
        pos = list(positions)
        found: dict[int, Logged] = {}
        for i in range(0, len(pos), 500):
            chunk = pos[i:i + 500]
            for position, key, state in self.conn.execute(
                    f"SELECT rowid, originator_id, state FROM {_TABLE} WHERE rowid IN ({','.join('?' * len(chunk))})",
                    chunk):
                found[position] = _decoded(position, key, state)
        return found

    # -- writing ---------------------------------------------------------------

    def begin_write(self) -> None:
        """Start the one write transaction of an ingest (takes the write lock now)."""
        self.conn.execute("BEGIN IMMEDIATE")
        self._sealed_after = self.max_position()
        if self.postgres:  # a rolled-back ingest used up sequence numbers: positions stay gapless
            self.conn.execute(f"SELECT setval(pg_get_serial_sequence('{_TABLE}', 'notification_id'), ?, false)",
                              (self._sealed_after + 1,))

    def append(self, events: Sequence[Recorded], keys: Sequence[str] | None = None) -> None:
        """Append a batch inside the open transaction (see :meth:`begin_write`); ``keys`` are the
        events' natural keys when the caller has them already."""
        enc = _STATE_ENCODER.encode
        if keys is None:
            keys = [natural_key(r.event) for r in events]
        self.conn.executemany(self.insert_statement,
                              [(k, 1, tag_of(r.event), enc(r)) for k, r in zip(keys, events)])

    def replace_uncommitted(self, recorded: Recorded) -> None:
        """Rewrite an event appended earlier in the *open* transaction.

        Only ever used before commit (an implicit adoption whose ``from`` is
        lowered by a later line of the same ingest); committed rows are never
        changed.
        """
        s = MAPPER.to_stored_event(recorded)
        self.conn.execute(f"UPDATE {_TABLE} SET state = ? WHERE originator_id = ? AND originator_version = 1",
                          (s.state, s.originator_id))

    def commit(self, check: Callable[[], None] | None = None) -> None:
        """Chain what this transaction appended (the chain follows the commit order, which the
        write lock serialises), then commit; ``check`` may still refuse (raise) in between."""
        if self._sealed_after is not None and self.max_position() > self._sealed_after:
            chain.seal(self.conn, self._sealed_after)
        if check is not None:
            check()
        self._sealed_after = None
        self.conn.execute("COMMIT")

    def try_begin_write(self) -> bool:
        """Begin a write transaction if the write lock is free now; False (and no transaction)
        when another process holds it — never waits."""
        if self.postgres:
            return self.conn.try_write_lock()  # type: ignore[attr-defined]
        self.conn.execute("PRAGMA busy_timeout = 0")
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            return True
        except sqlite3.OperationalError:
            return False
        finally:
            self.conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout() * 1000)}")

    @contextlib.contextmanager
    def try_write_lock(self) -> Iterator[bool]:
        """A write transaction only if the lock is free now: yields False (and writes nothing)
        when another process holds it, for writes that can be left to a later reader."""
        if not self.try_begin_write():
            yield False
            return
        try:
            yield True
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def rollback(self) -> None:
        self._sealed_after = None
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    # -- the chain ---------------------------------------------------------------

    def head(self, position: int | None = None) -> tuple[int, str]:
        """The log position (default: its end) and the chain hash there."""
        position = self.max_position() if position is None else position
        return position, chain.head(self.conn, position) or "sha256:?"

    def session(self) -> str:
        """This connection's session, as another process can check it is still there: the server
        backend's pid on PostgreSQL, the host and process id on SQLite."""
        if self.postgres:
            return f"pg:{self.conn.execute('SELECT pg_backend_pid()').fetchone()[0]}"
        return f"pid:{socket.gethostname()}:{os.getpid()}"

    def session_alive(self, session: str) -> bool:
        """Is the session named by :meth:`session` (of any process) still there? True when it
        cannot be told (another host)."""
        kind, _, rest = session.partition(":")
        if kind == "pg" and self.postgres:
            return self.conn.execute("SELECT 1 FROM pg_stat_activity WHERE pid = ?",
                                     (int(rest),)).fetchone() is not None
        host, _, pid = rest.rpartition(":")
        if kind != "pid" or host != socket.gethostname() or not pid.isdigit():
            return True
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False
        except OSError:
            return True
        return True

    def deleted_tail(self) -> chain.Break | None:
        """Events deleted from the end of the log (their chain hashes are still stored), which a
        read through the chain cannot see: it ends where the rows end."""
        return chain.deleted_tail(self.conn)

    def verify(self, published: tuple[int, str] | None = None,
               progress: Callable[[int], None] | None = None) -> chain.Verified:
        """Walk the whole log in one streaming pass, in one read snapshot (others may write on)."""
        self.conn.execute("BEGIN")
        try:
            return chain.verify(self.conn, _STATE_DECODER.decode, published, progress,
                                path=None if self.postgres else self.path)
        finally:
            self.conn.execute("COMMIT")

    # -- tracking --------------------------------------------------------------

    def tracked(self, name: str = VIEWS, conn: sqlite3.Connection | None = None) -> int:
        """The last log position the named projection has processed (0: none)."""
        if self.postgres:
            row = (conn or self.conn).execute("SELECT MAX(notification_id) FROM tracking WHERE application_name = ?",
                                              (name,)).fetchone()
            return row[0] or 0
        return self.tracking._max_tracking_id(name, SQLiteCursor((conn or self.conn).cursor())) or 0

    def track(self, position: int, name: str = VIEWS, conn: sqlite3.Connection | None = None) -> None:
        """Record, inside the caller's open transaction, that ``name`` processed up to ``position``."""
        if self.postgres:  # eventsourcing's single-row tracking, as its PostgreSQL recorder writes it
            moved = (conn or self.conn).execute(
                "INSERT INTO tracking VALUES (?, ?) ON CONFLICT (application_name) DO UPDATE "
                "SET notification_id = EXCLUDED.notification_id "
                "WHERE tracking.notification_id < EXCLUDED.notification_id RETURNING notification_id",
                (name, position)).fetchone()
            if moved is None:
                raise StoreError(f"tracking of {name} cannot move back to {position}")
            return
        self.tracking._insert_tracking(SQLiteCursor((conn or self.conn).cursor()), Tracking(name, position))

    def forget_tracking(self, name: str = VIEWS, conn: sqlite3.Connection | None = None) -> None:
        (conn or self.conn).execute("DELETE FROM tracking WHERE application_name = ?", (name,))

    def create_tracking_table(self, conn: sqlite3.Connection) -> None:
        """eventsourcing's tracking table in another database (a private snapshot of the read models)."""
        if self.postgres:
            conn.execute("CREATE TABLE tracking (application_name TEXT PRIMARY KEY, notification_id BIGINT)")
            return
        for statement in self.tracking.create_table_statements:
            conn.execute(statement)
