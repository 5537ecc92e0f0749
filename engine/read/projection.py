"""The scores projection: catches up with the log and keeps ``scores`` current.

eventsourcing's SQLite recorder has no subscriptions, so the projection pulls:
it reads the log in pages from its tracked position. Each page is applied to
the working tables (``rm_*``) and marks the subject-months it touches as dirty,
with the tracking position (eventsourcing's ``tracking`` table).
:meth:`Scoring.settle` then rescores only the dirty subject-months, the
subject's later months when the rule set is sequential, and the quarters and
years above them — never everything. A rebuild is a catch-up from 0. A
catch-up commits all its pages and their scoring in one transaction, up to
the end of the log as it stands once the write lock is held: whole
transactions of the log (an ingest's file is one), so a reader in another
process sees a catch-up's work all or none.

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
from collections.abc import Iterable, Iterator

from .apply import Applier
from ..collector import collector_paused
from ..errors import LogDamaged, RuleSetFailed, StoreError
from ..log.events import ParametersAdopted
from .readmodel import (Adoptions, Org, chart_mark, clear_all, drop_all, ensure_schema, schema_version,
                        SCHEMA_VERSION)
from ..scoring.guard import ParamsFailed
from ..scoring.ruleset import RuleSet
from .replay import Replay
from .settle import EXTRAS_DEC, SCORE_COLUMNS, Progress, Scorer, exclusion
from ..log.store import Store

__all__ = ["Projection", "Progress", "EXTRAS_DEC", "SCORE_COLUMNS", "exclusion"]


class Projection:
    """Keeps the read models of one store in step with its log.

    :param views: the connection holding the read models; default the store's
        own (the shared, published ones). A private snapshot passes a
        connection to a temporary file (see :meth:`snapshot`).
    :param only: in a private snapshot, the rule sets whose events are applied
        (others are skipped entirely).
    """

    PAGE = 5000
    #: events a replay reads from the log at a time
    REPLAY_PAGE = 20_000

    def __init__(self, store: Store, rulesets: dict[str, RuleSet], views: sqlite3.Connection | None = None,
                 only: Iterable[str] | None = None):
        self.store = store
        self.conn: sqlite3.Connection = views if views is not None else store.conn
        self.db = store.backend.database(self.conn)
        self.rulesets = rulesets
        self.only = set(only) if only is not None else None
        self._state: tuple[Adoptions, Org] | None = None
        self._state_at = -1  # the tracked position the cached state reflects
        self._chart: str | None = None  # the stored chart's mark it was loaded at (readmodel.chart_mark)
        #: rule set -> why it cannot be used in this process (its plugin raised or its parameters fail)
        self.unusable: dict[str, str] = {}
        #: the scoring failures met by this process, one group per line (:attr:`failures`), and how many
        self._failed: dict[tuple[str, ...], tuple[RuleSetFailed, dict[str, None]]] = {}
        self.failed_count = 0
        self.strict = False  # a rebuild: an event of a rule set that cannot be used stops it
        #: scores subject-months and what stands above them (its collaborator on both paths)
        self.scorer = Scorer(self.conn, rulesets, self.usable, self.failed)
        #: applies events to the working tables (the incremental path); the replay credits with it too
        self.applier = Applier(self)
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

    def _recorded_at(self, positions: list[int]) -> dict[int, str]:
        return {p: lg.at for p, lg in self.store.at_positions(positions).items()}

    def _ensure_schema(self) -> None:
        if schema_version(self.db) == SCHEMA_VERSION:
            return
        with self.transaction():  # several processes may open a new store at once: one creates it
            if ensure_schema(self.db, self.rulesets, recorded_at=self._recorded_at):
                self.store.forget_tracking(conn=self.conn)

    # -- which rule sets can be used ---------------------------------------------------

    def usable(self, ruleset: str) -> bool:
        return ruleset in self.rulesets and ruleset not in self.unusable

    def failed(self, e: RuleSetFailed) -> None:
        """Note a scoring failure: its subject-month stays dirty and keeps its published rows."""
        self.failed_count += 1
        key = (e.ruleset, "adoption", e.adoption) if isinstance(e, ParamsFailed) else (str(e),)
        self._failed.setdefault(key, (e, {}))[1][e.where] = None

    @property
    def failures(self) -> dict[str, None]:
        """One line per scoring failure met by this process (rule set, subject-month, what was
        wrong) — one for all the subject-months an adoption's parameters could not score."""
        return {str(e) + (f" (and {len(where) - 1} more)" if len(where) > 1 else ""): None
                for e, where in self._failed.values()}

    def give_up(self, e: RuleSetFailed) -> None:
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
        if self._state is not None and tracked != self._state_at:  # another process moved the views:
            mark = chart_mark(self.conn)  # the copy in memory stands unless a unit or an adoption came
            if mark is not None and mark == self._chart:
                self._state_at = tracked
        if self._state is None or tracked != self._state_at:
            self._chart = chart_mark(self.conn)
            adoptions = Adoptions.load(self.conn, self.rulesets)
            for ruleset, why in adoptions.failed.items():
                self.unusable.setdefault(ruleset, f"rule set {ruleset}: {why}")
            self._state = (adoptions, Org.load(self.conn))
            self._state_at = tracked
        return self._state

    def forget_state(self) -> None:
        self._state = None

    def keep_state(self, adoptions: Adoptions, org: Org) -> None:
        """The adoptions and org chart as of the tracked position, as a replay left them."""
        self._state, self._state_at, self._chart = (adoptions, org), self.tracked(), chart_mark(self.conn)

    # -- the collaborators' paths ---------------------------------------------------

    def replay(self, progress: Progress | None = None, upto: int | None = None,
               then: Iterable[ParametersAdopted] = (), jobs: int = 1) -> int:
        """Fill the empty read models from the log up to ``upto`` (:class:`~csat.engine.read.replay.Replay`),
        inside the caller's write transaction; returns how many events were read. ``jobs`` > 1:
        rule-set months are scored by that many forked processes (the same rows, in the same order)."""
        return Replay(self).run(progress, upto, then, jobs)

    def rescore_from(self, ruleset: str, month: str, jobs: int = 1) -> None:
        """Score one rule set's months from ``month`` on again (what a what-if does on its copy)."""
        Replay(self).rescore_from(ruleset, month, jobs)

    def settle(self, progress: Progress | None = None) -> int:
        """Rescore every dirty subject-month and what stands above it; returns groups rescored.

        Runs under the write lock and reads the dirty marks inside it, so two processes never
        score the same marks twice."""
        with self.transaction():
            dirty = self.scorer.dirty_groups()
            if not dirty:
                return 0
            adoptions, org = self.state()
            self.scorer.settle(dirty, adoptions, org, progress)
        return len(dirty)

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
        return bool(self.applier.resumable())

    @collector_paused()
    def catch_up(self, progress: Progress | None = None, settle: bool = True, upto: int | None = None,
                 jobs: int = 1) -> int:
        """Apply every event after the tracked position (up to ``upto``); returns how many were applied.
        ``jobs`` > 1: when most of the log is new and it is replayed whole, its rule-set months are
        scored by that many forked processes (as a rebuild's)."""
        if not self.conn.in_transaction and not self.behind(upto):
            return 0
        if upto is None and settle and not self.conn.in_transaction:
            replayed = self._replay_backlog(progress, jobs)
            if replayed is not None:
                return replayed
        applied = 0
        damaged: LogDamaged | None = None
        # One transaction for all of it (the log read a page at a time): whole transactions of the log
        # are applied and scored, and a reader in another process sees a catch-up's work all or none.
        with self.transaction():
            self.applier.resume()
            start = self.tracked()  # read under the lock: another process may have moved it
            end = self.store.max_position() if upto is None else min(upto, self.store.max_position())
            while start < end:
                try:
                    page = self.store.read(start, self.PAGE, end)
                except LogDamaged as e:  # what chains before the break is kept; the break is raised after
                    if not applied:
                        raise
                    damaged = e
                    break
                if not page:
                    break
                adoptions, org = self.state()
                self.applier.apply(page, adoptions, org)
                self._track(page[-1].position)
                self._state_at = start = page[-1].position
                applied += len(page)
                if progress:
                    progress(events=len(page))
            if settle and damaged is None:
                self.settle(progress)
        if damaged is not None:
            raise damaged
        return applied

    #: how long a writer's word that it catches up holds since its append (while it catches up it
    #: holds the write lock anyway): a writer killed in between leaves it behind, and readers catch
    #: up themselves once it is this old
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
        return max(self.store.max_position() - self.tracked(), 0), len(self.scorer.dirty_groups())

    #: a catch-up with at least this many events to apply, and no fewer than are applied already
    #: (a large first ingest), replays the whole log instead: the same tables, sooner
    REPLAY_BACKLOG = 20_000

    def _replay_backlog(self, progress: Progress | None, jobs: int = 1) -> int | None:
        """Replay the whole log when most of it is new, under the write lock and decided inside it;
        None when the incremental path is the one to take. Never when published scores of a rule
        set that cannot be used here would be dropped."""
        tracked, end = self.tracked(), self.store.max_position()
        if end - tracked < max(self.REPLAY_BACKLOG, tracked) or self.missing():
            return None
        failures = self.failed_count
        try:
            with self.transaction():
                tracked, end = self.tracked(), self.store.max_position()  # another process may have caught up
                if end - tracked < max(self.REPLAY_BACKLOG, tracked) or self.missing():
                    return None
                self._reset(indexes=False)
                self.replay(progress, jobs=jobs)
                if self.failed_count > failures:  # a rule set failed: keep what was published, go page by page
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

    def rebuild(self, progress: Progress | None = None, jobs: int = 1) -> int:
        """Drop every read model and rebuild it from position 0, in one transaction: a reader
        in another process sees the old read models until the new ones are complete. ``jobs``:
        the processes scoring rule-set months (:meth:`replay`). A subject whose rule set could not
        score it before the rebuild (its code, or the parameters in force, failed there: parked,
        its published rows kept) keeps its published rows and stays to be scored; everything else
        is rebuilt, and the failure is warned of again.

        :raises StoreError: when the log holds events of rule sets that cannot be used here, or
            when a rule set fails where it did not before (a rebuild would drop published scores);
            nothing changes then.
        """
        self.catch_up()
        refuse_without(self.missing())
        if (tail := self.store.deleted_tail()) is not None:  # the one break a replay would not meet
            raise LogDamaged(tail.position, tail.problem)
        self.strict = True
        count, groups = self.failed_count, {k: len(g[1]) for k, g in self._failed.items()}
        try:
            with self.transaction():
                kept = self._parked_rows()
                self._reset(indexes=False)
                applied = self.replay(progress, jobs=jobs)
                if self.failed_count > count:
                    failing = {(r, s) for r, s, _ in self.scorer.dirty_groups()}
                    if self.missing() or not failing <= set(kept):
                        lines = [line for key, line in zip(self._failed, self.failures)
                                 if len(self._failed[key][1]) != groups.get(key)] or list(self.failures)
                        raise StoreError("rebuild refused: " + "; ".join(lines[:3])
                                         + "; nothing was changed (the published scores stay)")
                    self._restore(kept, failing)
                return applied
        finally:
            self.strict = False

    def _parked_rows(self) -> dict[tuple[str, str], list[tuple[object, ...]]]:
        """The published rows of the subjects whose rule set could not score them (left dirty)."""
        pairs = sorted({(r, s) for r, s, _ in self.scorer.dirty_groups()})
        return {(r, s): self.conn.execute(f"SELECT {', '.join(SCORE_COLUMNS)} FROM scores WHERE ruleset = ? "
                                          "AND subject = ?", (r, s)).fetchall() for r, s in pairs}

    def _restore(self, kept: dict[tuple[str, str], list[tuple[object, ...]]], failing: set[tuple[str, str]]) -> None:
        """Put back the published rows of the subjects that still fail (a parked rule set's)."""
        for ruleset, subject in sorted(failing):
            self.conn.execute("DELETE FROM scores WHERE ruleset = ? AND subject = ?", (ruleset, subject))
            self.conn.executemany(f"INSERT INTO scores ({', '.join(SCORE_COLUMNS)}) VALUES "
                                  f"({', '.join('?' * len(SCORE_COLUMNS))})", [tuple(r) for r in kept[(ruleset, subject)]])


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
