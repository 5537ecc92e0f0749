"""Following changes: the figures that moved between two log positions, for an integration that
keeps its own copy of them (a dashboard's cache, a message to the units whose grade changed).

:func:`changes` reads the events in (``since``, ``upto``], maps each to the rule-set months it can
move — as the projection marks them dirty (:mod:`csat.engine.read.apply`): a response, its
correction or withdrawal and a round its rule set's month; an adoption its rule set's months from
its ``from`` month on; a unit the months from its ``from`` month on of the rule sets that read the
org chart or cases; a complaint or rectification (and their closures and updates) the month it
falls in for the rule sets that use cases; a sequential rule set's later months too, and the
quarters and years above every month — then compares those figures as they stood at ``since`` (a
private replay, :func:`~csat.engine.read.snapshots.snapshot`, of the touched rule sets only) with
the published ones. Nothing in the window: no replay, no read of the log.
"""
from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from .. import periods
from ..log.events import (ComplaintClosed, ComplaintFiled, Event, ParametersAdopted, RectificationRequired,
                          RectificationUpdated, ResponseCorrected, ResponseRecorded, ResponseWithdrawn,
                          RoundOpened, UnitDeclared)
from ..read import scoreviews
from ..read.cases import case_target
from ..read.projection import Projection
from ..read.readmodel import Org
from ..read.snapshots import snapshot
from ..scoring.numbers import sub
from ..scoring.ruleset import RuleSet
from .announce import announced

#: what an event can move: (rule set, month — "" for every month —, and the months after it too)
Reach = tuple[str, str, bool]
#: a figure's key: (rule set, subject, period, metric)
Key = tuple[str, str, str, str]


@dataclass(frozen=True)
class Changes:
    """The figures that moved since a position (:meth:`csat.engine.Engine.changes`), iterable over
    them: each a dict of ``ruleset``, ``subject``, ``subject_name``, ``period``, ``kind``, ``metric``,
    ``before`` and ``after`` (None where the figure did not exist), ``delta``, ``grade_before``,
    ``grade_after``, ``events`` (the positions after ``since`` of the events that bear on that
    rule-set month, in log order) and ``announced`` (the month was announced, 公示).

    ``position`` is where the next call resumes (``changes(since=c.position)``) and ``head`` the
    chain hash there."""

    position: int
    head: str
    changes: list[dict[str, Any]]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.changes)

    def __len__(self) -> int:
        return len(self.changes)


def reaches(conn: Any, rulesets: dict[str, RuleSet], ev: Event,
            responses: dict[str, tuple[str, str]]) -> list[Reach]:
    """The rule-set months an event can move (``conn``: the published read models, where the
    responses, complaints and rectifications it names are found; ``responses`` remembers the
    responses read so far, id → (rule set, month))."""
    def month(ruleset: str, m: str) -> list[Reach]:
        rs = rulesets.get(ruleset)
        return [(ruleset, m, rs.sequential)] if rs is not None else []

    if isinstance(ev, ResponseRecorded):
        responses[ev.id] = (ev.ruleset, ev.period)
        return month(ev.ruleset, ev.period)
    if isinstance(ev, (ResponseCorrected, ResponseWithdrawn)):
        where = responses.get(ev.response) or conn.execute(
            "SELECT ruleset, period FROM rm_responses WHERE id = ?", (ev.response,)).fetchone()
        return month(*where) if where else []
    if isinstance(ev, ParametersAdopted):
        return [(ev.ruleset, ev.from_, True)] if ev.ruleset in rulesets else []
    if isinstance(ev, RoundOpened):  # its due date may exclude late answers
        return month(ev.ruleset, ev.period)
    if isinstance(ev, UnitDeclared):
        return [(r, ev.from_ or "", True) for r, rs in rulesets.items() if rs.uses_org or rs.uses_cases]
    if isinstance(ev, (ComplaintFiled, ComplaintClosed, RectificationRequired, RectificationUpdated)):
        of = _case_ruleset(conn, ev)
        users = [r for r, rs in rulesets.items() if rs.uses_cases and of in (None, r)]
        target = case_target(conn, ev)
        if target is None:
            return [(r, "", True) for r in users]
        return [x for r in users for x in month(r, target[1])]
    return []  # announcements, rounds' closures and declines, erasures move no figure


def _case_ruleset(conn: Any, ev: Event) -> str | None:
    """The rule set a case event is for (None: every rule set that uses cases)."""
    if isinstance(ev, (ComplaintFiled, RectificationRequired)):
        return ev.ruleset
    sql = ("SELECT ruleset FROM rm_cases WHERE id = ?" if isinstance(ev, ComplaintClosed)
           else "SELECT ruleset FROM rm_rectifications WHERE id = ?")
    row = conn.execute(sql, (ev.complaint if isinstance(ev, ComplaintClosed) else ev.rectification,)).fetchone()
    return row[0] if row else None


def touched(projection: Projection, since: int, upto: int) -> dict[Reach, list[int]]:
    """What the events in (``since``, ``upto``] can move, with their positions."""
    rulesets = {r: rs for r, rs in projection.rulesets.items() if projection.usable(r)}
    out: dict[Reach, list[int]] = defaultdict(list)
    responses: dict[str, tuple[str, str]] = {}
    for page in projection.store.pages(after=since, upto=upto):
        for lg in page:
            for reach in reaches(projection.store.conn, rulesets, lg.event, responses):
                out[reach].append(lg.position)
    return out


def _covers(reach: Reach, ruleset: str, months: list[str]) -> bool:
    r, month, onward = reach
    return r == ruleset and (month in months or (onward and months[-1] >= month))


def _figures(conn: Any, ruleset: str, in_scope: Callable[[list[str]], bool]) -> dict[Key, tuple[Any, ...]]:
    """A rule set's figures in scope: key → (score, grade)."""
    out = {}
    for period, subject, metric, score, grade in conn.execute(
            "SELECT period, subject, metric, score, grade FROM scores WHERE ruleset = ?", (ruleset,)):
        if in_scope(periods.months_of(period)):
            out[(ruleset, subject, period, metric)] = (Decimal(score) if score is not None else None, grade)
    return out


def _all_figures(conn: Any, scope: dict[str, list[Reach]]) -> dict[Key, tuple[Any, ...]]:
    out: dict[Key, tuple[Any, ...]] = {}
    for ruleset, reached in scope.items():
        out.update(_figures(conn, ruleset, lambda months: any(_covers(x, ruleset, months) for x in reached)))
    return out


@contextlib.contextmanager
def _as_of(projection: Projection, position: int, only: list[str]) -> Iterator[Any]:
    """The read models' connection as they stood at ``position`` (None at 0: nothing was published)."""
    if position <= 0:
        yield None
        return
    with snapshot(projection, position, only=only) as private:
        yield private.conn


def changes(projection: Projection, since: int, upto: int) -> list[dict[str, Any]]:
    """The figures that differ between positions ``since`` and ``upto`` (≤ the position the
    published read models reflect; at it they are read there, before it from a replay), ordered
    by rule set, period, subject and metric (see :class:`Changes` for a change's fields)."""
    reached = touched(projection, since, upto)
    if not reached:
        return []
    scope: dict[str, list[Reach]] = defaultdict(list)
    for reach in reached:
        scope[reach[0]].append(reach)
    only = sorted(scope)
    with _as_of(projection, since, only) as conn:
        before = _all_figures(conn, scope) if conn is not None else {}
    after = _all_figures(projection.conn, scope) if upto == projection.tracked() else None
    if after is None or projection.tracked() != upto:  # asked for an earlier end, or another process moved on
        with _as_of(projection, upto, only) as conn:
            after = _all_figures(conn, scope) if conn is not None else {}
    shown = announced(projection.conn)
    out = []
    for key in sorted(before.keys() | after.keys(), key=lambda k: (k[0], k[2], k[1], k[3])):
        (was, grade_was), (now, grade_now) = before.get(key, (None, None)), after.get(key, (None, None))
        if key in before and key in after and (was, grade_was) == (now, grade_now):
            continue
        ruleset, subject, period, metric = key
        months = periods.months_of(period)
        events = sorted({p for reach, positions in reached.items() if _covers(reach, ruleset, months)
                         for p in positions})
        out.append({"ruleset": ruleset, "subject": subject, "period": period, "kind": periods.kind(period),
                    "metric": metric, "before": was, "after": now,
                    "delta": sub(now, was) if now is not None and was is not None else None,
                    "grade_before": grade_was, "grade_after": grade_now, "events": events,
                    "announced": (ruleset, period) in shown})
    return scoreviews.with_names(out, Org.load(projection.conn))
