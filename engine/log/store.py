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
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Union

import msgspec
from eventsourcing.persistence import Mapper, StoredEvent

from . import chain
from .backend import EVENTS, Backend
from .postgres import PostgresBackend, is_postgres
from .sqlite import SQLiteBackend
from ..errors import LogDamaged, NoStore
from .events import EVENT_TYPES, Event, natural_key, tag_of

DEFAULT_DB = "csat.db"
VIEWS = "csat-views"  #: tracking name of the read models
_TABLE = EVENTS


AnyEvent = Union[EVENT_TYPES]


class Recorded(msgspec.Struct, frozen=True, array_like=True, omit_defaults=True):
    """What a row's ``state`` holds: when it was recorded, the event, and — for a change made
    through the web front — the account that made it (``by``; absent otherwise, so an event
    appended without one is stored exactly as before)."""

    at: str
    event: AnyEvent  # type: ignore[valid-type]
    by: str | None = None


class Logged(msgspec.Struct, frozen=True):
    """An event read back from the log, with its position (``event`` is None only for a damaged
    row read leniently, for ``csat log``; ``damaged`` then says why)."""

    position: int
    at: str
    key: str
    event: Event
    damaged: str | None = None
    by: str | None = None  #: the web account that made the change, if any

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
        r = _STATE_DECODER.decode(state)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError, TypeError) as e:
        raise LogDamaged(position, f"the row cannot be decoded ({str(e).splitlines()[0][:120]})") from None
    return Logged(position, r.at, key, r.event, by=r.by)


def _leniently(rows: Iterable[tuple[int, str, bytes]]) -> list[Logged]:
    """Rows as events, a row that does not decode as a ``damaged`` one (for people listing the log)."""
    out = []
    for position, key, state in rows:
        try:
            out.append(_decoded(position, key, state))
        except LogDamaged as e:
            out.append(Logged(position, "", key, None, e.problem))  # type: ignore[arg-type]
    return out


def backend_for(target: str) -> Backend:
    """The backend of a store, chosen once, here: PostgreSQL for a ``postgresql://`` URL, else a
    SQLite file."""
    if is_postgres(target):
        return PostgresBackend(target)
    return SQLiteBackend(target)


def display(target: str) -> str:
    """A store as messages name it (a URL without its password)."""
    return backend_for(target).display


def discard_new(target: str) -> None:
    """Remove a store a command just created and then failed in (nothing was written to it)."""
    backend_for(target).discard()


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Store:
    """An opened csat database: the event log and, in the same database, the read models.

    ``target`` is a SQLite file path (default ``./csat.db``) or a
    ``postgresql://`` URL. The schema of the log and of the tracking table is
    eventsourcing's (its SQLite or PostgreSQL persistence module); everything
    that differs between the two is a method of the store's :attr:`backend`
    (:mod:`csat.engine.log.backend`: :mod:`~csat.engine.log.sqlite`, :mod:`~csat.engine.log.postgres`).
    """

    def __init__(self, target: str | os.PathLike[str] = DEFAULT_DB, *, create: bool = True):
        self.path = os.fspath(target)
        #: one-line notes for the user about this store (e.g. its chain was computed on this open)
        self.notices: list[str] = []
        self._sealed_after: int | None = None
        #: the append chains as it writes: the last position chained in the open write transaction,
        #: and its hash (None: none open, or the commit chains the rest, reading it back)
        self._chained = 0
        self._chain_last: bytes | None = None
        self._keys: Any = None
        #: what differs between the databases a store can be in (chosen here, once)
        self.backend: Backend = backend_for(self.path)
        self.display = self.backend.display  #: the store as messages name it (a URL without its password)
        self.backend.open(create)
        self.conn = self.backend.conn
        self.recorder, self.tracking = self.backend.recorder, self.backend.tracking
        self.insert_statement = self.backend.insert_statement
        try:
            self._create_log_tables(create)
        except BaseException:
            self.backend.close()
            raise

    def _create_log_tables(self, create: bool) -> None:
        """Create eventsourcing's log and tracking tables, and the chain's, if they are missing.

        Done under the write lock with the check repeated inside it, so several
        processes opening a new store at once create it exactly once
        (eventsourcing's own ``create_table`` is not safe against that).
        """
        names = (_TABLE, "tracking", chain.TABLE)
        if not self.backend.missing_tables(names):
            return
        if not create and _TABLE in self.backend.missing_tables(names):
            raise NoStore(self.backend.not_a_store())
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            todo = self.backend.missing_tables(names)  # again, under the lock: another process may have made them
            for name, recorder in ((_TABLE, self.recorder), ("tracking", self.tracking)):
                if name in todo:
                    self.backend.create_recorder_table(recorder)
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

    @property
    def keys(self) -> Any:
        """The key store of this store's personal data (:mod:`csat.engine.log.keys`), opened when
        first used."""
        if self._keys is None:
            self._keys = self.backend.key_store()
        return self._keys

    def close(self) -> None:
        if self._keys is not None:
            self._keys.close()
        self.backend.close()

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
        self.backend.begin_write()  # the lock first: then the end of the log holds still
        self._sealed_after = self._chained = self.max_position()
        self._chain_last = chain.hash_at(self.conn, self._sealed_after)  # (None: its head does not chain)
        self.backend.log_continues_after(self._sealed_after)

    def append(self, events: Sequence[Recorded], keys: Sequence[str] | None = None) -> None:
        """Append a batch inside the open transaction (see :meth:`begin_write`); ``keys`` are the
        events' natural keys when the caller has them already. The batch is chained as it is
        written (from the bytes written, nothing read back)."""
        enc = _STATE_ENCODER.encode
        if keys is None:
            keys = [natural_key(r.event) for r in events]
        rows = [(k, 1, tag_of(r.event), enc(r)) for k, r in zip(keys, events)]
        self.conn.executemany(self.insert_statement, rows)
        if not rows or self._chain_last is None:
            return
        if self.max_position() != self._chained + len(rows):  # rows written by another path in between
            self._chain_last = None  # the commit chains the rest from the log
            return
        hashes = chain.links(self._chain_last, self._chained, rows)
        chain.store(self.conn, hashes)
        self._chained, self._chain_last = hashes[-1]

    def replace_uncommitted(self, recorded: Recorded) -> None:
        """Rewrite an event appended earlier in the *open* transaction.

        Only ever used before commit (an implicit adoption whose ``from`` is
        lowered by a later line of the same ingest); committed rows are never
        changed.
        """
        s = MAPPER.to_stored_event(recorded)
        row = self.conn.execute(f"SELECT rowid FROM {_TABLE} WHERE originator_id = ? AND originator_version = 1",
                                (s.originator_id,)).fetchone()
        self.conn.execute(f"UPDATE {_TABLE} SET state = ? WHERE originator_id = ? AND originator_version = 1",
                          (s.state, s.originator_id))
        if row is not None and row[0] <= self._chained:  # its hash and those after it are chained again at commit
            self.conn.execute(f"DELETE FROM {chain.TABLE} WHERE position >= ?", (row[0],))
            self._chained, self._chain_last = row[0] - 1, None

    def commit(self, check: Callable[[], None] | None = None) -> None:
        """Chain what this transaction appended (the chain follows the commit order, which the
        write lock serialises), then commit; ``check`` may still refuse (raise) in between."""
        if self._sealed_after is not None and self.max_position() > self._chained:
            chain.seal(self.conn, self._chained)
        if check is not None:
            check()
        self._sealed_after = self._chain_last = None
        self.conn.execute("COMMIT")

    def try_begin_write(self) -> bool:
        """Begin a write transaction if the write lock is free now; False (and no transaction)
        when another process holds it — never waits."""
        return self.backend.try_begin_write()

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
        self._sealed_after = self._chain_last = None
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    # -- the chain ---------------------------------------------------------------

    def head(self, position: int | None = None) -> tuple[int, str]:
        """The log position (default: its end) and the chain hash there."""
        position = self.max_position() if position is None else position
        return position, chain.head(self.conn, position) or "sha256:?"

    def session(self) -> str:
        """This connection's session, as another process can check it is still there."""
        return self.backend.session()

    def session_alive(self, session: str) -> bool:
        """Is the session named by :meth:`session` (of any process) still there?"""
        return self.backend.session_alive(session)

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
                                path=self.backend.verify_file())
        finally:
            self.conn.execute("COMMIT")

    # -- tracking --------------------------------------------------------------

    def tracked(self, name: str = VIEWS, conn: sqlite3.Connection | None = None) -> int:
        """The last log position the named projection has processed (0: none)."""
        return self.backend.tracked(name, conn or self.conn)

    def track(self, position: int, name: str = VIEWS, conn: sqlite3.Connection | None = None) -> None:
        """Record, inside the caller's open transaction, that ``name`` processed up to ``position``."""
        self.backend.track(position, name, conn or self.conn)

    def forget_tracking(self, name: str = VIEWS, conn: sqlite3.Connection | None = None) -> None:
        (conn or self.conn).execute("DELETE FROM tracking WHERE application_name = ?", (name,))

    def create_tracking_table(self, conn: sqlite3.Connection) -> None:
        """eventsourcing's tracking table in another database (a private snapshot of the read models)."""
        self.backend.create_tracking_table(conn)
