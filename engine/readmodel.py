"""Read models: tables in the store's SQLite file, derived from the log.

Published: ``scores`` (one row per rule set, period, subject, metric).
Working state (``rm_*``): responses as they stand after corrections and
withdrawals, which subjects each response is credited to, adoptions, units,
and the subject-months waiting to be rescored. Everything here can be dropped
and rebuilt from the log; a schema version change does exactly that.
"""
from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any

import msgspec
import sqlite_utils

from .params import params_hash
from .ruleset import Adoption, ResponseState, RuleSet

SCHEMA_VERSION = 1

TABLES = ("scores", "rm_responses", "rm_credits", "rm_adoptions", "rm_units", "rm_dirty", "rm_meta")

_STATE_ENC = msgspec.json.Encoder()
_STATE_DEC = msgspec.json.Decoder(ResponseState)


def encode_state(state: ResponseState) -> bytes:
    return _STATE_ENC.encode(state)


def decode_state(blob: bytes) -> ResponseState:
    return _STATE_DEC.decode(blob)


def database(conn: sqlite3.Connection) -> sqlite_utils.Database:
    return sqlite_utils.Database(conn)


def ensure_schema(db: sqlite_utils.Database) -> bool:
    """Create the read-model tables; returns True when they were (re)created empty."""
    version = None
    if db["rm_meta"].exists():
        row = db.execute("SELECT value FROM rm_meta WHERE key = 'schema'").fetchone()
        version = int(row[0]) if row else None
    if version == SCHEMA_VERSION:
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
        db["scores"].create_index(["ruleset", "subject", "kind"])
        db["rm_responses"].create({"id": str, "position": int, "ruleset": str, "period": str,
                                   "subject": str, "state": bytes}, pk="id")
        db["rm_credits"].create({"ruleset": str, "subject": str, "period": str, "response": str,
                                 "role": str, "via": str},
                                pk=("ruleset", "subject", "period", "response", "role", "via"))
        db["rm_credits"].create_index(["response"])
        db["rm_credits"].create_index(["ruleset", "period"])
        db["rm_adoptions"].create({"ruleset": str, "id": str, "from_": str, "position": int,
                                   "params": str, "hash": str}, pk=("ruleset", "id"))
        db["rm_units"].create({"id": str, "from_": str, "position": int, "name": str, "kind": str,
                               "parent": str}, pk=("id", "from_"))
        db["rm_dirty"].create({"ruleset": str, "subject": str, "period": str},
                              pk=("ruleset", "subject", "period"))
    return True


def drop_all(db: sqlite_utils.Database) -> None:
    with db.atomic():
        for name in TABLES:
            db[name].drop(ignore=True)


class Adoptions:
    """The adoptions of the log, by rule set, with their decoded parameters."""

    def __init__(self, rulesets: dict[str, RuleSet]):
        self.rulesets = rulesets
        self._by_ruleset: dict[str, list[Adoption]] = {}

    @classmethod
    def load(cls, conn: sqlite3.Connection, rulesets: dict[str, RuleSet]) -> "Adoptions":
        a = cls(rulesets)
        for ruleset, id_, from_, position, params in conn.execute(
                "SELECT ruleset, id, from_, position, params FROM rm_adoptions ORDER BY position"):
            a.add(ruleset, id_, from_, position, msgspec.json.decode(params))
        return a

    def add(self, ruleset: str, id_: str, from_: str, position: int, params: dict[str, Any]) -> Adoption:
        rs = self.rulesets.get(ruleset)
        decoded = rs.decode_params(params, f"adoption {id_}") if rs else params
        adoption = Adoption(ruleset, id_, from_, position, params_hash(params), decoded)
        lst = [x for x in self._by_ruleset.get(ruleset, []) if x.id != id_]
        lst.append(adoption)
        lst.sort(key=lambda x: (x.from_, x.position))
        self._by_ruleset[ruleset] = lst
        return adoption

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


class Org:
    """Units and their effective-dated parents."""

    def __init__(self) -> None:
        self._parents: dict[str, list[tuple[str, str | None]]] = {}
        self.kinds: dict[str, str | None] = {}
        self.names: dict[str, str | None] = {}

    @classmethod
    def load(cls, conn: sqlite3.Connection) -> "Org":
        org = cls()
        for id_, from_, name, kind, parent in conn.execute(
                "SELECT id, from_, name, kind, parent FROM rm_units ORDER BY position"):
            org.add(id_, from_, name, kind, parent)
        return org

    def add(self, id_: str, from_: str, name: str | None, kind: str | None, parent: str | None) -> None:
        lst = [x for x in self._parents.get(id_, []) if x[0] != from_]
        lst.append((from_, parent))
        lst.sort()
        self._parents[id_] = lst
        if kind is not None:
            self.kinds[id_] = kind
        if name is not None:
            self.names[id_] = name

    def parent(self, unit: str, month: str) -> str | None:
        found = None
        for from_, parent in self._parents.get(unit, ()):
            if from_ <= month:
                found = parent
            else:
                break
        return found

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


def load_states(conn: sqlite3.Connection, ids: Iterable[str]) -> dict[str, ResponseState]:
    ids = list(ids)
    out: dict[str, ResponseState] = {}
    for i in range(0, len(ids), 500):
        chunk = ids[i:i + 500]
        for id_, blob in conn.execute(
                f"SELECT id, state FROM rm_responses WHERE id IN ({','.join('?' * len(chunk))})", chunk):
            out[id_] = decode_state(blob)
    return out
