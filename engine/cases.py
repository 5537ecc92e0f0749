"""The complaint and rectification projection: cases, closures, rectifications and their updates.

Filed complaints and remedy cases share ``rm_cases``; closures, rectifications
and rectification updates have tables of their own and are joined at read time
(``Engine.complaints``, ``Engine.rectifications``), so the order in which their
events arrive never matters and a rebuild re-derives the same rows.
"""
from __future__ import annotations

import sqlite3
from typing import Any

from .events import ComplaintClosed, ComplaintFiled, RectificationRequired, RectificationUpdated
from .ruleset import CaseEvent
from .store import Logged


def record_case_event(conn: sqlite3.Connection, logged: Logged) -> None:
    """Store a complaint, closure, rectification or rectification update."""
    ev, pos = logged.event, logged.position
    if isinstance(ev, ComplaintFiled):
        conn.execute("INSERT OR REPLACE INTO rm_cases VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     (ev.id, "complaint", ev.subject, ev.period, ev.ruleset, ev.severity, ev.source,
                      ev.category, ev.response, ev.text, ev.date, pos))
    elif isinstance(ev, ComplaintClosed):
        conn.execute("INSERT OR REPLACE INTO rm_closures VALUES (?, ?, ?, ?, ?, ?)",
                     (ev.id, ev.complaint, ev.date, ev.outcome, ev.note, pos))
    elif isinstance(ev, RectificationRequired):
        conn.execute("INSERT OR REPLACE INTO rm_rectifications VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     (ev.id, ev.subject, ev.period, ev.issue, ev.due, ev.ruleset, ev.complaint,
                      ev.response, ev.item, pos))
    elif isinstance(ev, RectificationUpdated):
        conn.execute("INSERT OR REPLACE INTO rm_rectification_updates VALUES (?, ?, ?, ?, ?, ?)",
                     (ev.id, ev.rectification, ev.status, ev.date, ev.note, pos))


def mark_case_groups(conn: sqlite3.Connection, ev: Any, rulesets: list[str]) -> None:
    """Mark dirty the subject-month a complaint or rectification event moves, for rule sets that use them
    (a complaint: its period; a rectification: the month it falls due)."""
    target = None
    if isinstance(ev, ComplaintFiled):
        target = (ev.subject, ev.period)
    elif isinstance(ev, ComplaintClosed):
        target = conn.execute("SELECT subject, period FROM rm_cases WHERE id = ?", (ev.complaint,)).fetchone()
    elif isinstance(ev, RectificationRequired):
        target = (ev.subject, ev.due[:7])
    elif isinstance(ev, RectificationUpdated):
        row = conn.execute("SELECT subject, due FROM rm_rectifications WHERE id = ?", (ev.rectification,)).fetchone()
        target = (row[0], row[1][:7]) if row else None
    if target:
        conn.executemany("INSERT OR IGNORE INTO rm_dirty VALUES (?, ?, ?)", [(rs, target[0], target[1]) for rs in rulesets])


def month_cases(conn: sqlite3.Connection, subject: str, month: str, ruleset: str) -> list[CaseEvent]:
    """Complaints about the subject in the month and rectifications of it due in the month
    (those filed for another rule set are left out)."""
    out = []
    for id_, severity, position, rs in conn.execute(
            "SELECT id, severity, position, ruleset FROM rm_cases WHERE kind = 'complaint' AND subject = ? "
            "AND period = ? ORDER BY position", (subject, month)):
        if rs not in (None, ruleset):
            continue
        closure = conn.execute("SELECT id, outcome, date, position FROM rm_closures WHERE complaint = ? "
                               "ORDER BY position DESC LIMIT 1", (id_,)).fetchone()
        out.append(CaseEvent("complaint", id_, position, severity=severity, closure=tuple(closure) if closure else None))
    for id_, due, position, rs in conn.execute(
            "SELECT id, due, position, ruleset FROM rm_rectifications WHERE subject = ? AND due >= ? AND due < ? "
            "ORDER BY position", (subject, f"{month}-01", f"{month}-99")):
        if rs not in (None, ruleset):
            continue
        updates = [tuple(u) for u in conn.execute(
            "SELECT id, status, date, position FROM rm_rectification_updates WHERE rectification = ? ORDER BY position",
            (id_,))]
        out.append(CaseEvent("rectification", id_, position, due=due, updates=updates))
    return out
