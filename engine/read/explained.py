"""Stored explanations: a figure's explanation kept until the figure is rescored.

Explaining a subject-month reruns the rule set with a trace — for 10,000
responses that is 10,000 formula steps to compute and format. The first
explanation of a figure is stored in ``rm_explained`` (encoded with msgpack,
decimals kept exact), and later ones are read back from it.

Validity. An entry stands for the read models at the tracked position it
was computed at. It is dropped

* for a (rule set, subject) whenever one of its subject-months is rescored
  (:meth:`~csat.engine.read.settle.Scorer.settle`), and ignored while one is
  waiting to be (``rm_dirty``). Every event an explanation lists marks the
  subject-months it reaches dirty: responses and their amendments through
  their credits, complaint and rectification events through their case
  groups, adoptions and org-chart changes through the credits they touch;
* entirely, besides, on the rare events that reach many figures at once —
  an adoption, an org-chart change, a rule set coming back
  (:func:`forget_all`);
* with every other read model on a rebuild.

An explanation computed while another process moved the log on is not
stored (the tracked position is checked again under the write lock).
"""
from __future__ import annotations

import sqlite3
from decimal import Decimal
from typing import Any

import msgspec

TABLE = "rm_explained"
_DECIMAL = 1  # msgpack extension code of a Decimal (its text)


def _freeze(value: Any) -> Any:
    if isinstance(value, Decimal):
        return msgspec.msgpack.Ext(_DECIMAL, str(value).encode())
    if isinstance(value, dict):
        return {k: _freeze(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_freeze(v) for v in value]
    return value


def _ext(code: int, data: memoryview) -> Any:
    if code == _DECIMAL:
        return Decimal(bytes(data).decode())
    raise ValueError(f"unknown extension {code} in a stored explanation")


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(dict[str, Any], ext_hook=_ext)


def encode(explanation: dict[str, Any]) -> bytes:
    return _ENCODER.encode(_freeze(explanation))


def decode(blob: bytes) -> dict[str, Any]:
    return _DECODER.decode(blob)


def create_table(conn: sqlite3.Connection) -> None:
    conn.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (ruleset TEXT, period TEXT, subject TEXT, metric TEXT, "
                 "position INTEGER, body BLOB, PRIMARY KEY (ruleset, period, subject, metric))")


def lookup(conn: sqlite3.Connection, ruleset: str, period: str, subject: str, metric: str | None,
           position: int) -> dict[str, Any] | None:
    """The stored explanation, when there is a valid one at the tracked ``position``."""
    row = conn.execute(
        f"SELECT body FROM {TABLE} e WHERE ruleset = ? AND period = ? AND subject = ? AND metric = ? "
        "AND position <= ? AND NOT EXISTS (SELECT 1 FROM rm_dirty d WHERE d.ruleset = e.ruleset "
        "AND d.subject = e.subject)", (ruleset, period, subject, metric or "", position)).fetchone()
    return decode(row[0]) if row else None


def store(conn: sqlite3.Connection, ruleset: str, period: str, subject: str, metric: str | None,
          position: int, explanation: dict[str, Any]) -> None:
    """Keep an explanation computed at tracked ``position`` (inside the caller's write transaction)."""
    conn.execute(f"INSERT OR REPLACE INTO {TABLE} VALUES (?, ?, ?, ?, ?, ?)",
                 (ruleset, period, subject, metric or "", position, encode(explanation)))


def forget(conn: sqlite3.Connection, groups: set[tuple[str, str]]) -> None:
    """Drop the explanations of these (rule set, subject) pairs."""
    if groups:
        conn.executemany(f"DELETE FROM {TABLE} WHERE ruleset = ? AND subject = ?", sorted(groups))


def forget_all(conn: sqlite3.Connection) -> None:
    conn.execute(f"DELETE FROM {TABLE}")
