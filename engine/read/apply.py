"""Applying events to the working tables: the projection's incremental path.

:class:`Applier` takes a page of the log and updates the working tables (``rm_responses``,
``rm_credits``, ``rm_adoptions``, ``rm_units``, the complaint tables, ``rm_rulesets``) and marks
dirty the subject-months the page moves (``rm_dirty``), inside the caller's write transaction; the
projection's :class:`~csat.engine.read.settle.Scorer` rescores them afterwards. It credits responses,
derives remedy cases and parks the events of rule sets that cannot be used, and re-derives a
rule set that is usable again (:meth:`Applier.resume`). It reads the projection through
:class:`Host`: nothing more.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import msgspec

from . import explained
from .cases import case_months, mark_case_groups, record_case_event
from ..errors import RuleSetFailed, StoreError
from ..log.events import (ChainRepaired, DealingsDeclined, ParametersAdopted, ResponseCorrected, ResponseRecorded,
                          ResponseWithdrawn, PersonErased, ResultsAnnounced, RoundClosed, RoundOpened, UnitDeclared)
from ..scoring.guard import checked_credits, checked_remedy, guarded
from .readmodel import Adoptions, Org, count_events, encode_state, load_states, mark_chart
from ..scoring.ruleset import Amendment, Credit, ResponseState, RuleSet
from .settle import exclusion
from ..log.store import Logged


#: events of no rule set that are no case either (a repair of the chain: the log's own upkeep)
_FOR_NO_CASE = (DealingsDeclined, RoundClosed, PersonErased, ChainRepaired)


def _ruleset_of(ev: Any) -> str | None:
    return getattr(ev, "ruleset", None)


class Host(Protocol):
    """What the applier reads of the projection it works for."""

    conn: Any
    rulesets: dict[str, RuleSet]
    only: set[str] | None
    unusable: dict[str, str]
    strict: bool

    def usable(self, ruleset: str) -> bool: ...
    def give_up(self, e: RuleSetFailed) -> None: ...
    def state(self) -> tuple[Adoptions, Org]: ...
    def forget_state(self) -> None: ...


class Applier:
    """The incremental path's writer of the working tables (see the module).

    :param host: the projection: its connection, rule sets and their usability.
    """

    def __init__(self, host: Host):
        self.host = host
        self.conn = host.conn
        self.rulesets = host.rulesets

    def credits_of(self, state: ResponseState, adoptions: Adoptions, org: Org) -> list[Credit]:
        return credits_of(self.rulesets[state.ruleset], state, adoptions, org)

    def unusable_event(self, ruleset: str, logged: Logged) -> None:
        if self.host.strict:
            why = self.host.unusable.get(ruleset) or "it is not installed"
            raise StoreError(f"rebuild stopped at position {logged.position}: the event belongs to rule set "
                             f"{ruleset!r} and {why}; nothing was changed")

    def apply(self, page: list[Logged], adoptions: Adoptions, org: Org) -> None:
        states: dict[str, ResponseState] = {}
        credits: list[tuple[str, str, str, str, str, str]] = []
        dirty: set[tuple[str, str, str]] = set()
        counts: Counter[str] = Counter()
        pending: set[str] = set()
        explanations_stale = False  # rare events that reach many figures: drop every stored explanation

        def flush() -> None:
            self.conn.executemany(
                "INSERT OR REPLACE INTO rm_responses (id, position, ruleset, period, subject, state) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(s.id, s.position, s.ruleset, s.period, s.subject, encode_state(s)) for s in states.values()])
            self.conn.executemany("INSERT OR IGNORE INTO rm_credits VALUES (?, ?, ?, ?, ?, ?)", credits)
            self.conn.executemany("INSERT OR IGNORE INTO rm_dirty VALUES (?, ?, ?)", dirty)
            self.remedies(states.values(), adoptions)
            states.clear()
            credits.clear()
            dirty.clear()

        def credit(state: ResponseState, logged: Logged, write: bool) -> None:
            """Credit (and mark dirty) a usable rule set's response; park an unusable one's."""
            if self.host.usable(state.ruleset):
                try:
                    for c in self.credits_of(state, adoptions, org):
                        if write:
                            credits.append((state.ruleset, c.subject, state.period, state.id, c.role, c.via))
                        dirty.add((state.ruleset, c.subject, state.period))
                    return
                except RuleSetFailed as e:
                    self.host.give_up(e)
            self.unusable_event(state.ruleset, logged)
            pending.add(state.ruleset)

        for logged in page:
            ev = logged.event
            if isinstance(ev, ResponseRecorded):
                if self.host.only is not None and ev.ruleset not in self.host.only:
                    continue
                state = ResponseState.of(ev, logged.position, logged.at)
                states[ev.id] = state
                counts[ev.ruleset] += 1
                credit(state, logged, write=True)
            elif isinstance(ev, (ResponseCorrected, ResponseWithdrawn)):
                state = states.get(ev.response) or load_states(self.conn, [ev.response]).get(ev.response)
                if state is None:  # ingest refuses these; a hand-made log (or a snapshot's filter) may skip one
                    continue
                amendment = Amendment(logged.position, logged.type, ev.id, ev.reason)
                if isinstance(ev, ResponseCorrected):
                    state = msgspec.structs.replace(state, answers=ev.answers, reasons=ev.reasons,
                                                    comment=ev.comment,
                                                    corrections=[*state.corrections, amendment])
                else:
                    state = msgspec.structs.replace(state, withdrawn=amendment)
                states[state.id] = state
                counts[state.ruleset] += 1
                credit(state, logged, write=False)
            elif isinstance(ev, ParametersAdopted):
                if self.host.only is not None and ev.ruleset not in self.host.only:
                    continue
                flush()
                counts[ev.ruleset] += 1
                self._adopt(ev, logged, adoptions, org, pending)
                explanations_stale = True
            elif isinstance(ev, UnitDeclared):
                flush()
                self._declare(ev, logged, adoptions, org)
                pending |= self._parked()  # their credits and cases follow the chart when they are back
                explanations_stale = True
            else:  # case events mark their case groups dirty (the rule sets that use cases)
                ruleset = _ruleset_of(ev)
                if ruleset is not None:
                    if self.host.only is not None and ruleset not in self.host.only:
                        continue
                    counts[ruleset] += 1
                    if not self.host.usable(ruleset) and not isinstance(ev, (RoundOpened, ResultsAnnounced)):
                        pending.add(ruleset)
                elif not isinstance(ev, _FOR_NO_CASE):  # a case for every rule set: those
                    pending |= self._parked()  # that cannot see it now rescore it when back
                self._record_case_event(logged, org)
        flush()
        count_events(self.conn, counts, pending)
        if explanations_stale:  # a unit or an adoption: other processes reload their org chart and adoptions
            explained.forget_all(self.conn)
            mark_chart(self.conn)

    def _adopt(self, ev: ParametersAdopted, logged: Logged, adoptions: Adoptions, org: Org,
               pending: set[str]) -> None:
        rs = self.rulesets.get(ev.ruleset)
        before = [a for a in adoptions.of(ev.ruleset) if a.from_ >= ev.from_]
        if (at_from := adoptions.in_force(ev.ruleset, ev.from_)) is not None:
            before.append(at_from)
        adoption = adoptions.add(ev.ruleset, ev.id, ev.from_, logged.position, ev.params, ev.params_version)
        if ev.ruleset in adoptions.failed:
            self.host.unusable.setdefault(ev.ruleset, f"rule set {ev.ruleset}: {adoptions.failed[ev.ruleset]}")
        self.conn.execute("INSERT OR REPLACE INTO rm_adoptions VALUES (?, ?, ?, ?, ?, ?, ?)",
                          (ev.ruleset, ev.id, ev.from_, logged.position,
                           msgspec.json.encode(ev.params).decode(), adoption.hash, ev.params_version or 1))
        if rs is None or not self.host.usable(ev.ruleset):
            self.unusable_event(ev.ruleset, logged)
            pending.add(ev.ruleset)
            return
        self.conn.execute("INSERT OR IGNORE INTO rm_dirty SELECT DISTINCT ruleset, subject, period "
                          "FROM rm_credits WHERE ruleset = ? AND period >= ?", (ev.ruleset, ev.from_))
        if rs.uses_org:
            try:
                credit_params = [guarded(rs, f"adoption {ev.id}", rs.credit_params, a.params)
                                 for a in (adoption, *before)]
            except RuleSetFailed as e:
                self.host.give_up(e)
                pending.add(ev.ruleset)
                return
            if not before or any(p != credit_params[0] for p in credit_params[1:]):
                self._recredit([r for (r,) in self.conn.execute(
                    "SELECT id FROM rm_responses WHERE ruleset = ? AND period >= ?", (ev.ruleset, ev.from_))],
                    adoptions, org, pending)

    def _parked(self) -> set[str]:
        """Rule sets with events in the log that cannot be used now: an event that concerns every
        rule set (a ``unit``, a complaint for no rule set in particular) leaves them pending, so
        they are re-derived when usable again (:meth:`_resume`)."""
        return {r for (r,) in self.conn.execute("SELECT ruleset FROM rm_rulesets WHERE events > 0")
                if not self.host.usable(r)}

    def _declare(self, ev: UnitDeclared, logged: Logged, adoptions: Adoptions, org: Org) -> None:
        from_ = ev.from_ or ""
        self.conn.execute("INSERT OR REPLACE INTO rm_units VALUES (?, ?, ?, ?, ?, ?)",
                          (ev.id, from_, logged.position, ev.name, ev.kind, ev.parent))
        case_rulesets = [r for r, rs in self.rulesets.items() if rs.uses_cases and self.host.usable(r)]
        cases = case_months(self.conn, from_) if case_rulesets else []
        above = {(s, m): [s, *org.chain(s, m)] for s, m in cases}  # before the move
        org.add(ev.id, from_, ev.name, ev.kind, ev.parent, logged.position)
        marks = set()
        for (s, m), before in above.items():  # a case below a unit that moved: its old and new ancestors
            after = [s, *org.chain(s, m)]
            if ev.id in before or ev.id in after:
                marks |= {(r, u, m) for r in case_rulesets for u in (*before, *after)}
        self.conn.executemany("INSERT OR IGNORE INTO rm_dirty VALUES (?, ?, ?)", marks)
        org_rulesets = [r for r, rs in self.rulesets.items() if rs.uses_org and self.host.usable(r)]
        if org_rulesets:
            marks = ",".join("?" * len(org_rulesets))
            self._recredit([r for (r,) in self.conn.execute(
                f"SELECT response FROM rm_credits WHERE ruleset IN ({marks}) AND subject = ? AND period >= ? "
                f"UNION SELECT response FROM rm_credits WHERE via = ? AND via != '' AND period >= ? "
                f"AND ruleset IN ({marks})",
                (*org_rulesets, ev.id, from_, ev.id, from_, *org_rulesets))], adoptions, org, set())

    def _recredit(self, ids: list[str], adoptions: Adoptions, org: Org, pending: set[str]) -> None:
        """Recompute the credits of responses whose org chart or parameters changed."""
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            marks = ",".join("?" * len(chunk))
            self.conn.execute("INSERT OR IGNORE INTO rm_dirty SELECT DISTINCT ruleset, subject, period FROM rm_credits "
                              f"WHERE response IN ({marks})", chunk)
            self.conn.execute(f"DELETE FROM rm_credits WHERE response IN ({marks})", chunk)
            rows, dirty = [], set()
            for state in load_states(self.conn, chunk).values():
                if not self.host.usable(state.ruleset):
                    pending.add(state.ruleset)
                    continue
                try:
                    for c in self.credits_of(state, adoptions, org):
                        rows.append((state.ruleset, c.subject, state.period, state.id, c.role, c.via))
                        dirty.add((state.ruleset, c.subject, state.period))
                except RuleSetFailed as e:
                    self.host.give_up(e)
                    pending.add(state.ruleset)
            self.conn.executemany("INSERT OR IGNORE INTO rm_credits VALUES (?, ?, ?, ?, ?, ?)", rows)
            self.conn.executemany("INSERT OR IGNORE INTO rm_dirty VALUES (?, ?, ?)", dirty)
        if pending:
            self.conn.executemany("UPDATE rm_rulesets SET pending = 1 WHERE ruleset = ?", [(r,) for r in pending])

    def park(self, e: RuleSetFailed) -> None:
        """A rule set whose code failed is unusable here, its events pending until it works again."""
        self.host.give_up(e)
        self.conn.execute("UPDATE rm_rulesets SET pending = 1 WHERE ruleset = ?", (e.ruleset,))

    def remedies(self, states: Iterable[ResponseState], adoptions: Adoptions) -> None:
        """Open or drop the remedy cases of changed responses (derived, never logged)."""
        self.write_remedies(*remedy_rows(self.rulesets, self.host.usable, states, adoptions))

    def write_remedies(self, upsert: list[tuple[Any, ...]], drop: list[tuple[str]],
                       failures: list[RuleSetFailed]) -> None:
        """Write what :func:`remedy_rows` found; park the rule sets whose ``remedy`` failed."""
        for e in failures:
            self.park(e)
        if upsert:
            self.conn.executemany("INSERT OR REPLACE INTO rm_cases VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", upsert)
        if drop:
            self.conn.executemany("DELETE FROM rm_cases WHERE id = ?", drop)

    def _record_case_event(self, logged: Logged, org: Org) -> None:
        case_rulesets = [r for r, rs in self.rulesets.items() if rs.uses_cases and self.host.usable(r)]
        if case_rulesets:
            mark_case_groups(self.conn, logged.event, case_rulesets, org)
        if isinstance(logged.event, RoundOpened):  # its due date may exclude late answers (late_answers)
            self.conn.execute("INSERT OR IGNORE INTO rm_dirty SELECT DISTINCT ruleset, subject, period FROM rm_credits "
                              "WHERE ruleset = ? AND period = ?", (logged.event.ruleset, logged.event.period))
        record_case_event(self.conn, logged)

    # -- a rule set that is back ------------------------------------------------------

    def resumable(self) -> list[str]:
        return [r for (r,) in self.conn.execute("SELECT ruleset FROM rm_rulesets WHERE pending = 1")
                if r in self.rulesets and r not in self.host.unusable]

    def resume(self) -> None:
        """Re-credit and rescore the rule sets whose events were parked while they could not be used
        (inside the caller's write transaction). The result equals applying the events in order:
        crediting reads the effective-dated org chart and adoptions, which are complete in memory."""
        for ruleset in self.resumable():
            self.host.forget_state()
            adoptions, org = self.host.state()  # decodes the rule set's adoptions with the installed code
            if not self.host.usable(ruleset):
                continue
            self.conn.execute("SAVEPOINT csat_resume")
            pending: set[str] = set()
            ids = [r for (r,) in self.conn.execute("SELECT id FROM rm_responses WHERE ruleset = ?", (ruleset,))]
            self._recredit(ids, adoptions, org, pending)
            for i in range(0, len(ids), 500):
                self.remedies(load_states(self.conn, ids[i:i + 500]).values(), adoptions)
            if self.rulesets[ruleset].uses_cases:  # each case's unit and the units above it
                self.conn.executemany("INSERT OR IGNORE INTO rm_dirty VALUES (?, ?, ?)", {
                    (ruleset, u, m) for s, m in case_months(self.conn, "") for u in (s, *org.chain(s, m))})
            if ruleset in pending or not self.host.usable(ruleset):  # its code failed again: keep it parked
                self.conn.execute("ROLLBACK TO csat_resume")
                self.conn.execute("RELEASE csat_resume")
                continue
            self.conn.execute("UPDATE rm_rulesets SET pending = 0 WHERE ruleset = ?", (ruleset,))
            explained.forget_all(self.conn)
            self.conn.execute("RELEASE csat_resume")


def remedy_rows(rulesets: dict[str, RuleSet], usable: Callable[[str], bool], states: Iterable[ResponseState],
                adoptions: Adoptions) -> tuple[list[tuple[Any, ...]], list[tuple[str]], list[RuleSetFailed]]:
    """The remedy cases of changed responses: rows to upsert into ``rm_cases``, ids to drop, and
    the failures of rule sets whose ``remedy`` raised (their later responses are skipped, as a
    parked rule set's are). Reads nothing of the store."""
    upsert: list[tuple[Any, ...]] = []
    drop: list[tuple[str]] = []
    failures: list[RuleSetFailed] = []
    failed: set[str] = set()
    for st in states:
        if st.ruleset in failed or not usable(st.ruleset):
            continue  # derived again when the rule set is back (see _resume)
        rs = rulesets[st.ruleset]
        why = None
        if type(rs).remedy is RuleSet.remedy:  # the default opens none: no plugin code to call
            adoption = None
        else:
            adoption = adoptions.in_force(st.ruleset, st.period)
        if adoption is not None and exclusion(st) is None:
            where = f"remedy of response {st.id}"
            try:
                why = checked_remedy(rs, where, guarded(rs, where, rs.remedy, st, adoption.params))
            except RuleSetFailed as e:
                failures.append(e)
                failed.add(st.ruleset)
                continue
        if why:
            upsert.append((f"remedy:{st.id}", "remedy", st.subject, st.period, st.ruleset, None, "callback",
                           None, st.id, why, None, st.position))
        elif st.corrections or st.withdrawn is not None:  # only an amended response can lose its case
            drop.append((f"remedy:{st.id}",))
    return upsert, drop, failures


def credits_of(rs: RuleSet, state: ResponseState, adoptions: Adoptions, org: Org) -> list[Credit]:
    """The subjects a response is credited to, under the adoption in force for its month."""
    if type(rs).credits is RuleSet.credits:  # the default: its subject (no plugin code to guard)
        return [Credit(state.subject)]
    adoption = adoptions.in_force(state.ruleset, state.period)
    where = f"crediting response {state.id}"
    return checked_credits(rs, where, guarded(rs, where, rs.credits, state,
                                              adoption.params if adoption else None, org.chain))
