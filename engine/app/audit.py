"""The accounts' audit trail: who changed which account or link, when — append-only and chained.

The accounts (:mod:`csat.engine.app.accounts`) change in place, outside the event log; what was
done to them is kept here, in ``csat_audit``: one row per change — an account added, its role
changed, disabled or enabled, its password set, removed, its API tokens made or revoked, its
sessions ended, raters' links made or revoked — written in the same transaction as the change,
naming the acting account (``actor``: a web account, ``cli:<os user>``, or what an embedding
application passes).

Each row holds its ``position`` (1, 2, …), ``at`` (UTC, ISO 8601), ``actor``, ``action``,
``target`` and ``details`` (a JSON object), and ``hash``: the SHA-256 of the previous row's hash
(``""`` before the first) and of the row's canonical JSON — so a row edited, removed or inserted
later breaks the chain from there on (:func:`verify`). Never a password, a password hash or a
token in it: :func:`record` refuses details that name one.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
from typing import Any

from ..errors import CsatError

#: keys no audit row's details may have
SECRET_KEYS = ("password", "hash", "token", "secret")


def ensure(conn: Any) -> None:
    """Create the table if missing (SQLite's dialect; the PostgreSQL connection translates it)."""
    conn.execute("CREATE TABLE IF NOT EXISTS csat_audit (position INTEGER PRIMARY KEY, at TEXT NOT NULL, "
                 "actor TEXT NOT NULL, action TEXT NOT NULL, target TEXT NOT NULL, details TEXT NOT NULL, "
                 "hash TEXT NOT NULL)")


def canonical(row: dict[str, Any]) -> str:
    """A row's canonical JSON (its hashed form): the six fields, sorted keys, no spaces."""
    return json.dumps({k: row[k] for k in ("position", "at", "actor", "action", "target", "details")},
                      sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def chained(previous: str, row: dict[str, Any]) -> str:
    return hashlib.sha256((previous + canonical(row)).encode("utf-8")).hexdigest()


def record(conn: Any, actor: str, action: str, target: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """Append a row, inside the caller's write transaction (the change and its row commit
    together, and the write lock keeps positions in turn).

    :raises CsatError: no actor named, or details that name a secret.
    """
    details = dict(details or {})
    if not actor or not isinstance(actor, str):
        raise CsatError("an account change names who made it (actor)")
    if any(secret in key.lower() for key in details for secret in SECRET_KEYS):
        raise CsatError("an audit row never holds a password, a hash or a token")
    last = conn.execute("SELECT position, hash FROM csat_audit ORDER BY position DESC LIMIT 1").fetchone()
    row = {"position": (last[0] if last else 0) + 1,
           "at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
           "actor": actor, "action": action, "target": target, "details": details}
    row["hash"] = chained(last[1] if last else "", row)
    conn.execute("INSERT INTO csat_audit (position, at, actor, action, target, details, hash) "
                 "VALUES (?, ?, ?, ?, ?, ?, ?)", (row["position"], row["at"], actor, action, target,
                                                  json.dumps(details, sort_keys=True, ensure_ascii=False), row["hash"]))
    return row


def rows(conn: Any) -> list[dict[str, Any]]:
    """Every row, oldest first (``details`` as a dict)."""
    return [{"position": p, "at": at, "actor": actor, "action": action, "target": target,
             "details": json.loads(details), "hash": h}
            for p, at, actor, action, target, details, h in conn.execute(
                "SELECT position, at, actor, action, target, details, hash FROM csat_audit ORDER BY position")]


def verify(found: list[dict[str, Any]]) -> dict[str, Any]:
    """Whether the rows (as :func:`rows` gives them) form an unbroken chain from position 1:
    ``intact``, ``entries``, ``head`` (the last hash), and where and why it broke
    (``broken_at``, ``problem``; None when intact)."""
    previous = ""
    for i, row in enumerate(found, start=1):
        if row["position"] != i:
            return {"intact": False, "entries": len(found), "head": previous, "broken_at": i,
                    "problem": f"position {i} is missing (found {row['position']})"}
        if chained(previous, row) != row["hash"]:
            return {"intact": False, "entries": len(found), "head": previous, "broken_at": i,
                    "problem": f"position {i} was changed after it was written (its hash does not match)"}
        previous = row["hash"]
    return {"intact": True, "entries": len(found), "head": previous, "broken_at": None, "problem": None}
