"""The complaint and rectification projection: cases, closures, rectifications and their updates.

Filed complaints and remedy cases share ``rm_cases``; closures, rectifications
and rectification updates have tables of their own and are joined at read time
(``Engine.complaints``, ``Engine.rectifications``), so the order in which their
events arrive never matters and a rebuild re-derives the same rows.
"""
from __future__ import annotations

import sqlite3
from typing import Any

import msgspec

from ..log.events import (ComplaintClosed, ComplaintFiled, DealingsDeclined, PersonErased, RectificationRequired,
                          RectificationUpdated, ResultsAnnounced, RoundClosed, RoundOpened)
from ..scoring.ruleset import CaseEvent
from ..log.store import Logged

ROUND_SPEC = msgspec.json.Decoder(RoundOpened)


def record_case_event(conn: sqlite3.Connection, logged: Logged) -> None:
    """Store a complaint, closure, rectification or rectification update; a round's events, an
    announcement, an erasure."""
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
    elif isinstance(ev, RoundOpened):
        conn.execute("INSERT OR REPLACE INTO rm_rounds VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                     (ev.id, "opened", f"round:{ev.id}", None, None, ev.due, msgspec.json.encode(ev).decode(), pos))
    elif isinstance(ev, DealingsDeclined):
        conn.execute("INSERT OR REPLACE INTO rm_rounds VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                     (ev.round, "declined", f"no_dealings:{ev.id}", ev.rater, ev.subject, None, ev.reason, pos))
    elif isinstance(ev, ResultsAnnounced):
        conn.execute("INSERT OR REPLACE INTO rm_announcements VALUES (?, ?, ?, ?, ?, ?)",
                     (ev.id, ev.ruleset, ev.period, ev.under, ev.date, pos))
    elif isinstance(ev, RoundClosed):
        conn.execute("INSERT OR REPLACE INTO rm_rounds VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                     (ev.round, "closed", f"round_closed:{ev.round}", None, None, ev.date, None, pos))
    elif isinstance(ev, PersonErased):
        conn.execute("INSERT OR REPLACE INTO rm_erasures VALUES (?, ?, ?)", (ev.key, ev.id, pos))


def month_due(conn: sqlite3.Connection, ruleset: str, month: str) -> str | None:
    """The latest due date of the rounds opened for a rule set's month, or None."""
    dues = [r.due for (blob,) in conn.execute("SELECT spec FROM rm_rounds WHERE kind = 'opened'")
            if (r := ROUND_SPEC.decode(blob)).ruleset == ruleset and r.period == month]
    return max(dues, default=None)


def case_target(conn: sqlite3.Connection, ev: Any) -> tuple[str, str] | None:
    """The subject-month a complaint or rectification event moves (a complaint: its period; a
    rectification: the month it falls due), or None."""
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
    return tuple(target) if target else None


def mark_case_groups(conn: sqlite3.Connection, ev: Any, rulesets: list[str], org: Any) -> None:
    """Mark dirty, for rule sets that use cases, the subject-month a complaint or rectification
    event moves and the same month of the subject's ancestors as of that month (their
    :attr:`MonthInput.below` holds the case)."""
    target = case_target(conn, ev)
    if target:
        subject, month = target
        conn.executemany("INSERT OR IGNORE INTO rm_dirty VALUES (?, ?, ?)",
                         [(rs, s, month) for rs in rulesets for s in (subject, *org.chain(subject, month))])


def case_months(conn: sqlite3.Connection, from_: str) -> list[tuple[str, str]]:
    """Every (subject, month) holding a complaint or a due rectification, from month ``from_`` on."""
    return conn.execute("SELECT subject, period FROM rm_cases WHERE kind = 'complaint' AND period >= ? UNION "
                        "SELECT subject, substr(due, 1, 7) FROM rm_rectifications WHERE due >= ?",
                        (from_, from_)).fetchall()


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
        out.append(CaseEvent("complaint", id_, position, severity=severity, closure=tuple(closure) if closure else None,
                             subject=subject))
    for id_, due, position, rs in conn.execute(
            "SELECT id, due, position, ruleset FROM rm_rectifications WHERE subject = ? AND due >= ? AND due < ? "
            "ORDER BY position", (subject, f"{month}-01", f"{month}-99")):
        if rs not in (None, ruleset):
            continue
        updates = [tuple(u) for u in conn.execute(
            "SELECT id, status, date, position FROM rm_rectification_updates WHERE rectification = ? ORDER BY position",
            (id_,))]
        out.append(CaseEvent("rectification", id_, position, due=due, updates=updates, subject=subject))
    return out


def case_subjects(conn: sqlite3.Connection, month: str) -> list[str]:
    """The units with a complaint or a due rectification in the month (read once per month)."""
    return [s for (s,) in conn.execute(
        "SELECT subject FROM rm_cases WHERE kind = 'complaint' AND period = ? UNION "
        "SELECT subject FROM rm_rectifications WHERE due >= ? AND due < ?", (month, f"{month}-01", f"{month}-99"))]


def below_cases(conn: sqlite3.Connection, org: Any, subject: str, month: str, ruleset: str,
                subjects: list[str] | None = None) -> list[CaseEvent]:
    """The cases of the month (as :func:`month_cases`) of every unit below ``subject`` in the org
    chart as of the month, in log order; each carries the subject it was filed against.
    ``subjects``: :func:`case_subjects` of the month, when the caller has read them already."""
    if subjects is None:
        subjects = case_subjects(conn, month)
    below = sorted({s for s in subjects if s != subject and subject in org.chain(s, month)})
    out = [case for s in below for case in month_cases(conn, s, month, ruleset)]
    return sorted(out, key=lambda c: c.position)


def cases_of(conn: sqlite3.Connection, org: Any, rs: Any, subject: str, month: str,
             subjects: list[str] | None = None) -> tuple[list[CaseEvent], list[CaseEvent]]:
    """``MonthInput.cases`` and ``MonthInput.below`` of a subject-month (both empty for a rule set
    that does not use cases); ``subjects`` as :func:`below_cases` takes them."""
    if not rs.uses_cases:
        return [], []
    return (month_cases(conn, subject, month, rs.id),
            below_cases(conn, org, subject, month, rs.id, subjects) if org is not None else [])
