"""The scores projection: catches up with the log and keeps ``scores`` current.

eventsourcing's SQLite recorder has no subscriptions, so the projection pulls:
it reads the log in pages from its tracked position. Each page is applied to
the working tables (``rm_*``) and marks the subject-months it touches as dirty,
in one transaction with the tracking position (eventsourcing's ``tracking``
table). :meth:`Projection.settle` then rescores only the dirty subject-months,
the subject's later months when the rule set is sequential, and the quarters
and years above them — never everything. A rebuild is a catch-up from 0.
"""
from __future__ import annotations

import contextlib
import sqlite3
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from typing import Any

import msgspec

from . import periods
from .cases import mark_case_groups, month_cases, record_case_event
from .events import NA, ParametersAdopted, ResponseCorrected, ResponseRecorded, ResponseWithdrawn, UnitDeclared
from .numbers import publish
from .readmodel import (Adoptions, Org, database, decode_state, drop_all, encode_state, ensure_schema,
                        load_states)
from .ruleset import Amendment, Counted, Credit, Excluded, Figure, MonthInput, ResponseState, RuleSet
from .store import Logged, Store

Progress = Callable[[int], None]
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
    if all(v == NA for v in state.answers.values()):
        return "every answer is N/A"
    return None


def _stored_form(f: Figure) -> tuple[Any, ...]:
    """What a figure looks like once written (its unrounded score is in ``state``),
    to tell whether re-sequencing changed it."""
    state = dict(f.state)
    state.setdefault("score", f.score)
    return (f.metric, f.grade, f.grade_label, f.responses, _EXTRAS_ENC.encode(f.extras), _STATE_ENC.encode(state))


class Projection:
    """Keeps the read models of one store in step with its log."""

    PAGE = 5000
    #: above this many dirty subjects in one rule-set month, read the whole month by range scans
    MANY_SUBJECTS = 50

    def __init__(self, store: Store, rulesets: dict[str, RuleSet]):
        self.store = store
        self.conn: sqlite3.Connection = store.conn
        self.db = database(self.conn)
        self.rulesets = rulesets
        self._rows: list[tuple[Any, ...]] = []
        self._deletes: list[tuple[str, str, str]] = []
        self._state: tuple[Adoptions, Org] | None = None
        self._state_at = -1  # the tracked position the cached state reflects
        self._org_rulesets = [rs.id for rs in rulesets.values() if rs.uses_org]
        self._case_rulesets = [rs.id for rs in rulesets.values() if rs.uses_cases]
        if ensure_schema(self.db):
            self.store.forget_tracking()

    # -- catching up -------------------------------------------------------------

    def state(self) -> tuple[Adoptions, Org]:
        """The adoptions and the org chart as of the tracked position, kept in memory and
        updated as events are applied (forgotten after a rollback or a rebuild)."""
        tracked = self.store.tracked()
        if self._state is None or tracked != self._state_at:  # another process may have moved the views
            self._state = (Adoptions.load(self.conn, self.rulesets), Org.load(self.conn))
            self._state_at = tracked
        return self._state

    def forget_state(self) -> None:
        self._state = None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """A write transaction; inside an outer one (rebuild, what-if, as-of) it joins that one."""
        if self.conn.in_transaction:
            yield
            return
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.store.rollback()
            raise
        self.conn.execute("COMMIT")

    def catch_up(self, progress: Progress | None = None, settle: bool = True, upto: int | None = None) -> int:
        """Apply every event after the tracked position (up to ``upto``); returns how many were applied."""
        start = self.store.tracked()
        end = self.store.max_position() if upto is None else min(upto, self.store.max_position())
        applied = 0
        if end > start:
            adoptions, org = self.state()
            for page in self.store.pages(start, self.PAGE, upto=end):
                try:
                    with self.transaction():
                        self._apply(page, adoptions, org)
                        self.store.track(page[-1].position)
                except BaseException:
                    self.forget_state()
                    raise
                self._state_at = page[-1].position
                applied += len(page)
                if progress:
                    progress(len(page))
        if settle:
            self.settle()
        return applied

    def _reset(self) -> None:
        drop_all(self.db)
        ensure_schema(self.db)
        self.store.forget_tracking()
        self.forget_state()

    def rebuild(self, progress: Progress | None = None) -> int:
        """Drop every read model and rebuild it from position 0, in one transaction: a reader
        in another process sees the old read models until the new ones are complete."""
        try:
            with self.transaction():
                self._reset()
                return self.catch_up(progress)
        except BaseException:
            self.forget_state()
            raise

    @contextlib.contextmanager
    def as_of(self, position: int) -> Iterator[None]:
        """The read models as they stood when the log ended at ``position``, inside a
        transaction that is rolled back afterwards (nothing changes)."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            self._reset()
            self.catch_up(upto=position)
            yield
        finally:
            self.store.rollback()
            self.forget_state()

    @contextlib.contextmanager
    def what_if(self, adoption: ParametersAdopted) -> Iterator[None]:
        """The read models as if ``adoption`` were appended now, inside a transaction that is
        rolled back afterwards: neither the log nor the published read models change."""
        self.catch_up()
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            adoptions, org = self.state()
            position = self.store.max_position() + 1
            self._apply([Logged(position, "", f"adoption:{adoption.ruleset}:{adoption.id}", adoption)],
                        adoptions, org)
            self.settle()
            yield
        finally:
            self.store.rollback()
            self.forget_state()

    def _credits(self, state: ResponseState, adoptions: Adoptions, org: Org) -> list[Credit]:
        rs = self.rulesets.get(state.ruleset)
        if rs is None:
            return [Credit(state.subject)]
        adoption = adoptions.in_force(state.ruleset, state.period)
        return rs.credits(state, adoption.params if adoption else None, org.chain)

    def _apply(self, page: list[Logged], adoptions: Adoptions, org: Org) -> None:
        states: dict[str, ResponseState] = {}
        credits: list[tuple[str, str, str, str, str, str]] = []
        dirty: set[tuple[str, str, str]] = set()

        def flush() -> None:
            self.conn.executemany(
                "INSERT OR REPLACE INTO rm_responses (id, position, ruleset, period, subject, state) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(s.id, s.position, s.ruleset, s.period, s.subject, encode_state(s)) for s in states.values()])
            self.conn.executemany("INSERT OR IGNORE INTO rm_credits VALUES (?, ?, ?, ?, ?, ?)", credits)
            self.conn.executemany("INSERT OR IGNORE INTO rm_dirty VALUES (?, ?, ?)", dirty)
            self._remedies(states.values(), adoptions)
            states.clear()
            credits.clear()
            dirty.clear()

        for logged in page:
            ev = logged.event
            if isinstance(ev, ResponseRecorded):
                state = ResponseState.of(ev, logged.position)
                states[ev.id] = state
                for c in self._credits(state, adoptions, org):
                    credits.append((ev.ruleset, c.subject, ev.period, ev.id, c.role, c.via))
                    dirty.add((ev.ruleset, c.subject, ev.period))
            elif isinstance(ev, (ResponseCorrected, ResponseWithdrawn)):
                state = states.get(ev.response) or load_states(self.conn, [ev.response]).get(ev.response)
                if state is None:  # ingest refuses these; a hand-made log may still hold one
                    continue
                amendment = Amendment(logged.position, logged.type, ev.id, ev.reason)
                if isinstance(ev, ResponseCorrected):
                    state = msgspec.structs.replace(state, answers=ev.answers, reasons=ev.reasons,
                                                    comment=ev.comment,
                                                    corrections=[*state.corrections, amendment])
                else:
                    state = msgspec.structs.replace(state, withdrawn=amendment)
                states[state.id] = state
                for c in self._credits(state, adoptions, org):
                    dirty.add((state.ruleset, c.subject, state.period))
            elif isinstance(ev, ParametersAdopted):
                flush()
                rs = self.rulesets.get(ev.ruleset)
                before = [a for a in adoptions.of(ev.ruleset) if a.from_ >= ev.from_]
                if (at_from := adoptions.in_force(ev.ruleset, ev.from_)) is not None:
                    before.append(at_from)
                adoption = adoptions.add(ev.ruleset, ev.id, ev.from_, logged.position, ev.params)
                recredit = rs is not None and rs.uses_org and (
                    not before or any(rs.credit_params(a.params) != rs.credit_params(adoption.params) for a in before))
                self.conn.execute("INSERT OR REPLACE INTO rm_adoptions VALUES (?, ?, ?, ?, ?, ?)",
                                  (ev.ruleset, ev.id, ev.from_, logged.position,
                                   msgspec.json.encode(ev.params).decode(), adoption.hash))
                self.conn.execute("INSERT OR IGNORE INTO rm_dirty SELECT DISTINCT ruleset, subject, period "
                                  "FROM rm_credits WHERE ruleset = ? AND period >= ?", (ev.ruleset, ev.from_))
                if recredit:
                    self._recredit([r for (r,) in self.conn.execute(
                        "SELECT id FROM rm_responses WHERE ruleset = ? AND period >= ?", (ev.ruleset, ev.from_))],
                        adoptions, org)
            elif isinstance(ev, UnitDeclared):
                flush()
                from_ = ev.from_ or ""
                self.conn.execute("INSERT OR REPLACE INTO rm_units VALUES (?, ?, ?, ?, ?, ?)",
                                  (ev.id, from_, logged.position, ev.name, ev.kind, ev.parent))
                org.add(ev.id, from_, ev.name, ev.kind, ev.parent, logged.position)
                org_rulesets = self._org_rulesets
                if org_rulesets:
                    marks = ",".join("?" * len(org_rulesets))
                    self._recredit([r for (r,) in self.conn.execute(
                        f"SELECT response FROM rm_credits WHERE ruleset IN ({marks}) AND subject = ? AND period >= ? "
                        f"UNION SELECT response FROM rm_credits WHERE via = ? AND via != '' AND period >= ? "
                        f"AND ruleset IN ({marks})",
                        (*org_rulesets, ev.id, from_, ev.id, from_, *org_rulesets))], adoptions, org)
            else:
                self._record_case_event(logged)
        flush()

    def _recredit(self, ids: list[str], adoptions: Adoptions, org: Org) -> None:
        """Recompute the credits of responses whose org chart or parameters changed."""
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            marks = ",".join("?" * len(chunk))
            self.conn.execute("INSERT OR IGNORE INTO rm_dirty SELECT DISTINCT ruleset, subject, period FROM rm_credits "
                              f"WHERE response IN ({marks})", chunk)
            self.conn.execute(f"DELETE FROM rm_credits WHERE response IN ({marks})", chunk)
            rows, dirty = [], set()
            for state in load_states(self.conn, chunk).values():
                for c in self._credits(state, adoptions, org):
                    rows.append((state.ruleset, c.subject, state.period, state.id, c.role, c.via))
                    dirty.add((state.ruleset, c.subject, state.period))
            self.conn.executemany("INSERT OR IGNORE INTO rm_credits VALUES (?, ?, ?, ?, ?, ?)", rows)
            self.conn.executemany("INSERT OR IGNORE INTO rm_dirty VALUES (?, ?, ?)", dirty)

    def _remedies(self, states: Iterable[ResponseState], adoptions: Adoptions) -> None:
        """Open or drop the remedy cases of changed responses (derived, never logged)."""
        upsert, drop = [], []
        for st in states:
            rs = self.rulesets.get(st.ruleset)
            adoption = adoptions.in_force(st.ruleset, st.period) if rs else None
            why = None
            if rs is not None and adoption is not None and exclusion(st) is None:
                why = rs.remedy(st, adoption.params)
            if why:
                upsert.append((f"remedy:{st.id}", "remedy", st.subject, st.period, st.ruleset, None, "callback",
                               None, st.id, why, None, st.position))
            elif st.corrections or st.withdrawn is not None:  # only an amended response can lose its case
                drop.append((f"remedy:{st.id}",))
        if upsert:
            self.conn.executemany("INSERT OR REPLACE INTO rm_cases VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", upsert)
        if drop:
            self.conn.executemany("DELETE FROM rm_cases WHERE id = ?", drop)

    def _record_case_event(self, logged: Logged) -> None:
        if self._case_rulesets:
            mark_case_groups(self.conn, logged.event, self._case_rulesets)
        record_case_event(self.conn, logged)

    # -- scoring -------------------------------------------------------------------

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
        for subject, response, role, via, blob in rows:
            if subject not in wanted:
                continue
            hit = decoded.get(response)
            if hit is None:
                state = decode_state(blob)
                hit = decoded[response] = (state, exclusion(state))
            inp = inputs.get(subject)
            if inp is None:
                kind = org.kinds.get(subject) if org is not None else None
                cases = month_cases(self.conn, subject, month, rs.id) if rs.uses_cases else []
                inp = inputs[subject] = MonthInput(rs.id, subject, month, adoption, [], [], kind, cases)
            state, why = hit
            if why is None:
                inp.counted.append(Counted(state, Credit(subject, role, via)))
            else:
                inp.excluded.append(Excluded(state, why, Credit(subject, role, via)))
        return inputs

    def settle(self) -> int:
        """Rescore every dirty subject-month and what stands above it; returns groups rescored."""
        dirty = self.conn.execute("SELECT ruleset, subject, period FROM rm_dirty").fetchall()
        if not dirty:
            return 0
        adoptions, org = self.state()
        by_month: dict[tuple[str, str], list[str]] = defaultdict(list)
        by_subject: dict[tuple[str, str], set[str]] = defaultdict(set)
        for ruleset, subject, month in dirty:
            if ruleset in self.rulesets:
                by_month[(ruleset, month)].append(subject)
                by_subject[(ruleset, subject)].add(month)
        with self.transaction():
            for (ruleset, month), subjects in sorted(by_month.items()):
                rs = self.rulesets[ruleset]
                inputs = self.month_inputs(rs, month, subjects, adoptions, org)
                for subject in subjects:
                    inp = inputs.get(subject)
                    figures = rs.score_month(inp, None) if inp is not None else []
                    self._write(rs, month, subject, "month", inp.adoption if inp else None, figures)
                self._flush_rows()  # a month at a time: memory stays flat however long the log
            for (ruleset, subject), months in sorted(by_subject.items()):
                self._above_months(self.rulesets[ruleset], subject, months, adoptions)
            self._flush_rows()
            self.conn.executemany("DELETE FROM rm_dirty WHERE ruleset = ? AND subject = ? AND period = ?", dirty)
        return len(dirty)

    def _above_months(self, rs: RuleSet, subject: str, months: set[str], adoptions: Adoptions) -> None:
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
            after = rs.sequence(months, lambda m: adoptions.in_force(rs.id, m).params)
            for month, fig in after:
                if _stored_form(fig) != before.get(month):
                    changed.add(month)
                    self._write(rs, month, subject, "month", adoptions.in_force(rs.id, month), [fig],
                                only_metric=metric)
        self._flush_rows()
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
            fig = rs.roll_up(period, metric, rows, adoption.params, None)
            if fig is not None:
                figures.append(fig)
        self._write(rs, period, subject, periods.kind(period), adoption, figures)

    def _write(self, rs: RuleSet, period: str, subject: str, kind: str, adoption: Any,
               figures: list[Figure], only_metric: str | None = None) -> None:
        """Queue a group's rows; :meth:`_flush_rows` replaces the group's old rows with them."""
        if only_metric is None:
            self._deletes.append((rs.id, period, subject))
        if not figures:
            return
        precision = getattr(adoption.params, "precision", 2)
        for f in figures:
            state = dict(f.state)
            state.setdefault("score", f.score)
            self._rows.append((
                rs.id, period, subject, f.metric, kind, adoption.id, adoption.hash,
                str(publish(f.score, precision)) if f.score is not None else None,
                f.grade, f.grade_label, f.responses, _EXTRAS_ENC.encode(f.extras).decode(),
                _STATE_ENC.encode(state).decode()))

    def _flush_rows(self) -> None:
        # plain executemany: sqlite-utils' per-value conversion costs ~2 s per 100k events on a rebuild
        if self._deletes:
            self.conn.executemany("DELETE FROM scores WHERE ruleset = ? AND period = ? AND subject = ?", self._deletes)
            self._deletes = []
        if self._rows:
            self.conn.executemany(f"INSERT OR REPLACE INTO scores ({', '.join(SCORE_COLUMNS)}) VALUES "
                                  f"({', '.join('?' * len(SCORE_COLUMNS))})", self._rows)
            self._rows = []
