"""Tamper evidence: a SHA-256 hash chain over the log (``events.md`` §6).

Every stored event has a hash, kept in the table ``event_hashes`` (position,
hash: 32 bytes) beside eventsourcing's ``stored_events`` and written in the
same write transaction as the events it covers::

    hash(n) = SHA-256( hash(n-1)                      32 bytes; hash(0) = GENESIS
                     ‖ position n                     8 bytes, unsigned big-endian
                     ‖ len(head)  ‖ head              head = key ‖ 0x1F ‖ topic, UTF-8: the natural
                                                      key (originator id) and the event type
                     ‖ len(state) ‖ state )           the stored bytes: JSON [recorded_at, event]

    GENESIS = SHA-256("csat event log, hash chain v1")

Lengths are 4 bytes, unsigned big-endian (the topic is an event type and never
holds 0x1F, so the head splits one way only). ``state`` is hashed exactly as
stored — the bytes the log keeps and every reader decodes — so the hash is the
same on every machine and version, and a store copied byte for byte keeps it.
The recording time is inside ``state``. Hashes are written as
``sha256:<64 hex digits>``; the head hash (that of the last position) is a
fingerprint of the whole history up to it.

Each link can be checked on its own from the stored hash before it, so a
verification can read the log in any order or in parallel; a break is the
first position whose link does not hold.

What the chain detects: any change, deletion, reordering or insertion of rows
before a published head, and rows appended by hand (they have no hash, or one
that does not chain). What it cannot: someone who rewrites the whole chain
from the first changed row on — unless a head published earlier is checked
(``csat verify --head POSITION:HASH``).

From the first break on, a verification lists every row whose link does not
hold and why (:func:`damage_from`). Only a row csat wrote without a hash (a
fault of csat's own) may be chained again (:func:`rechain`, ``csat repair``):
it has no stored hash, decodes, and holds exactly the bytes csat writes for
its event under that event's key and type. A row with a hash that does not
match, a missing position, a row that does not decode keep the refusal.
"""
from __future__ import annotations

import hashlib
import multiprocessing
import os
import sqlite3
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import msgspec

from ..errors import LogDamaged, PgIntegrityError
from .events import natural_key, tag_of

GENESIS = hashlib.sha256(b"csat event log, hash chain v1").digest()
PREFIX = "sha256:"
_POSITION = struct.Struct(">Q")
_LENGTH = struct.Struct(">I")
_sha256 = hashlib.sha256


def _bytes(value: object) -> bytes:
    """A column as bytes. csat writes text keys and BLOB states; a row changed by hand may hold
    anything (text where a BLOB was, NULL) and must still hash — to a value that does not chain."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    return b"" if value is None else repr(value).encode()


def link(previous: bytes, position: int, head: bytes, state: bytes) -> bytes:
    """The hash of the row at ``position`` (``head`` = key ‖ 0x1F ‖ topic), chained to ``previous``."""
    return _sha256(b"".join((previous, _POSITION.pack(position), _LENGTH.pack(len(head)), head,
                             _LENGTH.pack(len(state)), state))).digest()


def text(digest: bytes) -> str:
    return PREFIX + digest.hex()


NO_HASH = "the row has no chain hash: it was inserted outside csat, or by a faulty csat"
EDITED = "the row differs from what was appended (edited, moved, or inserted in its place)"
_DECODE_ERRORS = (msgspec.DecodeError, msgspec.ValidationError, RecursionError, TypeError)


def _not_bytes(state: object) -> str:
    return f"the row's content is {type(state).__name__}, not the bytes csat stores (changed outside csat)"


@dataclass
class Break:
    """Where the chain breaks and what is wrong there."""

    position: int
    problem: str

    def line(self) -> str:
        return f"the log does not chain at position {self.position}: {self.problem}"


def check_row(previous: bytes, expected: int, position: int, head: object, state: object,
              stored: object) -> tuple[bytes | None, Break | None]:
    """Check one row read in log order; returns its hash, or the break found there."""
    if position != expected:
        return None, Break(expected, f"position {expected} is missing (deleted); the log goes on at {position}")
    if stored is None:
        return None, Break(position, NO_HASH)
    if not isinstance(state, bytes) or not isinstance(head, bytes):
        return None, Break(position, _not_bytes(state))
    digest = link(previous, position, head, state)
    if stored != digest:
        return None, Break(position, EDITED)
    return digest, None


# -- the chain in a SQLite store (the store's seam calls these with its connection) -----------------

TABLE = "event_hashes"
CREATE = f"CREATE TABLE IF NOT EXISTS {TABLE} (position INTEGER PRIMARY KEY, hash BLOB NOT NULL)"
#: a row as the chain hashes it: position, head (key ‖ 0x1F ‖ topic, as bytes), state, stored hash.
#: The head is put together by SQLite: a text column changed by hand to something else still hashes.
HEAD = "CAST(s.originator_id || char(31) || s.topic AS BLOB)"
ROWS = f"SELECT s.rowid, {HEAD}, s.state, h.hash FROM stored_events s LEFT JOIN {TABLE} h ON h.position = s.rowid"


def hash_at(conn: sqlite3.Connection, position: int) -> bytes | None:
    """The raw hash of ``position`` (GENESIS for 0), or None when it has none."""
    if position == 0:
        return GENESIS
    row = conn.execute(f"SELECT hash FROM {TABLE} WHERE position = ?", (position,)).fetchone()
    return row[0] if row and isinstance(row[0], bytes) and len(row[0]) == 32 else None


def links(previous: bytes, after: int, rows: Sequence[tuple[str, int, str, bytes]]) -> list[tuple[int, bytes]]:
    """The hashes of ``rows`` — (key, version, topic, state) as inserted — appended at the
    positions after ``after``, chained to ``previous`` (the hash at ``after``): the append hashes
    what it writes, and nothing is read back."""
    out = []
    position = after
    for key, _, topic, state in rows:
        position += 1
        previous = link(previous, position, f"{key}\x1f{topic}".encode(), state)
        out.append((position, previous))
    return out


def store(conn: sqlite3.Connection, hashes: list[tuple[int, bytes]]) -> None:
    """Write chain hashes (inside the caller's write transaction). Raises LogDamaged when one is
    already stored for a position being appended."""
    try:
        conn.executemany(f"INSERT INTO {TABLE} VALUES (?, ?)", hashes)
    except (sqlite3.IntegrityError, PgIntegrityError):
        raise LogDamaged(hashes[0][0], "a chain hash is already stored for a position being appended (an "
                                       "event was deleted from the end of the log)") from None


def seal(conn: sqlite3.Connection, after: int, page: int = 20_000) -> int:
    """Chain the rows appended after ``after`` (inside the caller's write transaction, before
    it commits); returns how many. Raises LogDamaged when the log's head does not chain."""
    previous = hash_at(conn, after)
    if previous is None:
        raise LogDamaged(after, "the last event has no chain hash; nothing can be appended after it")
    done = after
    while True:  # in pages: a large ingest never holds its whole batch of states at once
        rows = []
        for position, head_bytes, state in conn.execute(
                f"SELECT s.rowid, {HEAD}, s.state FROM stored_events s WHERE s.rowid > ? ORDER BY s.rowid LIMIT ?",
                (done, page)).fetchall():
            if position != done + len(rows) + 1:
                raise LogDamaged(done + len(rows) + 1, "an appended event did not get the next position")
            previous = link(previous, position, head_bytes, state)
            rows.append((position, previous))
        if not rows:
            return done - after
        store(conn, rows)
        done = rows[-1][0]


def chain_all(conn: sqlite3.Connection) -> int:
    """Chain a log written before the chain existed (a store of an earlier csat)."""
    return seal(conn, 0)


def head(conn: sqlite3.Connection, position: int) -> str | None:
    """The hash at ``position`` as text (None when there is none)."""
    digest = hash_at(conn, position)
    return text(digest) if digest is not None else None


@dataclass
class Verified:
    """What ``csat verify`` found: how many events chain, the head, the first break if any, and
    the rows from it on that do not chain (:class:`Damage`)."""

    events: int
    head_position: int
    head_hash: str
    broken: Break | None = None
    checked_head: tuple[int, str] | None = None   # a published head that was asked for
    head_matches: bool | None = None
    damage: Damage | None = None                  # every row from the break on that does not chain

    @property
    def intact(self) -> bool:
        return self.broken is None and self.head_matches is not False

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"intact": self.intact, "events": self.events, "head_position": self.head_position,
                                  "head_hash": self.head_hash}
        if self.broken is not None:
            out["broken_at"] = self.broken.position
            out["problem"] = self.broken.problem
        if self.damage is not None:
            out.update(self.damage.as_dict())
        if self.checked_head is not None:
            out["checked_head"] = f"{self.checked_head[0]}:{self.checked_head[1]}"
            out["head_matches"] = self.head_matches
        return out


#: below this many events a verification runs in one process (a second one costs more to start)
PARALLEL_FROM = 50_000


@dataclass
class _Walked:
    """What walking one range of the log found."""

    next_position: int            # the first position not checked
    last: bytes                   # the hash of the last position checked
    broken: Break | None
    matches: bool | None          # the published head, when it lies in the range


def _walk(conn: sqlite3.Connection, decode: Callable[[bytes], object], after: int, upto: int, previous: bytes,
          published: tuple[int, str] | None, progress: Callable[[int], None] | None, page: int = 10_000) -> _Walked:
    """Check the links of positions after..upto, reading the log and the hashes page by page in
    step (no lookup per row); ``previous`` is the stored hash at ``after``."""
    expected, found, matches = after + 1, None, None
    decode_errors = _DECODE_ERRORS
    join, sha, pack_q, pack_i = b"".join, _sha256, _POSITION.pack, _LENGTH.pack
    done = after
    while found is None:  # page by page (keyset): on PostgreSQL a plain cursor would hold all its rows
        rows = conn.execute(f"SELECT s.rowid, {HEAD}, s.state FROM stored_events s WHERE s.rowid > ? "
                            "AND s.rowid <= ? ORDER BY s.rowid LIMIT ?", (done, upto, page)).fetchall()
        if not rows:
            break
        first, last, n = rows[0][0], rows[-1][0], len(rows)
        pending = conn.execute(f"SELECT position, hash FROM {TABLE} WHERE position > ? AND position <= ? "
                               "ORDER BY position", (done, last)).fetchall()
        if first == expected and last - first == n - 1 and len(pending) == n and pending[0][0] == first:
            paired = zip(rows, (h for _, h in pending))  # the usual case: both contiguous, in step
        else:
            stored_at = dict(pending)
            paired = zip(rows, (stored_at.get(r[0]) for r in rows))
        for (position, head_bytes, state), stored in paired:
            if position == expected and type(state) is bytes and type(head_bytes) is bytes and stored is not None:
                digest = sha(join((previous, pack_q(position), pack_i(len(head_bytes)), head_bytes,
                                   pack_i(len(state)), state))).digest()
                if digest != stored:
                    digest, found = check_row(previous, expected, position, head_bytes, state, stored)
            else:
                digest, found = check_row(previous, expected, position, head_bytes, state, stored)
            if found is None:
                try:
                    decode(state)
                except decode_errors as e:
                    found = Break(position, f"the row cannot be decoded ({str(e).splitlines()[0][:120]})")
            if found is not None:
                break
            previous = digest
            expected += 1
            if published is not None and position == published[0]:
                matches = text(digest) == published[1]
        done = last
        if progress:
            progress(n)
    if found is None and expected <= upto:
        found = Break(expected, f"position {expected} is missing (deleted); the log ends before {upto}")
    return _Walked(expected, previous, found, matches)


#: the decoder of the rows, for the forked child that walks the second half (set before it forks)
_child_decode: Callable[[bytes], object] | None = None


def _walk_in_child(path: str, after: int, upto: int, published: tuple[int, str] | None) -> _Walked:
    assert _child_decode is not None
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)  # the child's own connection to the file
    try:
        previous = hash_at(conn, after)
        if previous is None:  # the first half reports the break at `after`
            return _Walked(after + 1, GENESIS, None, None)
        return _walk(conn, _child_decode, after, upto, previous, published, None)
    finally:
        conn.close()


def deleted_tail(conn: sqlite3.Connection, expected: int | None = None) -> Break | None:
    """Events deleted from the end of the log: a chain hash stored at or after ``expected``
    (default: the position after the last event), which no row there answers."""
    if expected is None:
        expected = conn.execute("SELECT COALESCE(MAX(rowid), 0) FROM stored_events").fetchone()[0] + 1
    tail = conn.execute(f"SELECT MIN(position) FROM {TABLE} WHERE position >= ?", (expected,)).fetchone()[0]
    if tail is None:
        return None
    return Break(expected, f"position {expected} is missing (deleted): its chain hash is still stored")


def verify(conn: sqlite3.Connection, decode: Callable[[bytes], object], published: tuple[int, str] | None = None,
           progress: Callable[[int], None] | None = None, path: str | None = None) -> Verified:
    """Walk the whole log, recomputing the chain and decoding every row.

    ``published`` is a head (position, hash) published earlier: it must be on the chain.
    Each link holds or not on its own (the hash before it is stored), so a long log on a
    file (``path``) is checked in two halves by two processes at once.
    """
    upto = conn.execute("SELECT COALESCE(MAX(rowid), 0) FROM stored_events").fetchone()[0]
    halves = path is not None and upto >= PARALLEL_FROM and (os.cpu_count() or 1) > 1
    if halves:
        global _child_decode
        mid = upto // 2
        _child_decode = decode  # the forked child inherits it
        with multiprocessing.get_context("fork").Pool(1) as pool:
            second = pool.apply_async(_walk_in_child, (path, mid, upto, published))
            walked = _walk(conn, decode, 0, mid, GENESIS, published, progress)
            rest = second.get()
        if progress:
            progress(rest.next_position - mid - 1)
        if walked.broken is None and walked.next_position == mid + 1:
            walked = _Walked(rest.next_position, rest.last, rest.broken,
                             walked.matches if walked.matches is not None else rest.matches)
    else:
        walked = _walk(conn, decode, 0, upto, GENESIS, published, progress)
    found, expected = walked.broken, walked.next_position
    if found is None:
        found = deleted_tail(conn, expected)
    matches = walked.matches
    if published is not None and matches is None:
        matches = published[0] == 0 and published[1] == text(GENESIS)
    damage = damage_from(conn, decode, found.position) if found is not None else None
    return Verified(expected - 1, expected - 1, text(walked.last), found, published, matches, damage)


# -- the rows from a break on: what is wrong with each, and may csat chain it again ------------------

#: how many damaged rows a verification lists (its count covers them all)
LISTED = 100
#: a row csat wrote but did not chain (a fault of csat's own): ``csat repair`` chains it
BY_CSAT = ("the row has no chain hash, but csat wrote it (it decodes to the bytes csat writes for its event, "
           "under the event's key and type)")
#: a row whose stored hash does not follow from the row before it, which has no hash
AFTER_UNCHAINED = ("its chain hash does not follow from the row before it, which has none (one of the two was "
                   "changed outside csat)")


@dataclass
class Damaged:
    """A position from the break on whose link does not hold, why, and whether ``csat repair``
    may chain it again: only a row csat wrote without a hash may be."""

    position: int
    problem: str
    repairable: bool

    def as_dict(self) -> dict[str, object]:
        return {"position": self.position, "problem": self.problem, "repairable": self.repairable}


@dataclass
class Damage:
    """The rows from the first break on that do not chain: the first :data:`LISTED` of them, how
    many in all, and the first that ``csat repair`` may not chain again (None: it may chain all)."""

    rows: list[Damaged] = field(default_factory=list)
    count: int = 0
    unrepairable: Damaged | None = None

    @property
    def repairable(self) -> bool:
        return self.count > 0 and self.unrepairable is None

    def as_dict(self) -> dict[str, object]:
        return {"affected": [r.as_dict() for r in self.rows], "affected_count": self.count,
                "repairable": self.repairable}


def _not_by_csat(head: bytes, state: bytes, decode: Callable[[bytes], object]) -> str | None:
    """Why a row without a chain hash cannot be one csat wrote (None: it can be): it must decode,
    be stored under its event's natural key and type, and hold exactly the bytes csat writes for
    that event. (A row forged to look exactly so cannot be told from one; ``csat log`` shows it.)"""
    try:
        recorded = decode(state)
    except _DECODE_ERRORS as e:
        return f"the row cannot be decoded ({str(e).splitlines()[0][:120]})"
    event = recorded.event  # type: ignore[attr-defined]
    key, _, topic = head.decode("utf-8", "replace").rpartition("\x1f")
    if key != natural_key(event):
        return f"its key {key!r} is not its event's ({natural_key(event)!r}): inserted outside csat"
    if topic != tag_of(event):
        return f"its type {topic!r} is not its event's ({tag_of(event)!r}): inserted outside csat"
    if msgspec.json.encode(recorded) != state:
        return "its bytes are not those csat writes for its event: written outside csat"
    return None


def _damaged_from(conn: sqlite3.Connection, decode: Callable[[bytes], object], start: int,
                  page: int = 10_000) -> Iterator[tuple[int, str, bool, bytes | None]]:
    """Every position from ``start`` (the first break) to the end whose link does not hold:
    (position, why, may csat chain it again, the hash it would get then). Each link is checked
    against the hash before it as stored, or — a row without one — as csat would chain it; the
    rows are read in pages."""
    previous, unchained = hash_at(conn, start - 1), False  # start - 1 chains: start is the first break
    done, expected = start - 1, start
    while rows := conn.execute(f"{ROWS} WHERE s.rowid > ? ORDER BY s.rowid LIMIT ?", (done, page)).fetchall():
        for position, head_bytes, state, stored in rows:
            for gap in range(expected, position):
                yield gap, f"position {gap} is missing (deleted)", False, None
                previous, unchained = hash_at(conn, gap), False  # the deleted row's hash, if still stored
            expected = position + 1
            if not isinstance(state, bytes) or not isinstance(head_bytes, bytes):
                yield position, _not_bytes(state), False, None
                previous, unchained = (stored if isinstance(stored, bytes) else None), False
                continue
            digest = link(previous, position, head_bytes, state) if previous is not None else None
            if stored is None:
                why = _not_by_csat(head_bytes, state, decode)
                if why is None and digest is not None:
                    yield position, BY_CSAT, True, digest
                else:
                    yield position, f"the row has no chain hash, and {why or 'the row before it is missing'}", \
                        False, None
                previous, unchained = digest, True
                continue
            if digest is not None and digest != stored:
                yield position, AFTER_UNCHAINED if unchained else EDITED, False, None
            else:
                try:
                    decode(state)
                except _DECODE_ERRORS as e:
                    yield position, f"the row cannot be decoded ({str(e).splitlines()[0][:120]})", False, None
            previous, unchained = (stored if isinstance(stored, bytes) else None), False
        done = rows[-1][0]
    tail = conn.execute(f"SELECT MAX(position) FROM {TABLE} WHERE position >= ?", (expected,)).fetchone()[0]
    for gap in range(expected, (tail or 0) + 1):
        yield gap, f"position {gap} is missing (deleted): its chain hash is still stored", False, None


def damage_from(conn: sqlite3.Connection, decode: Callable[[bytes], object], start: int) -> Damage:
    """The rows from the first break (``start``) on that do not chain, and whether csat may chain
    each again."""
    damage = Damage()
    for position, problem, repairable, _ in _damaged_from(conn, decode, start):
        row = Damaged(position, problem, repairable)
        damage.count += 1
        if len(damage.rows) < LISTED:
            damage.rows.append(row)
        if not repairable and damage.unrepairable is None:
            damage.unrepairable = row
    return damage


def rechain(conn: sqlite3.Connection, decode: Callable[[bytes], object], start: int,
            page: int = 10_000) -> list[list[int]]:
    """Store the hashes of the rows csat wrote without one, from the first break (``start``) on,
    as the append would have (inside the caller's write transaction); returns the ranges of
    positions chained, [first, last] each. Raises LogDamaged at the first row it may not chain
    (the caller checks :func:`damage_from` first, under the same write lock)."""
    ranges: list[list[int]] = []
    batch: list[tuple[int, bytes]] = []
    for position, problem, repairable, digest in _damaged_from(conn, decode, start):
        if not repairable or digest is None:
            raise LogDamaged(position, problem)
        batch.append((position, digest))
        if ranges and ranges[-1][1] == position - 1:
            ranges[-1][1] = position
        else:
            ranges.append([position, position])
        if len(batch) >= page:
            store(conn, batch)
            batch = []
    if batch:
        store(conn, batch)
    return ranges
