"""Read models: tables in the store's SQLite file, derived from the log.

Published: ``scores`` (one row per rule set, period, subject, metric).
Working state (``rm_*``): responses as they stand after corrections and
withdrawals, which subjects each response is credited to, adoptions, units,
and the subject-months waiting to be rescored. Everything here can be dropped
and rebuilt from the log; a schema version change does exactly that.
"""
from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import msgspec
from ..log.sqlitedb import sqlite_utils

from . import explained
from ..errors import InvalidParams
from ..scoring.params import params_hash
from ..scoring.ruleset import Adoption, ResponseState, RuleSet

SCHEMA_VERSION = 13

TABLES = ("scores", "rm_responses", "rm_credits", "rm_adoptions", "rm_units", "rm_dirty", "rm_cases",
          "rm_closures", "rm_rectifications", "rm_rectification_updates", "rm_rulesets", "rm_explained", "rm_rounds",
          "rm_announcements", "rm_announced", "rm_erasures", "rm_meta")

_STATE_ENC = msgspec.json.Encoder()
_STATE_DEC = msgspec.json.Decoder(ResponseState)


def encode_state(state: ResponseState) -> bytes:
    return _STATE_ENC.encode(state)


def decode_state(blob: bytes) -> ResponseState:
    return _STATE_DEC.decode(blob)



def schema_version(db: sqlite_utils.Database) -> int | None:
    """The read models' schema version (None: none yet). Reads only; takes no lock."""
    if not db["rm_meta"].exists():
        return None
    row = db.execute("SELECT value FROM rm_meta WHERE key = 'schema'").fetchone()
    return int(row[0]) if row else None


def _create_rulesets_table(db: sqlite_utils.Database) -> None:
    # per rule set: how many events of the log belong to it, and whether some were applied while it
    # could not be used (not installed, or its plugin failed): those need re-crediting when it is back
    db["rm_rulesets"].create({"ruleset": str, "events": int, "pending": int}, pk="ruleset")


def chart_mark(conn: Any) -> str | None:
    """What the stored org chart and adoptions are now: a token changed whenever a ``unit`` or an
    ``adoption`` is applied (or a rebuild writes them), so a process's copy in memory is reloaded
    only when it is stale, not whenever the log moves."""
    row = conn.execute("SELECT value FROM rm_meta WHERE key = 'chart'").fetchone()
    return row[0] if row else None


def mark_chart(conn: Any) -> None:
    """Inside the write transaction that applied a ``unit`` or an ``adoption``."""
    conn.execute("INSERT OR REPLACE INTO rm_meta (key, value) VALUES ('chart', ?)", (uuid.uuid4().hex,))


def _create_erasures_table(db: sqlite_utils.Database) -> None:
    """The keys destroyed by erasures (their sealed values show as erased)."""
    if not db["rm_erasures"].exists():
        db["rm_erasures"].create({"key": str, "id": str, "position": int}, pk="key")


def _create_rounds_table(db: sqlite_utils.Database) -> None:
    """The assessment cycle's tables (a store migrated from an earlier schema may hold some)."""
    if db["rm_rounds"].exists() and db["rm_announcements"].exists() and db["rm_announced"].exists():
        return
    for name in ("rm_rounds", "rm_announcements", "rm_announced"):
        db[name].drop(ignore=True)
    # assessment rounds: one row per event — the round opened (spec: its JSON), a rater's "no
    # dealings" with a subject, the round closed
    db["rm_rounds"].create({"round": str, "kind": str, "event": str, "rater": str, "subject": str, "date": str,
                            "spec": str, "position": int}, pk="event")
    # announcements (公示), and the figures each announced (filled when first asked for: the log
    # before an announcement never changes, so neither do they)
    db["rm_announcements"].create({"id": str, "ruleset": str, "period": str, "under": str, "date": str,
                                   "position": int}, pk="id")
    db["rm_announced"].create({"announcement": str, "subject": str, "metric": str, "score": str, "grade": str,
                               "responses": int}, pk=("announcement", "subject", "metric"))


def _backfill_recorded(db: sqlite_utils.Database, recorded_at: Callable[[list[int]], dict[int, str]]) -> None:
    """10 → 11: each stored response's recording time (read from the log by position)."""
    rows = db.execute("SELECT id, position, state FROM rm_responses ORDER BY position").fetchall()
    for i in range(0, len(rows), 500):
        chunk = rows[i:i + 500]
        times = recorded_at([pos for _, pos, _ in chunk])
        db.conn.executemany("UPDATE rm_responses SET state = ? WHERE id = ?", [
            (encode_state(msgspec.structs.replace(decode_state(bytes(blob)), recorded=times.get(pos) or None)), rid)
            for rid, pos, blob in chunk])


def ensure_schema(db: sqlite_utils.Database, installed: Iterable[str] = (), indexes: bool = True,
                  recorded_at: Callable[[list[int]], dict[int, str]] | None = None) -> bool:
    """Create or migrate the read-model tables (inside the caller's write transaction);
    returns True when they were (re)created empty.

    Version 6 → 7 is a migration, not a drop: the published ``scores`` of rule
    sets that are not installed must survive (``events.md`` §6). ``recorded_at``
    (positions → the log's recording times) fills what a migration reads from the log.
    """
    version = schema_version(db)
    if version == SCHEMA_VERSION:
        return False
    if version in (6, 7, 8, 9, 10, 11, 12):
        with db.atomic():
            if version == 6:
                _create_rulesets_table(db)
                counts: dict[str, int] = {}
                for table in ("rm_responses", "rm_adoptions"):
                    for ruleset, n in db.execute(f"SELECT ruleset, COUNT(*) FROM {table} GROUP BY ruleset"):
                        counts[ruleset] = counts.get(ruleset, 0) + n
                ok = set(installed)
                db["rm_rulesets"].insert_all([{"ruleset": r, "events": n, "pending": int(r not in ok)}
                                              for r, n in counts.items()])
            if version in (6, 7):  # 7 → 8: the parameter version each adoption was stored in (earlier: 1)
                db.execute("ALTER TABLE rm_adoptions ADD COLUMN version INTEGER NOT NULL DEFAULT 1")
            if version in (6, 7, 8):
                explained.create_table(db.conn)  # 8 → 9: stored explanations
            _create_rounds_table(db)  # 9 → 10: assessment rounds
            _create_erasures_table(db)  # 10 → 11: erasures
            if recorded_at is not None and version <= 10:
                _backfill_recorded(db, recorded_at)  # 10 → 11: responses' recording times
            db.execute("DROP INDEX IF EXISTS idx_scores_ruleset_subject_kind")  # 11 → 12: a subject's months
            create_indexes(db, ["scores"])  # read in order by one index (was: every row of the rule set)
            create_indexes(db, ["rm_cases", "rm_rectifications"])  # 12 → 13: the units with cases in a month
            db.execute("UPDATE rm_meta SET value = ? WHERE key = 'schema'", (str(SCHEMA_VERSION),))
        return False
    drop_all(db)
    with db.atomic():
        db["rm_meta"].create({"key": str, "value": str}, pk="key")
        db["rm_meta"].insert({"key": "schema", "value": str(SCHEMA_VERSION)})
        db["scores"].create({
            "ruleset": str, "period": str, "subject": str, "metric": str, "kind": str,
            "adoption": str, "params_hash": str, "score": str, "grade": str, "grade_label": str,
            "responses": int, "extras": str, "state": str,
        }, pk=("ruleset", "period", "subject", "metric"))
        db["rm_responses"].create({"id": str, "position": int, "ruleset": str, "period": str,
                                   "subject": str, "state": bytes}, pk="id")
        db["rm_credits"].create({"ruleset": str, "subject": str, "period": str, "response": str,
                                 "role": str, "via": str},
                                pk=("ruleset", "period", "subject", "response", "role", "via"))
        db["rm_adoptions"].create({"ruleset": str, "id": str, "from_": str, "position": int,
                                   "params": str, "hash": str, "version": int}, pk=("ruleset", "id"))
        db["rm_units"].create({"id": str, "from_": str, "position": int, "name": str, "kind": str,
                               "parent": str}, pk=("id", "from_"))
        db["rm_dirty"].create({"ruleset": str, "subject": str, "period": str},
                              pk=("ruleset", "subject", "period"))
        # complaint cases: filed complaints and the remedy cases rule sets derive from responses
        db["rm_cases"].create({"id": str, "kind": str, "subject": str, "period": str, "ruleset": str,
                               "severity": str, "source": str, "category": str, "response": str, "text": str,
                               "date": str, "position": int}, pk="id")
        db["rm_closures"].create({"id": str, "complaint": str, "date": str, "outcome": str, "note": str,
                                  "position": int}, pk="id")
        db["rm_rectifications"].create({"id": str, "subject": str, "period": str, "issue": str, "due": str,
                                        "ruleset": str, "complaint": str, "response": str, "item": str,
                                        "position": int}, pk="id")
        db["rm_rectification_updates"].create({"id": str, "rectification": str, "status": str, "date": str,
                                               "note": str, "position": int}, pk="id")
        _create_rulesets_table(db)
        explained.create_table(db.conn)
        _create_rounds_table(db)
        _create_erasures_table(db)
        if indexes:
            create_indexes(db)
    return True


#: The read models' secondary indexes, by table. A replay (rebuild, snapshot) creates its tables
#: without them, writes the rows in bulk and builds each table's indexes once its rows are in.
INDEXES = {
    # a subject's month figures in month order (roll-ups, sequences): equality on three columns and
    # the order from the fourth, so the planner never prefers the primary key's (ruleset, period …)
    "scores": ["CREATE INDEX IF NOT EXISTS idx_scores_subject_kind_period ON scores (ruleset, subject, kind, period)"],
    "rm_responses": ["CREATE INDEX IF NOT EXISTS idx_rm_responses_ruleset_period ON rm_responses (ruleset, period)"],
    "rm_credits": [
        "CREATE INDEX IF NOT EXISTS idx_rm_credits_response ON rm_credits (response)",
        "CREATE INDEX IF NOT EXISTS idx_rm_credits_subject_period ON rm_credits (subject, period)",
        # credits that came through a member (team roll-ups): what a unit event re-credits
        "CREATE INDEX IF NOT EXISTS rm_credits_via ON rm_credits (via, period) WHERE via != ''"],
    "rm_cases": ["CREATE INDEX IF NOT EXISTS idx_rm_cases_subject_period ON rm_cases (subject, period)",
                 # the units with complaints in a month (read once per month scored): was a scan of
                 # every case per month, which made a rebuild's time grow with months × cases
                 "CREATE INDEX IF NOT EXISTS idx_rm_cases_period_kind ON rm_cases (period, kind, subject)"],
    "rm_closures": ["CREATE INDEX IF NOT EXISTS idx_rm_closures_complaint ON rm_closures (complaint)"],
    "rm_rectifications": [
        "CREATE INDEX IF NOT EXISTS idx_rm_rectifications_complaint ON rm_rectifications (complaint)",
        "CREATE INDEX IF NOT EXISTS idx_rm_rectifications_subject_due ON rm_rectifications (subject, due)",
        "CREATE INDEX IF NOT EXISTS idx_rm_rectifications_due ON rm_rectifications (due, subject)"],
    "rm_rectification_updates": [
        "CREATE INDEX IF NOT EXISTS idx_rm_rectification_updates_rectification "
        "ON rm_rectification_updates (rectification)"],
}


def create_indexes(db: sqlite_utils.Database, tables: Iterable[str] | None = None) -> None:
    for table in (INDEXES if tables is None else tables):
        for statement in INDEXES[table]:
            db.execute(statement)


def clear_all(db: sqlite_utils.Database) -> None:
    """Empty every read-model table, keeping the tables and their indexes. On PostgreSQL a reader
    of the published tables then goes on reading its snapshot of the old rows while a rebuild
    refills them (DROP TABLE would make it wait for the rebuild's commit)."""
    for name in TABLES:
        if name != "rm_meta":
            db.execute(f"DELETE FROM {name}")


def drop_all(db: sqlite_utils.Database) -> None:
    with db.atomic():
        for name in TABLES:
            db[name].drop(ignore=True)


class Adoptions:
    """The adoptions of the log, by rule set, with their decoded parameters."""

    def __init__(self, rulesets: dict[str, RuleSet]):
        self.rulesets = rulesets
        self._by_ruleset: dict[str, list[Adoption]] = {}
        #: rule set -> why one of its adoptions could not be decoded by the installed rule set
        self.failed: dict[str, str] = {}

    @classmethod
    def load(cls, conn: sqlite3.Connection, rulesets: dict[str, RuleSet]) -> "Adoptions":
        a = cls(rulesets)
        for ruleset, id_, from_, position, params, version in conn.execute(
                "SELECT ruleset, id, from_, position, params, version FROM rm_adoptions ORDER BY position"):
            a.add(ruleset, id_, from_, position, msgspec.json.decode(params), version)
        return a

    def add(self, ruleset: str, id_: str, from_: str, position: int, params: dict[str, Any],
            version: int | None = None) -> Adoption:
        """Add an adoption as stored; parameters of an older version of the rule set are upgraded
        (the rule set's ``upgrade_params``), decoded and checked."""
        rs = self.rulesets.get(ruleset)
        decoded, data, upgraded = params, params, None
        if rs is not None and ruleset not in self.failed:
            try:
                stored_version = version or 1
                if stored_version > rs.params_version:
                    raise InvalidParams([f"its parameters are of version {stored_version}, newer than the installed "
                                         f"{rs.id} (version {rs.params_version}): upgrade the plugin"])
                if stored_version < rs.params_version:
                    data = rs.upgrade_params(dict(params), stored_version)
                    upgraded = stored_version
                decoded = rs.decode_params(data, f"adoption {id_}")
            except Exception as e:  # noqa: BLE001 — a plugin's parameters that no longer decode
                self.failed[ruleset] = f"the parameters of adoption {id_!r} do not decode: {e}"
        adoption = Adoption(ruleset, id_, from_, position, params_hash(params), decoded, data, upgraded)
        lst = [x for x in self._by_ruleset.get(ruleset, []) if x.id != id_]
        lst.append(adoption)
        lst.sort(key=lambda x: (x.from_, x.position))
        self._by_ruleset[ruleset] = lst
        return adoption

    def copy(self) -> "Adoptions":
        """An independent copy (decoded parameters shared; they are immutable)."""
        other = Adoptions(self.rulesets)
        other._by_ruleset = {k: list(v) for k, v in self._by_ruleset.items()}
        other.failed = dict(self.failed)
        return other

    def in_force(self, ruleset: str, month: str) -> Adoption | None:
        """The latest adoption whose ``from`` ≤ month (ties: the later event)."""
        found = None
        for a in self._by_ruleset.get(ruleset, ()):
            if a.from_ <= month:
                found = a
            else:
                break
        return found

    def of(self, ruleset: str) -> list[Adoption]:
        return list(self._by_ruleset.get(ruleset, ()))

    def get(self, ruleset: str, id_: str) -> Adoption | None:
        return next((a for a in self._by_ruleset.get(ruleset, ()) if a.id == id_), None)


class Link(NamedTuple):
    """One membership: ``unit`` belongs to ``parent`` from month ``from_`` (unit event at ``position``)."""

    unit: str
    parent: str | None
    from_: str
    position: int

    def describe(self) -> str:
        since = f"from {self.from_}" if self.from_ else "since the beginning"
        return f"{self.unit} ∈ {self.parent} {since} (unit event at position {self.position})"


def _as_of(history: list[tuple[str, str]] | None, month: str) -> str | None:
    """Of ``(from, value)`` pairs in month order: the latest value given from ``month`` or before,
    else the first (None: none given)."""
    if not history:
        return None
    found = history[0][1]
    for from_, value in history:
        if from_ > month:
            break
        found = value
    return found


class Org:
    """Units and their effective-dated parents."""

    def __init__(self) -> None:
        self._links: dict[str, list[Link]] = {}
        self.kinds: dict[str, str | None] = {}
        self.names: dict[str, str | None] = {}  #: the name each unit was last declared with
        self._named: dict[str, list[tuple[str, str]]] = {}  # unit -> (from, name), by from
        self._kinded: dict[str, list[tuple[str, str]]] = {}  # unit -> (from, kind), by from

    @classmethod
    def load(cls, conn: sqlite3.Connection) -> "Org":
        org = cls()
        for id_, from_, position, name, kind, parent in conn.execute(
                "SELECT id, from_, position, name, kind, parent FROM rm_units ORDER BY position"):
            org.add(id_, from_, name, kind, parent, position)
        return org

    def add(self, id_: str, from_: str, name: str | None, kind: str | None, parent: str | None,
            position: int = 0) -> None:
        lst = [x for x in self._links.get(id_, []) if x.from_ != from_]
        lst.append(Link(id_, parent, from_, position))
        lst.sort(key=lambda x: x.from_)
        self._links[id_] = lst
        if kind is not None:
            self.kinds[id_] = kind
            kinded = [x for x in self._kinded.get(id_, []) if x[0] != from_]
            kinded.append((from_, kind))
            kinded.sort(key=lambda x: x[0])
            self._kinded[id_] = kinded
        if name is not None:
            self.names[id_] = name
            named = [x for x in self._named.get(id_, []) if x[0] != from_]
            named.append((from_, name))
            named.sort(key=lambda x: x[0])
            self._named[id_] = named

    def copy(self) -> "Org":
        other = Org()
        other._links = {k: list(v) for k, v in self._links.items()}
        other.kinds = dict(self.kinds)
        other.names = dict(self.names)
        other._named = {k: list(v) for k, v in self._named.items()}
        other._kinded = {k: list(v) for k, v in self._kinded.items()}
        return other

    def kind(self, unit: str, month: str) -> str | None:
        """The unit's kind in ``month``, as :meth:`name` finds its name (a unit that became a kind
        of its own from a month keeps its earlier kind in the months before; :attr:`kinds` holds
        the latest)."""
        return _as_of(self._kinded.get(unit), month)

    def name(self, unit: str, month: str) -> str | None:
        """The unit's name in ``month``: the latest one given from that month or before (a renamed
        department shows its old name in the months before the rename), else the first it was
        ever given (a subject scored before its unit was declared)."""
        return _as_of(self._named.get(unit), month)

    def units(self) -> list[str]:
        return sorted(self._links)

    def history(self, unit: str) -> list[Link]:
        return list(self._links.get(unit, ()))

    def restore(self, unit: str, history: list[Link]) -> None:
        """Put back a unit's memberships as :meth:`history` returned them."""
        if history:
            self._links[unit] = list(history)
        else:
            self._links.pop(unit, None)

    def link(self, unit: str, month: str) -> Link | None:
        """The membership of ``unit`` in force in ``month``."""
        found = None
        for x in self._links.get(unit, ()):
            if x.from_ <= month:
                found = x
            else:
                break
        return found

    def parent(self, unit: str, month: str) -> str | None:
        x = self.link(unit, month)
        return x.parent if x else None

    def chain(self, unit: str, month: str) -> list[str]:
        """The unit's ancestors as of ``month``, nearest first."""
        out: list[str] = []
        seen = {unit}
        p = self.parent(unit, month)
        while p is not None and p not in seen:
            out.append(p)
            seen.add(p)
            p = self.parent(p, month)
        return out

    def path(self, member: str, ancestor: str, month: str) -> list[Link]:
        """The memberships leading from ``member`` up to ``ancestor`` in ``month``."""
        out = []
        unit = member
        while unit != ancestor:
            x = self.link(unit, month)
            if x is None or x.parent is None or len(out) > 64:
                return out
            out.append(x)
            unit = x.parent
        return out

    def cycle(self, unit: str) -> list[str] | None:
        """A parent cycle through ``unit`` in any month, or None."""
        months = sorted({x.from_ for links in self._links.values() for x in links})
        for month in months:
            walk = [unit]
            p = self.parent(unit, month)
            while p is not None:
                walk.append(p)
                if p == unit:
                    return walk
                if len(walk) > len(self._links) + 1:
                    break
                p = self.parent(p, month)
        return None


def load_states(conn: sqlite3.Connection, ids: Iterable[str]) -> dict[str, ResponseState]:
    ids = list(ids)
    out: dict[str, ResponseState] = {}
    for i in range(0, len(ids), 500):
        chunk = ids[i:i + 500]
        for id_, blob in conn.execute(
                f"SELECT id, state FROM rm_responses WHERE id IN ({','.join('?' * len(chunk))})", chunk):
            out[id_] = decode_state(blob)
    return out


def count_events(conn: sqlite3.Connection, counts: dict[str, int], pending: set[str]) -> None:
    """Add to each rule set's count of events, and mark the rule sets whose events were parked."""
    if counts or pending:
        conn.executemany(
            "INSERT INTO rm_rulesets (ruleset, events, pending) VALUES (?, ?, ?) ON CONFLICT (ruleset) "
            "DO UPDATE SET events = rm_rulesets.events + excluded.events, pending = CASE WHEN "
            "rm_rulesets.pending > excluded.pending THEN rm_rulesets.pending ELSE excluded.pending END",
            [(r, counts.get(r, 0), int(r in pending)) for r in sorted(counts.keys() | pending)])  # (one order)
