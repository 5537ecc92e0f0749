"""An anonymous round's returns: each link returns each of its subjects once, and nothing in the
store says which link (or respondent) gave which response, nor in which order they came.

Two tables beside the log, neither of which a rebuild touches:

- ``csat_anon_marks``: one row per (link, subject, form) returned — the SHA-256 of the link's
  *token* (which the store never holds: ``csat_links`` keeps the token's own SHA-256, from which
  this one cannot be computed) with the subject and form. Nothing else: no time, no order (on
  SQLite a ``WITHOUT ROWID`` table, its rows in the order of these random-looking digests; on
  PostgreSQL a heap table with no serial column). Whoever holds the token — the rater's page —
  can ask which of its subjects were returned; the store alone cannot join a mark to a link.
- ``csat_anon_pool``: the anonymous responses accepted and not yet in the log, each as the log
  would hold it (its personal fields sealed, its recording time the day): a random key, the
  round, the day, the event's natural key and body — never the link. On SQLite ``WITHOUT ROWID``.

A return is one write transaction (:func:`return_anonymously`): the ingest checks the events
against the log (and the pool), the marks of this link's subjects are inserted — a mark already
there refuses the whole return (:class:`Returned`) — and the responses go to the pool; the marks
and the responses commit together or not at all (a server killed in between leaves neither:
the link may answer again). When the pool holds :data:`BATCH` responses, they are appended to the
log in a random order in that same transaction, all under their day's time; a day's rest is
released by the first write of a later day, and a round's rest before the round's closing.
So neither positions nor recording times tell the responses of a batch apart, and a batch's
release names no link.
"""
from __future__ import annotations

import hashlib
import random
import secrets
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec

from ..errors import CsatError
from ..log.events import DealingsDeclined, ResponseRecorded
from ..log.store import Recorded, now

#: anonymous responses released to the log together, in a random order
BATCH = 5
_SHUFFLE = random.SystemRandom()
_RECORDED = msgspec.json.Decoder(Recorded)
_ENCODE = msgspec.json.Encoder()


class Returned(CsatError):
    """The link has returned this subject (and form) already: nothing recorded."""


def day_of(at: str) -> str:
    """A recording time to the day: midnight UTC (``YYYY-MM-DDT00:00:00.000000Z``)."""
    return at[:10] + "T00:00:00.000000Z"


def is_day_level(at: str) -> bool:
    return at.endswith("T00:00:00.000000Z")


def mark(token: str, subject: str, form: str | None) -> str:
    """The mark of a link's return of a subject (and form): a digest of the token itself."""
    return hashlib.sha256(f"csat-anonymous-return\0{token}\0{subject}\0{form or ''}".encode()).hexdigest()


def ensure(store: Any) -> None:
    """Create the two tables if missing (once per store object)."""
    if getattr(store, "_anon_ready", False):
        return
    tail = store.backend.unordered_table
    store.conn.execute(f"CREATE TABLE IF NOT EXISTS csat_anon_marks (mark TEXT PRIMARY KEY){tail}")
    store.conn.execute("CREATE TABLE IF NOT EXISTS csat_anon_pool (k TEXT PRIMARY KEY, round TEXT NOT NULL, "
                       f"day TEXT NOT NULL, nkey TEXT NOT NULL, body TEXT NOT NULL){tail}")
    store._anon_ready = True


def _exists(store: Any) -> bool:
    """Has this store the pool (without creating it: most stores never hold an anonymous round)."""
    if getattr(store, "_anon_ready", False):
        return True
    if _table(store, "csat_anon_pool"):
        store._anon_ready = True
        return True
    return False


def _table(store: Any, name: str) -> bool:
    return not store.backend.missing_tables([name])


def _legacy(store: Any, token: str) -> bool:
    """A link that returned before csat kept a return per subject (``csat_link_returns``, by
    the token's hash): its return stands for every subject."""
    if not _table(store, "csat_link_returns"):
        return False
    return store.conn.execute("SELECT 1 FROM csat_link_returns WHERE hash = ?",
                              (hashlib.sha256(token.encode()).hexdigest(),)).fetchone() is not None


def returned(store: Any, token: str, pairs: Iterable[tuple[str, str | None]]) -> set[tuple[str, str | None]]:
    """Which of a link's (subject, form) pairs it has returned."""
    pairs = list(pairs)
    if not pairs or not _exists(store):
        return set()
    by_mark = {mark(token, s, f): (s, f) for s, f in pairs}
    marks = list(by_mark)
    found = store.conn.execute(f"SELECT mark FROM csat_anon_marks WHERE mark IN ({','.join('?' * len(marks))})",
                               marks).fetchall()
    return {by_mark[m] for (m,) in found}


# -- inside an ingest (csat.engine.app.ingest) -------------------------------------------------

class Hold:
    """The anonymous side of one ingest call that records a link's return (``Ingest.hold``).

    :param claims: natural key of each event of the return → the marks it takes.
    :param round_id: the anonymous round.
    """

    def __init__(self, store: Any, claims: dict[str, list[str]], round_id: str):
        self.store = store
        self.claims = claims
        self.round = round_id
        ensure(store)

    def known(self, keys: Sequence[str]) -> dict[str, Any]:
        """The pool's events under ``keys`` (a page sent again finds its own return there)."""
        keys = list(keys)
        if not keys:
            return {}
        rows = self.store.conn.execute(f"SELECT nkey, body FROM csat_anon_pool WHERE nkey IN "
                                       f"({','.join('?' * len(keys))})", keys).fetchall()
        return {k: _RECORDED.decode(body).event for k, body in rows}

    def take(self, ingest: Any) -> None:
        """Before a chunk is appended: take this return's marks (refusing a subject returned
        already), move its anonymous responses to the pool, and release the pool when full."""
        conn = self.store.conn
        kept: list[tuple[Recorded, str]] = []
        held = []
        taken: list[str] = []
        for rec, key in zip(ingest.pending, ingest.pending_keys):
            for m in self.claims.get(key, []):
                if conn.execute("SELECT 1 FROM csat_anon_marks WHERE mark = ?", (m,)).fetchone() is not None:
                    raise Returned("this link has returned this questionnaire already")
                taken.append(m)
            if isinstance(rec.event, ResponseRecorded) and key in self.claims:
                held.append((rec, key))
            else:
                kept.append((rec, key))
        _SHUFFLE.shuffle(taken)  # (a heap table keeps the order rows were written in)
        conn.executemany("INSERT INTO csat_anon_marks (mark) VALUES (?)", [(m,) for m in taken])
        _SHUFFLE.shuffle(held)
        conn.executemany("INSERT INTO csat_anon_pool (k, round, day, nkey, body) VALUES (?, ?, ?, ?, ?)",
                         [(secrets.token_hex(16), self.round, rec.at[:10], key, _ENCODE.encode(rec).decode())
                          for rec, key in held])
        ingest.pending[:] = [r for r, _ in kept]
        ingest.pending_keys[:] = [k for _, k in kept]
        (n,) = conn.execute("SELECT COUNT(*) FROM csat_anon_pool").fetchone()
        if n >= BATCH:
            _release(self.store, "", (), ingest.pending, ingest.pending_keys)


def _release(store: Any, where: str, args: Sequence[Any], pending: list[Recorded], keys: list[str]) -> int:
    """Move the pool's rows (those ``where`` selects) to the end of ``pending``, in a random order."""
    rows = store.conn.execute(f"SELECT k, nkey, body FROM csat_anon_pool{where}", tuple(args)).fetchall()
    if not rows:
        return 0
    rows = list(rows)
    _SHUFFLE.shuffle(rows)
    for _, key, body in rows:
        pending.append(_RECORDED.decode(body))
        keys.append(key)
    ks = [k for k, _, _ in rows]
    for i in range(0, len(ks), 500):
        part = ks[i:i + 500]
        store.conn.execute(f"DELETE FROM csat_anon_pool WHERE k IN ({','.join('?' * len(part))})", part)
    return len(rows)


def release_due(store: Any) -> int:
    """At the start of an ingest (inside its transaction): append the pool's responses of days
    before today, shuffled. Returns how many."""
    if not _exists(store):
        return 0
    pending: list[Recorded] = []
    keys: list[str] = []
    n = _release(store, " WHERE day < ?", (now()[:10],), pending, keys)
    if n:
        store.append(pending, keys)
    return n


def release_round(ingest: Any, round_id: str) -> None:
    """Before a round's closing is appended: its responses still in the pool go first, shuffled."""
    if _exists(ingest.store):
        _release(ingest.store, " WHERE round = ?", (round_id,), ingest.pending, ingest.pending_keys)


def release_all(engine: Any) -> int:
    """Append every response in the pool now (shuffled), in one write transaction; how many."""
    store = engine.store
    if not _exists(store):
        return 0
    store.begin_write()
    try:
        pending: list[Recorded] = []
        keys: list[str] = []
        n = _release(store, "", (), pending, keys)
        if n:
            store.append(pending, keys)
    except BaseException:
        store.rollback()
        raise
    store.commit()
    return n


def pooled(store: Any) -> int:
    """How many anonymous responses wait in the pool."""
    if not _exists(store):
        return 0
    return int(store.conn.execute("SELECT COUNT(*) FROM csat_anon_pool").fetchone()[0])


def held_returns(store: Any, round_id: str) -> list[tuple[str, str, str]]:
    """A round's anonymous responses waiting in the pool, as (rater unit, subject, day): what its
    status counts as returned before they reach the log (no link, no order: the rows are read in
    key order, and the keys are random)."""
    if not _exists(store):
        return []
    out = []
    for (body,) in store.conn.execute("SELECT body FROM csat_anon_pool WHERE round = ? ORDER BY k", (round_id,)):
        ev = _RECORDED.decode(body).event
        if isinstance(ev, ResponseRecorded) and ev.rater is not None:
            out.append((ev.rater, ev.subject, ev.received or _RECORDED.decode(body).at[:10]))
    return out


def held(store: Any, round_id: str) -> int:
    """How many of a round's anonymous responses wait in the pool."""
    if not _exists(store):
        return 0
    return int(store.conn.execute("SELECT COUNT(*) FROM csat_anon_pool WHERE round = ?", (round_id,)).fetchone()[0])


# -- a link's return ---------------------------------------------------------------------------

def claims_of(token: str, events: list[dict[str, Any]], forms: list[str | None]) -> dict[str, list[str]]:
    """Each event's natural key → the marks it takes: a response its subject and form's, a
    "no dealings" every form of its subject."""
    out: dict[str, list[str]] = {}
    for ev in events:
        if ev.get("type") == "response":
            out[f"response:{ev['id']}"] = [mark(token, ev["subject"], ev.get("form"))]
        elif ev.get("type") == "no_dealings":
            tag = DealingsDeclined.__struct_config__.tag
            out[f"{tag}:{ev['id']}"] = [mark(token, ev["subject"], f) for f in forms]
    return out


def _forms(engine: Any, a: dict[str, Any]) -> list[str | None]:
    forms = engine.describe_ruleset(a["ruleset"], a["period"])["questionnaire"]["forms"]
    return list(forms) or [None]


def return_anonymously(engine: Any, token: str, events: list[dict[str, Any]]) -> Any:
    """Record an anonymous link's return (:mod:`this module <csat.engine.app.anonymous>`): one write
    transaction takes the marks and records the events (the responses to the pool), or refuses
    both. ``events``: responses and "no dealings" of the link's own subjects, round and month.

    :raises NotFound: the link opens no open anonymous round.
    :raises Returned: a subject (and form) of it was returned by this link already.
    :raises IngestFailed: the engine refused an event (nothing recorded).
    """
    from ..errors import NotFound
    from .inputs import dict_lines
    from .ingest import Ingest
    from .links import assignment
    a = assignment(engine, token)
    if a is None or not a["anonymous"]:
        raise NotFound("no open anonymous round for this link")
    subjects = {s["id"] for s in a["subjects"]}
    for i, ev in enumerate(events):
        ok = ev.get("subject") in subjects and (
            (ev.get("type") == "response" and (ev.get("ruleset"), ev.get("period")) == (a["ruleset"], a["period"])
             and ev.get("rater") == a["rater"])
            or (ev.get("type") == "no_dealings" and ev.get("round") == a["round"]))
        if not ok:
            raise CsatError(f"events[{i}]: a link returns responses (or no dealings) of its own subjects only")
    ing = Ingest(engine.store, engine.rulesets, engine.projection)
    ing.hold = Hold(engine.store, claims_of(token, events, _forms(engine, a)), a["round"])
    return ing.run(dict_lines(events))


def returned_of(engine: Any, token: str) -> list[tuple[str, str | None]]:
    """The (subject, form) pairs an anonymous link has returned (none: not an open anonymous round)."""
    from .links import assignment
    a = assignment(engine, token)
    if a is None or not a["anonymous"]:
        return []
    pairs = [(s["id"], f) for s in a["subjects"] for f in _forms(engine, a)]
    if _legacy(engine.store, token):
        return pairs
    got = returned(engine.store, token, pairs)
    return [p for p in pairs if p in got]


def position_at(store: Any, stamp: str) -> int:
    """The last position recorded at or before ``stamp`` (UTC, without its ``Z``).

    Recording times do not decrease along the log, except an anonymous response's: it carries
    its day (midnight), whatever precise times came before it that day. Such a row counts as
    recorded when the last precisely timed event before it was (a batch released before any
    event of its day: at its day's midnight) — so the search stays a binary search."""
    def effective(p: int) -> str:
        hi = p
        while hi >= 1:
            lo = max(1, hi - 63)
            found = store.at_positions(range(lo, hi + 1))
            for q in range(hi, lo - 1, -1):
                if q in found and not is_day_level(found[q].at):
                    return found[q].at.rstrip("Z")
            hi = lo - 1
        got = store.at_positions([p]).get(p)
        return got.at.rstrip("Z") if got else ""

    lo, hi = 0, store.max_position()
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if effective(mid)[:len(stamp)] <= stamp:
            lo = mid
        else:
            hi = mid - 1
    return lo
