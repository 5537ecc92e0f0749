"""Replay: the read models rebuilt from the log in one streaming pass.

A rebuild, a what-if and an ``--as-of`` snapshot know they will see every event,
so they need none of the incremental path's bookkeeping (re-crediting at each
``unit`` event, dirty marks, rescoring a month once per page). The replay:

1. *folds* the log page by page into each response's final state (corrections
   and withdrawals applied as they come), the adoptions and the org chart (in
   memory), and the complaint and rectification tables — written in bulk to
   tables that have no secondary index yet;
2. *scores* each rule-set month once: its responses read back in log order,
   credited with the final org chart and the adoption in force (which is what
   the incremental path converges to: it re-credits on every change), grouped
   by subject, scored, written; the credits are written in bulk;
3. *rolls up*: each subject's sequence and its quarters and years, once;
4. builds every table's indexes after its rows are in.

Memory holds one page of events, or one rule-set month of responses, at a
time. The tables it leaves are the incremental path's, row for row, so the
next incremental update continues from an exact state.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

import msgspec

from ..collector import collector_paused
from .cases import case_subjects, cases_of, record_case_event
from ..errors import RuleSetFailed
from ..log.events import ParametersAdopted, ResponseCorrected, ResponseRecorded, ResponseWithdrawn, UnitDeclared
from .months import MonthPool, MonthScored, month_pool, score_month
from .readmodel import (Adoptions, Org, count_events, create_indexes, decode_state, encode_state, load_states,
                        mark_chart)
from ..scoring.ruleset import Amendment, ResponseState, RuleSet
from .settle import Progress, late_due
from .apply import Applier
from .settle import Scorer
from ..log.store import Logged, Store


class Host(Protocol):
    """What the replay reads and sets of the projection it works for."""

    store: Store
    conn: Any
    db: Any
    rulesets: dict[str, RuleSet]
    only: set[str] | None
    unusable: dict[str, str]
    scorer: Scorer
    applier: Applier
    REPLAY_PAGE: int  #: events read from the log at a time

    def usable(self, ruleset: str) -> bool: ...
    def state(self) -> tuple[Adoptions, Org]: ...
    def keep_state(self, adoptions: Adoptions, org: Org) -> None: ...


class Replay:
    """The replay path, a collaborator of :class:`~csat.engine.read.projection.Projection`.

    Reads the log (through the store's chain, in pages) and the projection's usability and
    crediting rules; writes the projection's working tables in bulk (inside the caller's write
    transaction, on read models created without indexes), has its :class:`~csat.engine.read.settle.Scorer`
    score each rule-set month once and roll up, builds the indexes last, and leaves the
    projection's adoptions and org chart in memory and its tracked position at the end.
    """

    def __init__(self, projection: Host):
        self.projection = projection
        self.conn = projection.conn
        self.scorer = projection.scorer
        self.applier = projection.applier
        self.rulesets = projection.rulesets
        self.only = projection.only
        self.page = projection.REPLAY_PAGE

    @collector_paused()
    def run(self, progress: Progress | None = None, upto: int | None = None,
            then: Iterable[ParametersAdopted] = (), jobs: int = 1) -> int:
        """Fill the empty read models (created without indexes, inside the caller's write
        transaction) from the log up to ``upto``, and the adoptions ``then`` as if appended
        after it; returns how many events were read."""
        adoptions, org = Adoptions(self.rulesets), Org()
        end = self.projection.store.max_position() if upto is None else min(upto, self.projection.store.max_position())
        applied = 0
        for page in self.projection.store.pages(0, self.page, upto=end):
            self._fold(page, adoptions, org)
            applied += len(page)
            if progress:
                progress(events=len(page))
        extra = [Logged(end + i, "", f"adoption:{a.ruleset}:{a.id}", a) for i, a in enumerate(then, 1)]
        if extra:
            self._fold(extra, adoptions, org)
        create_indexes(self.projection.db, ["rm_responses", "rm_cases", "rm_closures", "rm_rectifications",
                                 "rm_rectification_updates"])
        touched: dict[tuple[str, str], set[str]] = defaultdict(set)
        with month_pool(jobs, self.rulesets, adoptions, org) as pool:
            for ruleset in sorted(self.rulesets):
                if not self.projection.usable(ruleset) or (self.only is not None and ruleset not in self.only):
                    continue
                months = [m for (m,) in self.conn.execute("SELECT DISTINCT period FROM rm_responses WHERE "
                                                          "ruleset = ? ORDER BY period", (ruleset,)).fetchall()]
                for scored in self._score_months(ruleset, months, adoptions, org, touched, pool):
                    if progress:
                        progress(scored=scored)
        create_indexes(self.projection.db, ["scores"])
        self._roll_up_replayed(touched, adoptions)
        create_indexes(self.projection.db, ["rm_credits"])
        if end or extra:
            self.projection.store.track(extra[-1].position if extra else end, conn=self.conn)
        mark_chart(self.conn)  # the org chart and adoptions were written anew
        self.projection.keep_state(adoptions, org)
        return applied

    @collector_paused()
    def rescore_from(self, ruleset: str, month: str, jobs: int = 1) -> None:
        """Score one rule set's months from ``month`` on again, each once, and roll up the
        subjects they touch (inside the caller's transaction): what a what-if does on its
        private copy after adding its adoption, instead of the incremental path's rescoring.

        The copy holds no credits (:func:`~csat.engine.read.snapshots.copy_of`) and none are
        written: a what-if compares scores, and its roll-ups read the month figures. A subject
        whose figures may change had a month figure before (in the copy) or is credited now.
        ``jobs`` > 1: the months are scored by that many forked processes (as :meth:`run`)."""
        adoptions, org = self.projection.state()
        touched: dict[tuple[str, str], set[str]] = defaultdict(set)
        for subject, period in self.conn.execute("SELECT DISTINCT subject, period FROM scores WHERE ruleset = ? "
                                                 "AND kind = 'month' AND period >= ?", (ruleset, month)):
            touched[(ruleset, subject)].add(period)
        for table, kind in (("scores", " AND kind = 'month'"), ("rm_dirty", "")):  # (no credits in the copy)
            self.conn.execute(f"DELETE FROM {table} WHERE ruleset = ? AND period >= ?{kind}", (ruleset, month))
        months = [p for (p,) in self.conn.execute("SELECT DISTINCT period FROM rm_responses WHERE ruleset = ? AND "
                                                  "period >= ? ORDER BY period", (ruleset, month)).fetchall()]
        with month_pool(jobs, self.rulesets, adoptions, org) as pool:
            for _ in self._score_months(ruleset, months, adoptions, org, touched, pool, keep_credits=False):
                pass
        self._roll_up_replayed(touched, adoptions)

    # -- 1. folding the log ---------------------------------------------------------

    def _fold(self, page: list[Logged], adoptions: Adoptions, org: Org) -> None:
        states: dict[str, ResponseState] = {}
        counts: Counter[str] = Counter()
        pending: set[str] = set()
        for logged in page:
            ev = logged.event
            if isinstance(ev, ResponseRecorded):
                if self.only is not None and ev.ruleset not in self.only:
                    continue
                states[ev.id] = ResponseState.of(ev, logged.position, logged.at)
                counts[ev.ruleset] += 1
                if not self.projection.usable(ev.ruleset):
                    self.applier.unusable_event(ev.ruleset, logged)
                    pending.add(ev.ruleset)
            elif isinstance(ev, (ResponseCorrected, ResponseWithdrawn)):
                state = states.get(ev.response) or load_states(self.conn, [ev.response]).get(ev.response)
                if state is None:
                    continue
                amendment = Amendment(logged.position, logged.type, ev.id, ev.reason)
                if isinstance(ev, ResponseCorrected):
                    state = msgspec.structs.replace(state, answers=ev.answers, reasons=ev.reasons, comment=ev.comment,
                                                    corrections=[*state.corrections, amendment])
                else:
                    state = msgspec.structs.replace(state, withdrawn=amendment)
                states[state.id] = state
                counts[state.ruleset] += 1
            elif isinstance(ev, ParametersAdopted):
                if self.only is not None and ev.ruleset not in self.only:
                    continue
                counts[ev.ruleset] += 1
                adoption = adoptions.add(ev.ruleset, ev.id, ev.from_, logged.position, ev.params, ev.params_version)
                if ev.ruleset in adoptions.failed:
                    self.projection.unusable.setdefault(
                        ev.ruleset, f"rule set {ev.ruleset}: {adoptions.failed[ev.ruleset]}")
                self.conn.execute("INSERT OR REPLACE INTO rm_adoptions VALUES (?, ?, ?, ?, ?, ?, ?)",
                                  (ev.ruleset, ev.id, ev.from_, logged.position,
                                   msgspec.json.encode(ev.params).decode(), adoption.hash, ev.params_version or 1))
                if not self.projection.usable(ev.ruleset):
                    self.applier.unusable_event(ev.ruleset, logged)
                    pending.add(ev.ruleset)
            elif isinstance(ev, UnitDeclared):
                from_ = ev.from_ or ""
                self.conn.execute("INSERT OR REPLACE INTO rm_units VALUES (?, ?, ?, ?, ?, ?)",
                                  (ev.id, from_, logged.position, ev.name, ev.kind, ev.parent))
                org.add(ev.id, from_, ev.name, ev.kind, ev.parent, logged.position)
            else:
                ruleset = getattr(ev, "ruleset", None)
                if ruleset is not None:
                    if self.only is not None and ruleset not in self.only:
                        continue
                    counts[ruleset] += 1
                record_case_event(self.conn, logged)
        self.conn.executemany(
            "INSERT OR REPLACE INTO rm_responses (id, position, ruleset, period, subject, state) VALUES (?, ?, ?, ?, ?, ?)",
            [(s.id, s.position, s.ruleset, s.period, s.subject, encode_state(s)) for s in states.values()])
        count_events(self.conn, counts, pending)

    # -- 2. scoring each rule-set month once -------------------------------------------

    def _score_replayed_month(self, ruleset: str, month: str, adoptions: Adoptions, org: Org,
                              touched: dict[tuple[str, str], set[str]], keep_credits: bool = True) -> int:
        """Score a rule-set month in this process (:func:`~csat.engine.read.months.score_month`) and write it."""
        rs = self.rulesets[ruleset]
        states = [decode_state(blob) for blob in self._month_states(ruleset, month)]
        with_cases: list[list[str]] = []  # the units with cases this month, read once

        def cases(subject: str) -> tuple[list[Any], list[Any]]:
            if rs.uses_cases and not with_cases:
                with_cases.append(case_subjects(self.conn, month))
            return cases_of(self.conn, org, rs, subject, month, with_cases[0] if with_cases else None)

        due = late_due(self.conn, adoptions.in_force(ruleset, month), month)
        return self._write_month(score_month(rs, month, states, adoptions, org, due, cases, self.projection.usable),
                                 touched, keep_credits)

    def _score_months(self, ruleset: str, months: list[str], adoptions: Adoptions, org: Org,
                      touched: dict[tuple[str, str], set[str]], pool: MonthPool | None,
                      keep_credits: bool = True) -> Iterator[int]:
        """Score and write a rule set's months in order — in the pool's processes when there is one
        and the rule set reads no cases (those are in the open transaction: here) — yielding each
        month's subjects scored."""
        if pool is not None and not self.rulesets[ruleset].uses_cases and len(months) > 1:
            for scored in pool.scored(self._month_tasks(ruleset, months, adoptions)):
                yield self._write_month(scored, touched, keep_credits)
        else:
            for month in months:
                yield self._score_replayed_month(ruleset, month, adoptions, org, touched, keep_credits)

    def _month_tasks(self, ruleset: str, months: list[str],
                     adoptions: Adoptions) -> Iterator[tuple[str, str, list[bytes], str | None]]:
        """What a scoring process needs of each month: the stored states (bytes) and the due date."""
        for month in months:
            due = late_due(self.conn, adoptions.in_force(ruleset, month), month)
            yield ruleset, month, self._month_states(ruleset, month), due

    def _month_states(self, ruleset: str, month: str) -> list[bytes]:
        """A rule-set month's stored response states, in log order."""
        return [bytes(blob) for (blob,) in self.conn.execute(
            "SELECT state FROM rm_responses WHERE ruleset = ? AND period = ? ORDER BY position", (ruleset, month))]

    def _write_month(self, scored: MonthScored, touched: dict[tuple[str, str], set[str]],
                     keep_credits: bool = True) -> int:
        """Write what scoring a rule-set month yielded, as the one process would have, in its order."""
        ruleset, month = scored.ruleset, scored.month
        if scored.parked is not None:
            self.applier.park(scored.parked)
            return 0
        for subject in scored.subjects:
            touched[(ruleset, subject)].add(month)
        if keep_credits:
            self.conn.executemany("INSERT OR IGNORE INTO rm_credits VALUES (?, ?, ?, ?, ?, ?)", scored.credits)
        if self.projection.usable(ruleset):  # (a remedy that failed in an earlier month parked it: none now)
            self.applier.write_remedies(*scored.remedies)
        for subject, rows in scored.groups:
            if isinstance(rows, RuleSetFailed):  # left dirty: the next catch-up tries again
                self.scorer.failed(rows)
                self.conn.execute("INSERT OR IGNORE INTO rm_dirty VALUES (?, ?, ?)", (ruleset, subject, month))
            else:
                self.scorer.queue(ruleset, month, subject, rows, replace=False)  # (none there: see run, rescore_from)
        self.scorer.flush()
        return scored.scored

    # -- 3. sequences, quarters and years -------------------------------------------------

    def _roll_up_replayed(self, touched: dict[tuple[str, str], set[str]], adoptions: Adoptions) -> None:
        failing = {(r, s) for r, s, _ in self.conn.execute("SELECT ruleset, subject, period FROM rm_dirty")}
        for (ruleset, subject), months in sorted(touched.items()):
            if (ruleset, subject) in failing:
                continue
            self.conn.execute("SAVEPOINT csat_subject")
            try:
                self.scorer.above_months(self.rulesets[ruleset], subject, months, adoptions)
                self.scorer.flush()
            except RuleSetFailed as e:
                self.scorer.unqueue()
                self.conn.execute("ROLLBACK TO csat_subject")
                self.scorer.failed(e)
                self.conn.executemany("INSERT OR IGNORE INTO rm_dirty VALUES (?, ?, ?)",
                                      [(ruleset, subject, m) for m in months])
            self.conn.execute("RELEASE csat_subject")
