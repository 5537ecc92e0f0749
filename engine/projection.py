"""The scores projection: catches up with the log and keeps ``scores`` current.

eventsourcing's SQLite recorder has no subscriptions, so the projection pulls:
it reads the log in pages from its tracked position. Each page is applied to
the working tables (``rm_*``) and marks the subject-months it touches as dirty,
in one transaction with the tracking position (eventsourcing's ``tracking``
table). :meth:`Scoring.settle` then rescores only the dirty subject-months,
the subject's later months when the rule set is sequential, and the quarters
and years above them — never everything. A rebuild is a catch-up from 0.

Many processes (``events.md`` §6). Work is done under the store's write lock,
and what to do is decided *inside* it: a page is read after the tracked
position as it stands once the lock is held, and dirty marks are read inside
the settling transaction, so two processes never apply the same events or
score the same marks. A process that finds nothing to do takes no lock.

Rule sets that cannot be used (not installed, their plugin broken, their
adoptions no longer decoding): their events are kept in the working tables
without credits and the rule set is marked *pending*; their published rows are
never touched. When the rule set is usable again, the next catch-up re-credits
its responses and rescores it.
"""
from __future__ import annotations

import contextlib
import sqlite3
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

import msgspec

from . import explained
from .cases import case_months, mark_case_groups, record_case_event
from .errors import LogDamaged, RuleSetFailed, StoreError
from .events import ParametersAdopted, ResponseCorrected, ResponseRecorded, ResponseWithdrawn, UnitDeclared
from .guard import checked_credits, checked_remedy, guarded
from .readmodel import (Adoptions, Org, clear_all, count_events, drop_all, encode_state, ensure_schema,
                        load_states, schema_version, SCHEMA_VERSION)
from .ruleset import Amendment, Credit, ResponseState, RuleSet
from .replay import Replay
from .settle import EXTRAS_DEC, SCORE_COLUMNS, Progress, Scoring, exclusion
from .store import Logged, Store

__all__ = ["Projection", "Progress", "EXTRAS_DEC", "SCORE_COLUMNS", "exclusion"]


def _ruleset_of(ev: Any) -> str | None:
    return getattr(ev, "ruleset", None)


class Projection(Scoring, Replay):
    """Keeps the read models of one store in step with its log.

    :param views: the connection holding the read models; default the store's
        own (the shared, published ones). A private snapshot passes a
        connection to a temporary file (see :meth:`snapshot`).
    :param only: in a private snapshot, the rule sets whose events are applied
        (others are skipped entirely).
    """

    PAGE = 5000

    def __init__(self, store: Store, rulesets: dict[str, RuleSet], views: sqlite3.Connection | None = None,
                 only: Iterable[str] | None = None):
        self.store = store
        self.conn: sqlite3.Connection = views if views is not None else store.conn
        self.db = store.backend.database(self.conn)
        self.rulesets = rulesets
        self.only = set(only) if only is not None else None
        self._rows: list[tuple[Any, ...]] = []
        self._deletes: list[tuple[str, str, str]] = []
        self._state: tuple[Adoptions, Org] | None = None
        self._state_at = -1  # the tracked position the cached state reflects
        #: rule set -> why it cannot be used in this process (its plugin raised or its parameters fail)
        self.unusable: dict[str, str] = {}
        #: one line per scoring failure met by this process (rule set, subject-month, what was wrong)
        self.failures: dict[str, None] = {}
        self.strict = False  # a rebuild: an event of a rule set that cannot be used stops it
        self._nowait = False  # a reader's catch-up: never wait for another process's write lock
        self.token = uuid.uuid4().hex  # this process's name in the "catching up" word (will_catch_up)
        self._announced = False
        self._session: str | None = None
        self._ensure_schema()

    # -- the tracked position (on the views' connection) ----------------------------

    def tracked(self) -> int:
        return self.store.tracked(conn=self.conn)

    def _track(self, position: int) -> None:
        self.store.track(position, conn=self.conn)

    def _ensure_schema(self) -> None:
        if schema_version(self.db) == SCHEMA_VERSION:
            return
        with self.transaction():  # several processes may open a new store at once: one creates it
            if ensure_schema(self.db, self.rulesets):
                self.store.forget_tracking(conn=self.conn)

    # -- which rule sets can be used ---------------------------------------------------

    def usable(self, ruleset: str) -> bool:
        return ruleset in self.rulesets and ruleset not in self.unusable

    def failed(self, e: RuleSetFailed) -> None:
        """Note a scoring failure: its subject-month stays dirty and keeps its published rows."""
        self.failures[str(e)] = None

    def _give_up(self, e: RuleSetFailed) -> None:
        """A rule set whose code failed while events were applied is unusable for this process."""
        self.unusable.setdefault(e.ruleset, str(e))

    def missing(self) -> dict[str, int]:
        """Rule sets with events in the log that cannot be used here, and how many events each has."""
        return {r: n for r, n in self.conn.execute("SELECT ruleset, events FROM rm_rulesets WHERE events > 0")
                if not self.usable(r)}

    def state(self) -> tuple[Adoptions, Org]:
        """The adoptions and the org chart as of the tracked position, kept in memory and
        updated as events are applied (forgotten after a rollback or a rebuild)."""
        tracked = self.tracked()
        if self._state is None or tracked != self._state_at:  # another process may have moved the views
            adoptions = Adoptions.load(self.conn, self.rulesets)
            for ruleset, why in adoptions.failed.items():
                self.unusable.setdefault(ruleset, f"rule set {ruleset}: {why}")
            self._state = (adoptions, Org.load(self.conn))
            self._state_at = tracked
        return self._state

    def forget_state(self) -> None:
        self._state = None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """A write transaction; inside an outer one (rebuild, ingest) it joins that one. While
        :meth:`catch_up_now` runs, a write lock held by another process raises :class:`Busy`
        instead of waiting for it."""
        if self.conn.in_transaction:
            yield
            return
        if self._nowait and self.conn is self.store.conn:
            if not self.store.try_begin_write():
                raise Busy()
        else:
            self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            self.forget_state()
            raise
        self.conn.execute("COMMIT")

    # -- catching up -------------------------------------------------------------

    def behind(self, upto: int | None = None) -> bool:
        """Is there anything to apply or score? Reads only: takes no lock."""
        end = self.store.max_position() if upto is None else min(upto, self.store.max_position())
        if end > self.tracked():
            return True
        if any(self.usable(r) for (r,) in self.conn.execute("SELECT DISTINCT ruleset FROM rm_dirty")):
            return True
        return bool(self._resumable())

    def catch_up(self, progress: Progress | None = None, settle: bool = True, upto: int | None = None) -> int:
        """Apply every event after the tracked position (up to ``upto``); returns how many were applied."""
        if not self.conn.in_transaction and not self.behind(upto):
            return 0
        if upto is None and settle and not self.conn.in_transaction:
            replayed = self._replay_backlog(progress)
            if replayed is not None:
                return replayed
        applied = 0
        resumed = False
        while True:
            with self.transaction():
                if not resumed:
                    self._resume()
                    resumed = True
                start = self.tracked()  # read under the lock: another process may have moved it
                end = self.store.max_position() if upto is None else min(upto, self.store.max_position())
                page = self.store.read(start, self.PAGE, end) if end > start else []
                if page:
                    adoptions, org = self.state()
                    self._apply(page, adoptions, org)
                    self._track(page[-1].position)
                    if self._announced:  # still at it: readers keep answering at once
                        self.will_catch_up()
            if not page:
                break
            self._state_at = page[-1].position
            applied += len(page)
            if progress:
                progress(events=len(page))
        if settle:
            self.settle(progress)
        return applied

    #: how long a writer's word that it catches up holds since it was last renewed (at its append and
    #: at each page it applies; while it works it holds the write lock anyway): a writer killed in
    #: between leaves it behind, and readers catch up themselves once it is this old
    CATCHING_UP_FOR = 60.0

    def will_catch_up(self) -> None:
        """Say, inside the append's transaction, that this process catches up right after it: a
        reader in another process then answers at once instead of doing that work itself."""
        self._announced = True
        if self._session is None:
            self._session = self.store.session()
        self.conn.execute("INSERT OR REPLACE INTO rm_meta (key, value) VALUES (?, ?)",
                          (f"catching_up:{self.token}", f"{time.time():.3f} {self._session}"))

    def caught_up_done(self) -> None:
        """The catch-up announced by :meth:`will_catch_up` is over (done or failed)."""
        self._announced = False
        with self.transaction():
            self.conn.execute("DELETE FROM rm_meta WHERE key = ?", (f"catching_up:{self.token}",))

    def _another_catches_up(self) -> bool:
        """Has a live process of another said it catches up (and renewed that lately)?"""
        now = time.time()
        for key, value in self.conn.execute("SELECT key, value FROM rm_meta WHERE key LIKE 'catching_up:%'").fetchall():
            at, _, session = value.partition(" ")
            if key != f"catching_up:{self.token}" and now - float(at) < self.CATCHING_UP_FOR \
                    and self.store.session_alive(session):
                return True
        return False

    def catch_up_now(self, progress: Progress | None = None) -> bool:
        """Catch up as far as the write lock is free: False when another process holds it (an
        ingest, a catch-up) or has said it catches up right after its append, at once; what was
        published answers meanwhile (:meth:`unscored`)."""
        if self.conn is self.store.conn and self._another_catches_up() and self.behind():
            return False
        self._nowait = True
        try:
            self.catch_up(progress)
            return True
        except Busy:
            return False
        finally:
            self._nowait = False

    def unscored(self) -> tuple[int, int]:
        """What the published read models do not reflect yet: events of the log after the tracked
        position, and subject-months applied but not yet rescored. Reads only."""
        return max(self.store.max_position() - self.tracked(), 0), len(self.dirty_groups())

    #: a catch-up with at least this many events to apply, and no fewer than are applied already
    #: (a large first ingest), replays the whole log instead: the same tables, sooner
    REPLAY_BACKLOG = 20_000

    def _replay_backlog(self, progress: Progress | None) -> int | None:
        """Replay the whole log when most of it is new, under the write lock and decided inside it;
        None when the incremental path is the one to take. Never when published scores of a rule
        set that cannot be used here would be dropped."""
        tracked, end = self.tracked(), self.store.max_position()
        if end - tracked < max(self.REPLAY_BACKLOG, tracked) or self.missing():
            return None
        failures = len(self.failures)
        try:
            with self.transaction():
                tracked, end = self.tracked(), self.store.max_position()  # another process may have caught up
                if end - tracked < max(self.REPLAY_BACKLOG, tracked) or self.missing():
                    return None
                self._reset(indexes=False)
                self.replay(progress)
                if len(self.failures) > failures:  # a rule set failed: keep what was published, go page by page
                    raise _Fallback
        except _Fallback:
            return None
        return end - tracked

    def _reset(self, indexes: bool = True) -> None:
        if self.store.backend.empties_on_rebuild and schema_version(self.db) == SCHEMA_VERSION:
            clear_all(self.db)  # DROP would make every reader wait for the rebuild's commit
        else:
            drop_all(self.db)
            ensure_schema(self.db, indexes=indexes)
        self.store.forget_tracking(conn=self.conn)
        self.forget_state()

    def rebuild(self, progress: Progress | None = None) -> int:
        """Drop every read model and rebuild it from position 0, in one transaction: a reader
        in another process sees the old read models until the new ones are complete.

        :raises StoreError: when the log holds events of rule sets that cannot be used here
            (a rebuild would drop their published scores); nothing changes then.
        """
        self.catch_up()
        refuse_without(self.missing())
        if (tail := self.store.deleted_tail()) is not None:  # the one break a replay would not meet
            raise LogDamaged(tail.position, tail.problem)
        self.strict = True
        failures = len(self.failures)
        try:
            with self.transaction():
                self._reset(indexes=False)
                applied = self.replay(progress)
                if len(self.failures) > failures:
                    raise StoreError("rebuild refused: " + "; ".join(list(self.failures)[failures:failures + 3])
                                     + "; nothing was changed (the published scores stay)")
                return applied
        finally:
            self.strict = False

    # -- applying events -----------------------------------------------------------

    def _credits(self, state: ResponseState, adoptions: Adoptions, org: Org) -> list[Credit]:
        rs = self.rulesets[state.ruleset]
        if type(rs).credits is RuleSet.credits:  # the default: its subject (no plugin code to guard)
            return [Credit(state.subject)]
        adoption = adoptions.in_force(state.ruleset, state.period)
        where = f"crediting response {state.id}"
        return checked_credits(rs, where, guarded(rs, where, rs.credits, state,
                                                  adoption.params if adoption else None, org.chain))

    def _unusable_event(self, ruleset: str, logged: Logged) -> None:
        if self.strict:
            why = self.unusable.get(ruleset) or "it is not installed"
            raise StoreError(f"rebuild stopped at position {logged.position}: the event belongs to rule set "
                             f"{ruleset!r} and {why}; nothing was changed")

    def _apply(self, page: list[Logged], adoptions: Adoptions, org: Org) -> None:
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
            self._remedies(states.values(), adoptions)
            states.clear()
            credits.clear()
            dirty.clear()

        def credit(state: ResponseState, logged: Logged, write: bool) -> None:
            """Credit (and mark dirty) a usable rule set's response; park an unusable one's."""
            if self.usable(state.ruleset):
                try:
                    for c in self._credits(state, adoptions, org):
                        if write:
                            credits.append((state.ruleset, c.subject, state.period, state.id, c.role, c.via))
                        dirty.add((state.ruleset, c.subject, state.period))
                    return
                except RuleSetFailed as e:
                    self._give_up(e)
            self._unusable_event(state.ruleset, logged)
            pending.add(state.ruleset)

        for logged in page:
            ev = logged.event
            if isinstance(ev, ResponseRecorded):
                if self.only is not None and ev.ruleset not in self.only:
                    continue
                state = ResponseState.of(ev, logged.position)
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
                if self.only is not None and ev.ruleset not in self.only:
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
                    if self.only is not None and ruleset not in self.only:
                        continue
                    counts[ruleset] += 1
                    if not self.usable(ruleset):
                        pending.add(ruleset)
                else:  # a case for every rule set: those that cannot see it now rescore it when back
                    pending |= self._parked()
                self._record_case_event(logged, org)
        flush()
        count_events(self.conn, counts, pending)
        if explanations_stale:
            explained.forget_all(self.conn)

    def _adopt(self, ev: ParametersAdopted, logged: Logged, adoptions: Adoptions, org: Org,
               pending: set[str]) -> None:
        rs = self.rulesets.get(ev.ruleset)
        before = [a for a in adoptions.of(ev.ruleset) if a.from_ >= ev.from_]
        if (at_from := adoptions.in_force(ev.ruleset, ev.from_)) is not None:
            before.append(at_from)
        adoption = adoptions.add(ev.ruleset, ev.id, ev.from_, logged.position, ev.params, ev.params_version)
        if ev.ruleset in adoptions.failed:
            self.unusable.setdefault(ev.ruleset, f"rule set {ev.ruleset}: {adoptions.failed[ev.ruleset]}")
        self.conn.execute("INSERT OR REPLACE INTO rm_adoptions VALUES (?, ?, ?, ?, ?, ?, ?)",
                          (ev.ruleset, ev.id, ev.from_, logged.position,
                           msgspec.json.encode(ev.params).decode(), adoption.hash, ev.params_version or 1))
        if rs is None or not self.usable(ev.ruleset):
            self._unusable_event(ev.ruleset, logged)
            pending.add(ev.ruleset)
            return
        self.conn.execute("INSERT OR IGNORE INTO rm_dirty SELECT DISTINCT ruleset, subject, period "
                          "FROM rm_credits WHERE ruleset = ? AND period >= ?", (ev.ruleset, ev.from_))
        if rs.uses_org:
            try:
                credit_params = [guarded(rs, f"adoption {ev.id}", rs.credit_params, a.params)
                                 for a in (adoption, *before)]
            except RuleSetFailed as e:
                self._give_up(e)
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
                if not self.usable(r)}

    def _declare(self, ev: UnitDeclared, logged: Logged, adoptions: Adoptions, org: Org) -> None:
        from_ = ev.from_ or ""
        self.conn.execute("INSERT OR REPLACE INTO rm_units VALUES (?, ?, ?, ?, ?, ?)",
                          (ev.id, from_, logged.position, ev.name, ev.kind, ev.parent))
        case_rulesets = [r for r, rs in self.rulesets.items() if rs.uses_cases and self.usable(r)]
        cases = case_months(self.conn, from_) if case_rulesets else []
        above = {(s, m): [s, *org.chain(s, m)] for s, m in cases}  # before the move
        org.add(ev.id, from_, ev.name, ev.kind, ev.parent, logged.position)
        marks = set()
        for (s, m), before in above.items():  # a case below a unit that moved: its old and new ancestors
            after = [s, *org.chain(s, m)]
            if ev.id in before or ev.id in after:
                marks |= {(r, u, m) for r in case_rulesets for u in (*before, *after)}
        self.conn.executemany("INSERT OR IGNORE INTO rm_dirty VALUES (?, ?, ?)", marks)
        org_rulesets = [r for r, rs in self.rulesets.items() if rs.uses_org and self.usable(r)]
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
                if not self.usable(state.ruleset):
                    pending.add(state.ruleset)
                    continue
                try:
                    for c in self._credits(state, adoptions, org):
                        rows.append((state.ruleset, c.subject, state.period, state.id, c.role, c.via))
                        dirty.add((state.ruleset, c.subject, state.period))
                except RuleSetFailed as e:
                    self._give_up(e)
                    pending.add(state.ruleset)
            self.conn.executemany("INSERT OR IGNORE INTO rm_credits VALUES (?, ?, ?, ?, ?, ?)", rows)
            self.conn.executemany("INSERT OR IGNORE INTO rm_dirty VALUES (?, ?, ?)", dirty)
        if pending:
            self.conn.executemany("UPDATE rm_rulesets SET pending = 1 WHERE ruleset = ?", [(r,) for r in pending])

    def _remedies(self, states: Iterable[ResponseState], adoptions: Adoptions) -> None:
        """Open or drop the remedy cases of changed responses (derived, never logged)."""
        upsert, drop = [], []
        for st in states:
            if not self.usable(st.ruleset):
                continue  # derived again when the rule set is back (see _resume)
            rs = self.rulesets[st.ruleset]
            adoption = adoptions.in_force(st.ruleset, st.period)
            why = None
            if adoption is not None and exclusion(st) is None:
                where = f"remedy of response {st.id}"
                try:
                    why = checked_remedy(rs, where, guarded(rs, where, rs.remedy, st, adoption.params))
                except RuleSetFailed as e:
                    self._give_up(e)
                    self.conn.execute("UPDATE rm_rulesets SET pending = 1 WHERE ruleset = ?", (st.ruleset,))
                    continue
            if why:
                upsert.append((f"remedy:{st.id}", "remedy", st.subject, st.period, st.ruleset, None, "callback",
                               None, st.id, why, None, st.position))
            elif st.corrections or st.withdrawn is not None:  # only an amended response can lose its case
                drop.append((f"remedy:{st.id}",))
        if upsert:
            self.conn.executemany("INSERT OR REPLACE INTO rm_cases VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", upsert)
        if drop:
            self.conn.executemany("DELETE FROM rm_cases WHERE id = ?", drop)

    def _record_case_event(self, logged: Logged, org: Org) -> None:
        case_rulesets = [r for r, rs in self.rulesets.items() if rs.uses_cases and self.usable(r)]
        if case_rulesets:
            mark_case_groups(self.conn, logged.event, case_rulesets, org)
        record_case_event(self.conn, logged)

    # -- a rule set that is back ------------------------------------------------------

    def _resumable(self) -> list[str]:
        return [r for (r,) in self.conn.execute("SELECT ruleset FROM rm_rulesets WHERE pending = 1")
                if r in self.rulesets and r not in self.unusable]

    def _resume(self) -> None:
        """Re-credit and rescore the rule sets whose events were parked while they could not be used
        (inside the caller's write transaction). The result equals applying the events in order:
        crediting reads the effective-dated org chart and adoptions, which are complete in memory."""
        for ruleset in self._resumable():
            self.forget_state()
            adoptions, org = self.state()  # decodes the rule set's adoptions with the installed code
            if not self.usable(ruleset):
                continue
            self.conn.execute("SAVEPOINT csat_resume")
            pending: set[str] = set()
            ids = [r for (r,) in self.conn.execute("SELECT id FROM rm_responses WHERE ruleset = ?", (ruleset,))]
            self._recredit(ids, adoptions, org, pending)
            for i in range(0, len(ids), 500):
                self._remedies(load_states(self.conn, ids[i:i + 500]).values(), adoptions)
            if self.rulesets[ruleset].uses_cases:  # each case's unit and the units above it
                self.conn.executemany("INSERT OR IGNORE INTO rm_dirty VALUES (?, ?, ?)", {
                    (ruleset, u, m) for s, m in case_months(self.conn, "") for u in (s, *org.chain(s, m))})
            if ruleset in pending or not self.usable(ruleset):  # its code failed again: keep it parked
                self.conn.execute("ROLLBACK TO csat_resume")
                self.conn.execute("RELEASE csat_resume")
                continue
            self.conn.execute("UPDATE rm_rulesets SET pending = 0 WHERE ruleset = ?", (ruleset,))
            explained.forget_all(self.conn)
            self.conn.execute("RELEASE csat_resume")


class Busy(Exception):
    """Another process holds the write lock (raised only while :meth:`Projection.catch_up_now` runs)."""


class _Fallback(Exception):
    """A replayed catch-up met a failing rule set: roll it back and take the incremental path."""


def refuse_without(missing: dict[str, int]) -> None:
    """A rebuild without some rule set would drop its published scores: refuse, naming them."""
    if missing:
        listed = ", ".join(f"{r} ({n} events)" for r, n in sorted(missing.items()))
        raise StoreError(f"rebuild refused: the log holds events of rule sets that are not installed or not "
                         f"usable here: {listed}; install them (csat rulesets) and run it again")
