"""Tamper evidence: a SHA-256 hash chain over the log (``events.md`` §6).

Every stored event has a hash, kept in the table ``event_hashes`` (position,
hash) beside eventsourcing's ``stored_events`` and written in the same write
transaction as the events it covers::

    hash(n) = SHA-256( hash(n-1)                      32 bytes; hash(0) = GENESIS
                     ‖ position n                     8 bytes, unsigned big-endian
                     ‖ len(key)   ‖ key               the natural key (originator id), UTF-8
                     ‖ len(topic) ‖ topic             the event type, UTF-8
                     ‖ len(state) ‖ state )           the stored bytes: JSON [recorded_at, event]

Lengths are 4 bytes, unsigned big-endian. ``state`` is hashed exactly as
stored — the bytes the log keeps and every reader decodes — so the hash is the
same on every machine and version, and a store copied byte for byte keeps it.
The recording time is inside ``state``. Hashes are written as
``sha256:<64 hex digits>``; the head hash (that of the last position) is a
fingerprint of the whole history up to it.

What the chain detects: any change, deletion, reordering or insertion of rows
before a published head, and rows appended by hand (they have no hash, or one
that does not chain). What it cannot: someone who rewrites the whole chain
from the first changed row on — unless a head published earlier is checked
(``csat verify --head POSITION:HASH``).
"""
from __future__ import annotations

import hashlib
import sqlite3
import struct
from collections.abc import Callable
from dataclasses import dataclass

import msgspec

from .errors import LogDamaged

GENESIS = hashlib.sha256(b"csat event log, hash chain v1").digest()
PREFIX = "sha256:"
_POSITION = struct.Struct(">Q")
_LENGTH = struct.Struct(">I")


def _bytes(value: object) -> bytes:
    """A column as bytes. csat writes text keys and BLOB states; a row changed by hand may hold
    anything (text where a BLOB was, NULL) and must still hash — to a value that does not chain."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    return b"" if value is None else repr(value).encode()


def link(previous: bytes, position: int, key: str, topic: str, state: bytes) -> bytes:
    """The hash of the row at ``position``, chained to ``previous`` (raw 32 bytes)."""
    k, t, state = _bytes(key), _bytes(topic), _bytes(state)
    h = hashlib.sha256(previous)
    h.update(_POSITION.pack(position))
    h.update(_LENGTH.pack(len(k)))
    h.update(k)
    h.update(_LENGTH.pack(len(t)))
    h.update(t)
    h.update(_LENGTH.pack(len(state)))
    h.update(state)
    return h.digest()


def text(digest: bytes) -> str:
    return PREFIX + digest.hex()


def raw(hash_text: str) -> bytes | None:
    """``sha256:…`` back to 32 bytes, or None when it is not such a hash."""
    if not hash_text.startswith(PREFIX):
        return None
    try:
        digest = bytes.fromhex(hash_text[len(PREFIX):])
    except ValueError:
        return None
    return digest if len(digest) == 32 else None


@dataclass
class Break:
    """Where the chain breaks and what is wrong there."""

    position: int
    problem: str

    def line(self) -> str:
        return f"the log does not chain at position {self.position}: {self.problem}"


def check_row(previous: bytes, expected: int, position: int, key: str, topic: str, state: bytes,
              stored: str | None) -> tuple[bytes | None, Break | None]:
    """Check one row read in log order; returns its hash, or the break found there."""
    if position != expected:
        return None, Break(expected, f"position {expected} is missing (deleted); the log goes on at {position}")
    if stored is None:
        return None, Break(position, "the row has no chain hash: it was inserted outside csat")
    if not isinstance(state, bytes):
        return None, Break(position, f"the row's content is {type(state).__name__}, not the bytes csat stores "
                                     "(changed outside csat)")
    digest = link(previous, position, key, topic, state)
    if raw(stored) != digest:
        return None, Break(position, "the row differs from what was appended (edited, moved, or inserted in its "
                                     "place)")
    return digest, None


# -- the chain in a SQLite store (the store's seam calls these with its connection) -----------------

TABLE = "event_hashes"
CREATE = f"CREATE TABLE IF NOT EXISTS {TABLE} (position INTEGER PRIMARY KEY, hash TEXT NOT NULL)"
ROWS = ("SELECT s.rowid, s.originator_id, s.topic, s.state, h.hash FROM stored_events s "
        f"LEFT JOIN {TABLE} h ON h.position = s.rowid")


def hash_at(conn: sqlite3.Connection, position: int) -> bytes | None:
    """The raw hash of ``position`` (GENESIS for 0), or None when it has none."""
    if position == 0:
        return GENESIS
    row = conn.execute(f"SELECT hash FROM {TABLE} WHERE position = ?", (position,)).fetchone()
    return raw(row[0]) if row else None


def seal(conn: sqlite3.Connection, after: int) -> int:
    """Chain the rows appended after ``after`` (inside the caller's write transaction, before
    it commits); returns how many. Raises LogDamaged when the log's head does not chain."""
    previous = hash_at(conn, after)
    if previous is None:
        raise LogDamaged(after, "the last event has no chain hash; nothing can be appended after it")
    rows = []
    for position, key, topic, state in conn.execute(
            "SELECT rowid, originator_id, topic, state FROM stored_events WHERE rowid > ? ORDER BY rowid", (after,)):
        if position != after + len(rows) + 1:
            raise LogDamaged(after + len(rows) + 1, "an appended event did not get the next position")
        previous = link(previous, position, key, topic, state)
        rows.append((position, text(previous)))
    try:
        conn.executemany(f"INSERT INTO {TABLE} VALUES (?, ?)", rows)
    except sqlite3.IntegrityError:
        raise LogDamaged(rows[0][0], "a chain hash is already stored for a position being appended (an event "
                                     "was deleted from the end of the log)") from None
    return len(rows)


def chain_all(conn: sqlite3.Connection) -> int:
    """Chain a log written before the chain existed (a store of an earlier csat)."""
    return seal(conn, 0)


def head(conn: sqlite3.Connection, position: int) -> str | None:
    """The hash at ``position`` as text (None when there is none)."""
    digest = hash_at(conn, position)
    return text(digest) if digest is not None else None


@dataclass
class Verified:
    """What ``csat verify`` found: how many events chain, the head, and the first break if any."""

    events: int
    head_position: int
    head_hash: str
    broken: Break | None = None
    checked_head: tuple[int, str] | None = None   # a published head that was asked for
    head_matches: bool | None = None

    @property
    def intact(self) -> bool:
        return self.broken is None and self.head_matches is not False

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"intact": self.intact, "events": self.events, "head_position": self.head_position,
                                  "head_hash": self.head_hash}
        if self.broken is not None:
            out["broken_at"] = self.broken.position
            out["problem"] = self.broken.problem
        if self.checked_head is not None:
            out["checked_head"] = f"{self.checked_head[0]}:{self.checked_head[1]}"
            out["head_matches"] = self.head_matches
        return out


def verify(conn: sqlite3.Connection, decode: Callable[[bytes], object], published: tuple[int, str] | None = None,
           progress: Callable[[int], None] | None = None, page: int = 10_000) -> Verified:
    """Walk the whole log once, in order, recomputing the chain and decoding every row.

    ``published`` is a head (position, hash) published earlier: it must be on the chain.
    """
    previous, expected, last_hash = GENESIS, 1, text(GENESIS)
    found: Break | None = None
    matches: bool | None = None
    cursor = conn.execute(ROWS + " ORDER BY s.rowid")
    while found is None and (rows := cursor.fetchmany(page)):
        for position, key, topic, state, stored in rows:
            digest, found = check_row(previous, expected, position, key, topic, state, stored)
            if found is None:
                try:
                    decode(state)
                except (msgspec.DecodeError, msgspec.ValidationError, RecursionError, TypeError) as e:
                    found = Break(position, f"the row cannot be decoded ({str(e).splitlines()[0][:120]})")
            if found is not None:
                break
            previous, expected, last_hash = digest, expected + 1, stored
            if published is not None and position == published[0]:
                matches = stored == published[1]
        if progress:
            progress(len(rows))
    if found is None:
        tail = conn.execute(f"SELECT MIN(position) FROM {TABLE} WHERE position >= ?", (expected,)).fetchone()[0]
        if tail is not None:
            found = Break(expected, f"position {expected} is missing (deleted): its chain hash is still stored")
    if published is not None and matches is None:
        matches = published[0] == 0 and published[1] == text(GENESIS)
    return Verified(expected - 1, expected - 1, last_hash, found, published, matches)
