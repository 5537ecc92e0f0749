"""Scoring: turning the working tables into published ``scores`` rows.

:class:`Scorer` is the projection's collaborator that calls rule-set code for
figures: it reads the responses credited to each dirty subject-month, asks the
rule set for its figures (checked at the boundary, :mod:`csat.engine.scoring.guard`),
re-sequences later months when the rule set is sequential, and rolls up
quarters and years. A rule set that fails leaves its published rows as they
were and its subject-months marked dirty; every other rule set is scored.
"""
from __future__ import annotations

import inspect
import sqlite3
from collections import defaultdict
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

import msgspec

from . import explained

from .. import periods
from .cases import case_subjects, cases_of, month_due
from ..errors import RuleSetFailed
from ..log.events import NA
from ..scoring.guard import checked_figure, checked_figures, checked_sequence, guarded, rounded, under_adoption
from .readmodel import Adoptions, Org, decode_state
from ..scoring.ruleset import Counted, Credit, Excluded, Figure, MonthInput, ResponseState, RuleSet

#: ``progress(events=…, scored=…)``: called with how many events were applied and subject-months scored.
Progress = Callable[..., None]


def progress_of(progress: Progress | None) -> Progress | None:
    """Accept the older one-argument progress callables (events only) beside the keyword form."""
    if progress is None:
        return None
    try:
        inspect.signature(progress).bind(0, scored=0)
        return progress
    except (TypeError, ValueError):
        return lambda events=0, scored=0, lines=0: progress(events) if events else None


SCORE_COLUMNS = ("ruleset", "period", "subject", "metric", "kind", "adoption", "params_hash", "score", "grade",
                 "grade_label", "responses", "extras", "state")

_EXTRAS_ENC = msgspec.json.Encoder(decimal_format="number")
_STATE_ENC = msgspec.json.Encoder()
EXTRAS_DEC = msgspec.json.Decoder(float_hook=Decimal)
_STATE_DEC = msgspec.json.Decoder(dict[str, Any])


def exclusion(state: ResponseState) -> str | None:
    """Why a response counts for nothing whatever the rule set, or None when it may count."""
    if state.withdrawn is not None:
        w = state.withdrawn
        return f"withdrawn by {w.id} (position {w.position}): {w.reason}"
    if state.status != "completed":
        return f"status {state.status}: only completed responses are scored"
    if not state.answers:
        return "no answers"
    answers = state.answers.values()
    if NA in answers and all(v == NA for v in answers):  # (the membership test runs in C: most have no N/A)
        return "every answer is N/A"
    return None


def score_rows(rs: RuleSet, period: str, subject: str, kind: str, adoption: Any,
               figures: list[Figure]) -> list[tuple[Any, ...]]:
    """A group's ``scores`` rows (in :data:`SCORE_COLUMNS` order), as written.

    :raises RuleSetFailed: a figure's state cannot be stored as JSON, or its score cannot be
        rounded to the ``precision`` of the parameters in force (:class:`~csat.engine.scoring.guard.ParamsFailed`)."""
    if not figures:
        return []
    precision = getattr(adoption.params, "precision", 2)
    rows = []
    for f in figures:
        state = dict(f.state)
        state.setdefault("score", f.score)
        try:
            encoded_state = _STATE_ENC.encode(state).decode()
        except (TypeError, msgspec.EncodeError) as e:
            raise RuleSetFailed(rs.id, f"scoring {subject} {period}",
                                f"figure {f.metric}: state: cannot be stored as JSON ({e})") from None
        rows.append((rs.id, period, subject, f.metric, kind, adoption.id, adoption.hash,
                     str(rounded(rs, f"scoring {subject} {period}", adoption, f.score, precision, f.metric))
                     if f.score is not None else None,
                     f.grade, f.grade_label, f.responses, _EXTRAS_ENC.encode(f.extras).decode(), encoded_state))
    return rows


def late_due(conn: Any, adoption: Any, month: str) -> str | None:
    """The day after which a response of this rule-set month counts for nothing: when the parameters
    in force say ``late_answers = "exclude"``, the latest due date of the month's rounds (None when
    late answers count — the default — or no round of that month was opened)."""
    if adoption is None or getattr(adoption.params, "late_answers", "count") != "exclude":
        return None
    return month_due(conn, adoption.ruleset, month)


def late_exclusion(state: ResponseState, due: str | None) -> str | None:
    """Why a response recorded after ``due`` (the day of its recording time, UTC) counts for nothing."""
    if due is None or state.recorded is None or state.recorded[:10] <= due:
        return None
    return f"late: recorded {state.recorded[:10]}, after the round's due date {due} (late_answers = \"exclude\")"


def _stored_form(f: Figure) -> tuple[Any, ...]:
    """What a figure looks like once written (its unrounded score is in ``state``),
    to tell whether re-sequencing changed it."""
    state = dict(f.state)
    state.setdefault("score", f.score)
    return (f.metric, f.grade, f.grade_label, f.responses, _EXTRAS_ENC.encode(f.extras), _STATE_ENC.encode(state))


class Scorer:
    """Scores subject-months and what stands above them, for the projection and the replay.

    Reads the working tables (``rm_credits``, ``rm_responses``, ``rm_cases`` and the complaint
    tables, ``rm_dirty``) and the stored month figures; writes ``scores`` (queued rows, flushed a
    month at a time) and clears the ``rm_dirty`` marks it settled. Always inside the caller's
    write transaction.

    :param conn: the read models' connection.
    :param rulesets: the rule sets, by id.
    :param usable: whether a rule set can be scored now (installed, its plugin working).
    :param failed: told of each scoring failure (its subject keeps its published rows).
    """

    #: above this many dirty subjects in one rule-set month, read the whole month by range scans
    MANY_SUBJECTS = 50

    def __init__(self, conn: sqlite3.Connection, rulesets: dict[str, RuleSet], usable: Callable[[str], bool],
                 failed: Callable[[RuleSetFailed], None]):
        self.conn = conn
        self.rulesets = rulesets
        self.usable = usable
        self.failed = failed
        self._rows: list[tuple[Any, ...]] = []
        self._deletes: list[tuple[str, str, str]] = []

    def queued(self) -> tuple[int, int]:
        """A mark of what is queued, for :meth:`unqueue`."""
        return len(self._rows), len(self._deletes)

    def unqueue(self, mark: tuple[int, int] = (0, 0)) -> None:
        """Drop what was queued since ``mark`` (a failed figure's rows never reach ``scores``)."""
        del self._rows[mark[0]:], self._deletes[mark[1]:]

    def month_input(self, rs: RuleSet, subject: str, month: str, adoptions: Adoptions,
                    org: Org | None = None) -> MonthInput | None:
        """The responses credited to a subject-month, split into counted and excluded."""
        return self.month_inputs(rs, month, [subject], adoptions, org).get(subject)

    def month_inputs(self, rs: RuleSet, month: str, subjects: list[str], adoptions: Adoptions,
                     org: Org | None = None) -> dict[str, MonthInput]:
        """Month inputs of several subjects of one rule set, from one query; each response is
        decoded once however many of the subjects it is credited to."""
        adoption = adoptions.in_force(rs.id, month)
        if adoption is None:
            return {}
        wanted = set(subjects)
        if len(subjects) <= self.MANY_SUBJECTS:
            marks = ",".join("?" * len(subjects))
            rows = self.conn.execute(
                "SELECT c.subject, c.response, c.role, c.via, r.state FROM rm_credits c JOIN rm_responses r "
                f"ON r.id = c.response WHERE c.ruleset = ? AND c.subject IN ({marks}) AND c.period = ? "
                "ORDER BY r.position, c.role, c.via", (rs.id, *subjects, month))
        else:  # many subjects (a rebuild): two range scans beat a lookup per credit
            states = dict(self.conn.execute(
                "SELECT id, state FROM rm_responses WHERE ruleset = ? AND period = ? ORDER BY position",
                (rs.id, month)))
            order = {k: i for i, k in enumerate(states)}
            credits = sorted(self.conn.execute(
                "SELECT subject, response, role, via FROM rm_credits WHERE ruleset = ? AND period = ?",
                (rs.id, month)), key=lambda c: (order.get(c[1], -1), c[2], c[3]))
            rows = ((subj, resp, role, via, states[resp]) for subj, resp, role, via in credits if resp in states)
        decoded: dict[str, tuple[ResponseState, str | None]] = {}
        inputs: dict[str, MonthInput] = {}
        due = late_due(self.conn, adoption, month)
        with_cases = case_subjects(self.conn, month) if rs.uses_cases and org is not None else None
        for subject, response, role, via, blob in rows:
            if subject not in wanted:
                continue
            hit = decoded.get(response)
            if hit is None:
                state = decode_state(blob)
                hit = decoded[response] = (state, exclusion(state) or late_exclusion(state, due))
            inp = inputs.get(subject)
            if inp is None:
                kind = org.kind(subject, month) if org is not None else None
                cases, below = cases_of(self.conn, org, rs, subject, month, with_cases)
                inp = inputs[subject] = MonthInput(rs.id, subject, month, adoption, [], [], kind, cases, below=below)
            state, why = hit
            if why is None:
                inp.counted.append(Counted(state, Credit(subject, role, via)))
            elif state.withdrawn is not None:  # withdrawn means gone: counted nowhere
                inp.withdrawn.append(Excluded(state, why, Credit(subject, role, via)))
            else:
                inp.excluded.append(Excluded(state, why, Credit(subject, role, via)))
        return inputs

    def dirty_groups(self) -> list[tuple[str, str, str]]:
        """The subject-months waiting to be scored, of the rule sets that can be scored now."""
        return [d for d in self.conn.execute("SELECT ruleset, subject, period FROM rm_dirty")
                if self.usable(d[0])]

    def settle(self, dirty: list[tuple[str, str, str]], adoptions: Adoptions, org: Org,
               progress: Progress | None = None) -> None:
        """Rescore the ``dirty`` subject-months (:meth:`dirty_groups`, read under the write lock
        by the caller) and what stands above each; clear the marks of those that scored."""
        by_month: dict[tuple[str, str], list[str]] = defaultdict(list)
        by_subject: dict[tuple[str, str], set[str]] = defaultdict(set)
        for ruleset, subject, month in dirty:
            by_month[(ruleset, month)].append(subject)
            by_subject[(ruleset, subject)].add(month)
        failed: set[tuple[str, str]] = set()
        for (ruleset, month), subjects in sorted(by_month.items()):
            rs = self.rulesets[ruleset]
            inputs = self.month_inputs(rs, month, subjects, adoptions, org)
            for subject in subjects:
                inp = inputs.get(subject)
                queued = self.queued()
                try:
                    figures = [] if inp is None or not (inp.counted or inp.excluded) else checked_figures(
                        rs, f"scoring {subject} {month}",
                        guarded(rs, f"scoring {subject} {month}", rs.score_month, inp, None), inp.params)
                    self.write(rs, month, subject, "month", inp.adoption if inp else None, figures)
                except RuleSetFailed as e:  # this subject's rows stay as they were published
                    self.unqueue(queued)
                    self.failed(under_adoption(e, inp.adoption if inp else None))
                    failed.add((ruleset, subject))
            self.flush()  # a month at a time: memory stays flat however long the log
            if progress:
                progress(scored=len(subjects))
        for (ruleset, subject), months in sorted(by_subject.items()):
            if (ruleset, subject) in failed:
                continue
            self.conn.execute("SAVEPOINT csat_subject")
            try:
                self.above_months(self.rulesets[ruleset], subject, months, adoptions)
                self.flush()
            except RuleSetFailed as e:  # nothing of this subject's sequence or roll-ups is kept
                self.unqueue()
                self.conn.execute("ROLLBACK TO csat_subject")
                self.failed(e)
                failed.add((ruleset, subject))
            self.conn.execute("RELEASE csat_subject")
        self.conn.executemany("DELETE FROM rm_dirty WHERE ruleset = ? AND subject = ? AND period = ?",
                              [d for d in dirty if (d[0], d[1]) not in failed])
        explained.forget(self.conn, set(by_subject))

    def above_months(self, rs: RuleSet, subject: str, months: set[str], adoptions: Adoptions) -> None:
        """After a subject's months were rescored: its sequence (later months) and its roll-ups."""
        touched = set(months)
        if rs.sequential:
            touched |= self._resequence(rs, subject, adoptions)
        rollups = sorted({p for m in touched for p in periods.rollups_of(m)})
        if rollups:
            stored = self.month_figures(rs, subject)
            for period in rollups:
                self._write_rollup(rs, subject, period, adoptions, stored)

    def month_figures(self, rs: RuleSet, subject: str,
                      months: Iterable[str] | None = None) -> dict[str, list[tuple[str, Figure]]]:
        """Stored month figures of a subject, by metric, in month order."""
        sql = ("SELECT period, metric, score, grade, grade_label, responses, extras, state FROM scores "
               "WHERE ruleset = ? AND subject = ? AND kind = 'month'")
        args: list[Any] = [rs.id, subject]
        wanted = set(months) if months is not None else None
        out: dict[str, list[tuple[str, Figure]]] = defaultdict(list)
        for period, met, score, grade, label, responses, extras, state in self.conn.execute(
                sql + " ORDER BY period", args):
            if wanted is not None and period not in wanted:
                continue
            out[met].append((period, Figure(met, Decimal(score) if score is not None else None, responses,
                                            grade, label, EXTRAS_DEC.decode(extras), _STATE_DEC.decode(state))))
        return out

    def _resequence(self, rs: RuleSet, subject: str, adoptions: Adoptions) -> set[str]:
        changed: set[str] = set()
        for metric, months in self.month_figures(rs, subject).items():
            before = {m: _stored_form(f) for m, f in months}
            where = f"sequencing {subject} {metric}"
            try:
                after = checked_sequence(rs, where, guarded(
                    rs, where, rs.sequence, months, lambda m: adoptions.in_force(rs.id, m).params),
                    [m for m, _ in months])
            except RuleSetFailed as e:
                raise under_adoption(e, adoptions.in_force(rs.id, months[-1][0]) if months else None) from None
            for month, fig in after:
                if _stored_form(fig) != before.get(month):
                    changed.add(month)
                    self.write(rs, month, subject, "month", adoptions.in_force(rs.id, month), [fig],
                                only_metric=metric)
        self.flush()
        return changed

    def _write_rollup(self, rs: RuleSet, subject: str, period: str, adoptions: Adoptions,
                      stored: dict[str, list[tuple[str, Figure]]]) -> None:
        months = set(periods.months_of(period))
        figures = []
        adoption = None
        for metric, all_rows in stored.items():
            rows = [(m, f) for m, f in all_rows if m in months]
            if not rows:
                continue
            adoption = adoptions.in_force(rs.id, rows[-1][0])
            where = f"rolling up {subject} {period} {metric}"
            try:
                fig = checked_figure(rs, where, guarded(rs, where, rs.roll_up, period, metric, rows, adoption.params,
                                                        None), adoption.params)
            except RuleSetFailed as e:
                raise under_adoption(e, adoption) from None
            if fig is not None:
                figures.append(fig)
        self.write(rs, period, subject, periods.kind(period), adoption, figures)

    def write(self, rs: RuleSet, period: str, subject: str, kind: str, adoption: Any,
               figures: list[Figure], only_metric: str | None = None) -> None:
        """Queue a group's rows; :meth:`flush` replaces the group's old rows with them."""
        self.queue(rs.id, period, subject, score_rows(rs, period, subject, kind, adoption, figures),
                   only_metric is None)

    def queue(self, ruleset: str, period: str, subject: str, rows: list[tuple[Any, ...]], replace: bool = True) -> None:
        """Queue a group's rows made already (:func:`score_rows`); ``replace``: its old rows go."""
        if replace:
            self._deletes.append((ruleset, period, subject))
        self._rows.extend(rows)

    def flush(self) -> None:
        # plain executemany: sqlite-utils' per-value conversion costs ~2 s per 100k events on a rebuild
        if self._deletes:
            self.conn.executemany("DELETE FROM scores WHERE ruleset = ? AND period = ? AND subject = ?", self._deletes)
            self._deletes = []
        if self._rows:
            self.conn.executemany(f"INSERT OR REPLACE INTO scores ({', '.join(SCORE_COLUMNS)}) VALUES "
                                  f"({', '.join('?' * len(SCORE_COLUMNS))})", self._rows)
            self._rows = []
