"""The embedding API: everything the command line does, as Python calls.

>>> from csat.engine import Engine
>>> with Engine.open("scores.db") as engine:             # doctest: +SKIP
...     engine.ingest(["march.jsonl"])
...     rows = engine.scores(ruleset="airline-1000", period="2026-Q1")
...     why = engine.explain("airline-1000", "finance", "2026-03")

Figures come back as :class:`decimal.Decimal`, already rounded as published.
Reading calls (:meth:`Engine.scores`, :meth:`Engine.explain`) bring the read
models up to date with the log first, so nobody sees a stale score.
"""
from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import msgspec

from .. import periods
from ..read import explained, scoreviews
from . import announce, redact, tables
from ..log import transfer
from ..errors import CsatError, IngestFailed, InvalidParams, LogDamaged, NotFound, UnknownRuleSet
from ..log.events import Event, ParametersAdopted
from ..read.explain import explain
from .ingest import Ingest, IngestReport, dict_lines, file_lines
from .accounts import Accounts
from .erasure import PersonalData  # (Engine's parts: personal data, raters' links, listings)
from .links import RaterLinks
from .listings import Listings, one_snapshot
from .readers import column_map
from .threads import Gate, gated
from ..scoring.params import read_toml
from ..read.projection import EXTRAS_DEC, Progress, Projection
from ..read.settle import progress_of
from ..read.readmodel import Org
from ..read.snapshots import copy_of, snapshot
from ..scoring.ruleset import RuleSet
from ..log.store import DEFAULT_DB, Logged, Store, discard_new

if TYPE_CHECKING:
    from .changes import Changes

DB_ENV = "CSAT_DB"


def default_target() -> str:
    """``$CSAT_DB`` or ``./csat.db``."""
    return os.environ.get(DB_ENV) or DEFAULT_DB


@gated
class Engine(Listings, PersonalData, RaterLinks):
    """An opened csat store with its rule sets.

    An engine may be shared between threads: its calls take turns on its one connection
    (:mod:`csat.engine.app.threads`), and a call that fails leaves no transaction open. For reads
    in parallel, give each thread an engine of its own (:class:`~csat.engine.EnginePool`).

    :param store: the opened :class:`~csat.engine.log.store.Store`.
    :param rulesets: the rule sets to score with (ids must be unique).
    :param sources: optional ``{ruleset id: where it comes from}`` for listings.
    """

    def __init__(self, store: Store, rulesets: Iterable[RuleSet], sources: dict[str, str] | None = None,
                 hooks: dict[str, tuple[str, ...]] | None = None, broken: Iterable[str] = ()):
        self._gate = Gate(self._recover)  #: one call at a time on the one connection
        self.store = store
        #: one line per plugin that could not be loaded (named, with the reason)
        self.broken = list(broken)
        #: set when a read met a row of the log that does not chain (reads go on; see warnings())
        self.damaged: LogDamaged | None = None
        #: what the last read did not reflect because another process held the write lock: events
        #: logged but not yet applied, and subject-months applied but not yet rescored ((0, 0): none)
        self.unscored: tuple[int, int] = (0, 0)
        self.rulesets: dict[str, RuleSet] = {}
        for rs in rulesets:
            if rs.id in self.rulesets:
                raise CsatError(f"rule set {rs.id!r} given twice")
            self.rulesets[rs.id] = rs
        self.sources = sources or {}
        self.hooks = hooks or {}
        self.projection = Projection(store, self.rulesets)
        self.accounts = Accounts(store.conn, self._gate)  #: the web front's accounts and raters' links

    def _recover(self) -> None:
        """After a call that raised: no transaction left open on the store's connection (the next
        call, from any thread, starts clean), and no state cached from what was rolled back."""
        try:
            if self.store.conn.in_transaction:
                self.store.rollback()
        except Exception:  # noqa: BLE001 - a lost connection has no transaction left to end
            pass
        self.projection.forget_state()

    @classmethod
    def open(cls, target: str | os.PathLike[str] | None = None, rulesets: Iterable[RuleSet] | None = None, *,
             create: bool = True) -> "Engine":
        """Open a store (creating it unless ``create`` is false: then a path that is not a csat
        store raises StoreError). Without ``rulesets``, the installed ones (built-ins and the
        ``csat`` entry-point group; plugins that fail to load are skipped and listed in
        :attr:`broken`) are used."""
        if rulesets is not None:
            store = Store(target if target is not None else default_target(), create=create)
            try:
                return cls(store, rulesets)
            except BaseException:
                store.close()
                raise
        from csat.plugins import load_rulesets, make_plugin_manager  # the engine itself needs no pluggy
        infos, broken = load_rulesets(make_plugin_manager())
        store = Store(target if target is not None else default_target(), create=create)
        try:
            return cls(store, [i.ruleset for i in infos], {i.ruleset.id: i.source for i in infos},
                       {i.ruleset.id: i.hooks for i in infos}, [b.line() for b in broken])
        except BaseException:
            store.close()
            raise

    def close(self) -> None:
        """Close the store (``with Engine.open(…) as engine:`` does it on leaving the block); a
        later call is refused with a CsatError, closing again does nothing."""
        if not self._gate.closed:
            self._gate.closed = True
            self.store.close()

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing -------------------------------------------------------------------

    def ingest(self, paths: Iterable[str | os.PathLike[str]], *, dry_run: bool = False,
               progress: Callable[[int], None] | None = None, sheet: str | None = None,
               columns: dict[str, str] | str | os.PathLike[str] | None = None,
               catching_up: bool = False) -> IngestReport:
        """Append the events of JSON Lines files and survey sheets (CSV, .xlsx: the first sheet or
        ``sheet``), all or nothing. ``columns`` maps sheet headers to column names (a dict, or a
        TOML file with a ``[columns]`` table); ``progress(n)`` is told the lines read so far.
        ``catching_up``: the caller calls :meth:`catch_up`
        right after (as ``csat ingest`` does); readers in other processes answer at once meanwhile
        instead of doing that work (call :meth:`caught_up_done` if the catch-up is not made).

        :raises IngestFailed: with one ``FILE:LINE: message`` per problem; nothing appended.
        """
        if columns is not None and not isinstance(columns, dict):
            try:
                columns = column_map(read_toml(columns), os.fspath(columns))
            except InvalidParams as e:
                raise CsatError(e.problems[0]) from None
            except ValueError as e:
                raise CsatError(str(e)) from None
        lines, problems = file_lines(paths, sheet, columns)
        if problems:
            raise IngestFailed(problems)
        if progress is not None:  # ``progress(n)``: lines read so far, as the signature says (the CLI's takes lines=)
            try:
                inspect.signature(progress).bind(lines=0)
            except (TypeError, ValueError):
                count, given = [0], progress

                def progress(lines: int = 0) -> None:
                    count[0] += lines
                    given(count[0])
        return Ingest(self.store, self.rulesets, self.projection).run(lines, dry_run=dry_run, progress=progress,
                                                                      catching_up=catching_up)

    def append(self, events: Iterable[Event | dict[str, Any]], *, dry_run: bool = False,
               source: str | None = None, actor: str | list[str | None] | None = None) -> IngestReport:
        """Append events given as objects or dicts (ingest format), validated as ingest does; a
        problem names the event by its index (``events[2]: …``), or by ``source`` (a file the
        events came from) and their number. ``actor``: the account making the change (the web
        front's), recorded with each event (``csat log``: ``by``) — or a list, one per event."""
        lines = dict_lines(events, name=source) if source else dict_lines(events)
        return Ingest(self.store, self.rulesets, self.projection).run(lines, dry_run=dry_run, actor=actor)

    def append_frame(self, frame: Any, *, na: Any = "N/A", columns: dict[str, str] | str | os.PathLike[str] | None = None,
                     source: str = "frame", dry_run: bool = False,
                     actor: str | list[str | None] | None = None) -> IngestReport:
        """Append a pandas DataFrame of survey responses, one row each, exactly as ``csat ingest``
        reads a CSV sheet with the same columns (README: the column mapping; ``columns`` as
        ``--columns`` takes it): all or nothing, idempotent. A missing cell (NaN, None) is no
        answer, a cell equal to ``na`` is not applicable, numbers stay numbers (numpy's too).
        ``actor``: as for :meth:`append` (a list: one per row).

        :raises IngestFailed: one ``frame:row LABEL: message`` per problem (LABEL: the row's index
            label; ``source`` names it other than ``frame``); nothing appended.
        """
        return tables.append_frame(self, frame, na=na, columns=columns, source=source, dry_run=dry_run, actor=actor)

    # -- reading -------------------------------------------------------------------

    def catch_up(self, progress: Progress | None = None, jobs: int = 1) -> int:
        """Bring the read models up to date with the log; returns events applied.

        ``progress(events=n, scored=m)`` is called as events are applied and subject-months
        scored (a callable taking one positional count gets the events only). ``jobs`` > 1: a log
        mostly new (a first large ingest) is replayed with its rule-set months scored by that many
        forked processes, as :meth:`rebuild` does (never from a threaded server: fork is unsafe there).
        """
        return self.projection.catch_up(progress_of(progress), jobs=jobs)

    def caught_up_done(self) -> None:
        """Withdraw the word given by ``ingest(catching_up=True)`` (the catch-up is over, made or not)."""
        self.projection.caught_up_done()

    def rebuild(self, progress: Progress | None = None, jobs: int = 1) -> int:
        """Drop the read models and rebuild them from the whole log, in one transaction; returns
        events applied. Refuses (StoreError) while the log holds events of rule sets that are
        not installed, rather than drop their published scores. ``jobs`` > 1: rule-set months
        are scored by that many forked processes — the same rows as one; call it from a process
        with no other threads running (forking one is unsafe)."""
        return self.projection.rebuild(progress_of(progress), jobs)

    def copy_to(self, target: str | os.PathLike[str], progress: Callable[[int], None] | None = None,
                rebuild_progress: Progress | None = None) -> dict[str, Any]:
        """Copy this store's whole log into a new, empty store ``target`` (SQLite or PostgreSQL),
        keeping positions, recording times and chain hashes, then rebuild the read models there
        with the same rule sets (see :mod:`csat.engine.log.transfer`); ``progress(n)`` counts events
        copied, ``rebuild_progress`` is :meth:`rebuild`'s. Returns ``events``,
        ``head_position``, ``head_hash`` (equal on both stores) and ``rebuilt`` (events replayed).

        :raises StoreError: target not empty, source not verifying, or the copy not ending on the
            source's head — nothing written; or the rebuild refused (the log is copied).
        """
        path = os.fspath(target)
        existed = os.path.exists(path)
        other = Engine(Store(path), self.rulesets.values(), self.sources, self.hooks)
        try:
            copied = transfer.copy_log(self.store, other.store, progress)
        except BaseException:
            other.close()
            if not existed:  # nothing was copied: leave no empty store behind
                discard_new(path)
            raise
        with other:
            if self.store.keys.exists():  # the keys go with the log (an erased person's are gone)
                other.store.keys.take(self.store.keys.secret(), self.store.keys.rows())
            rebuilt = other.rebuild(rebuild_progress)
        return {"events": copied.events, "head_position": copied.head_position, "head_hash": copied.head_hash,
                "rebuilt": rebuilt}

    def scores(self, ruleset: str | None = None, period: str | None = None, subject: str | None = None,
               metric: str | None = None, as_of: int | str | None = None, *, under: str | None = None,
               vs: str | None = None, announced: bool = False, output: tables.Output = "rows") -> Any:
        """Score rows (``events.md`` §4) with ``subject_name`` (the org chart's name as of the
        period) and ``kind`` (``month``, ``quarter``, ``year``), ordered by ruleset, period,
        subject, metric; ``output="pandas"`` or ``"arrow"`` gives them as a DataFrame or an Arrow
        table of a fixed schema (:mod:`csat.engine.app.tables`; ``pip install 'csat[frames]'``).

        ``period`` may be a month, a quarter or a year; without it every period
        with data (months and their roll-ups) is returned. ``as_of`` (a log
        position, or a recording time ``YYYY-MM-DD[THH:MM[:SS]]``) gives the
        scores as they stood when the log ended there. ``under`` keeps a unit
        and everything below it in the org chart; ``vs`` (with ``period``) adds
        ``before`` and ``delta`` against that earlier period.

        A read never waits for another process's ingest or catch-up: the rows come back as a
        list whose ``unscored`` attribute says what they do not reflect yet (see :attr:`unscored`).

        Where a month was announced (公示) and a figure moved since, its row carries the announced
        figure (``announced``), the change (``announced_delta``) and the day (``announced_on``) —
        keys every row has, None where nothing moved; ``announced`` (with ``period``) gives the
        figures exactly as announced instead.
        """
        tables.check_output(output)
        if ruleset is not None and ruleset not in self.projection.missing():
            self._ruleset(ruleset)
        for p in (period, vs):
            if p is not None:
                periods.kind(p)
        if vs is not None and period is None:
            raise CsatError("--vs compares with --period: give both")
        if as_of is not None:
            position = self.position_at(as_of)
            only = [ruleset] if ruleset in self.rulesets else None
            with snapshot(self.projection, position, only=only) as private:
                rows = self._open_names(scoreviews.complete(self._views(ruleset, period, subject, metric, under, vs,
                                                                        private.conn)))
            return tables.scores_out(self, rows, output, ruleset)
        self._catch_up_to_read()
        if announced:
            if period is None:
                raise CsatError("--announced gives the figures of one announced month: give --period")
            return tables.scores_out(self, scoreviews.Rows(self._open_names(announce.as_announced(self, ruleset, period))),
                                     output, ruleset)
        with one_snapshot(self.store.conn):  # one state of the read models (another process may commit)
            views = self._views(ruleset, period, subject, metric, under, vs, self.store.conn)
        rows = scoreviews.Rows(self._open_names(announce.beside(self, views)))
        rows.unscored = self.unscored
        return tables.scores_out(self, rows, output, ruleset)

    def _views(self, ruleset: str | None, period: str | None, subject: str | None, metric: str | None,
               unit: str | None, vs: str | None, conn: Any) -> list[dict[str, Any]]:
        org = Org.load(conn)
        rows = scoreviews.with_names(self._score_rows(ruleset, period, subject, metric, conn), org)
        rows = self._under(rows, unit, org, conn)
        if vs is not None:
            rows = scoreviews.versus(rows, self._score_rows(ruleset, vs, subject, metric, conn))
        return rows

    def _catch_up_to_read(self, wait: bool = False) -> None:
        """Catch up before a read, if the write lock is free at once: a reader never waits for
        another process's ingest or catch-up, it answers from the read models last committed and
        :attr:`unscored` (and :meth:`warnings`) say what they do not reflect yet. A damaged log
        does not stop the read either: what is already published answers, and :meth:`warnings`
        says the log needs ``csat verify``. ``wait``: catch up fully first (a writing command)."""
        self._said_behind = False
        try:
            if wait:
                self.catch_up()
                self.unscored = (0, 0)
            elif self.projection.catch_up_now():
                self.unscored = (0, 0)
            else:
                self.unscored = self.projection.unscored()
        except LogDamaged as e:
            self.damaged = e

    def caught_up(self) -> tuple[int, str]:
        """Catch up as every read does (a damaged log does not stop it) and return :meth:`head`:
        a reader that compares it with ``head()`` after several reads knows they saw one position."""
        self._catch_up_to_read()
        return self.head()

    def head(self) -> tuple[int, str]:
        """The log position the published read models reflect, and the chain hash there."""
        return self.store.head(self.projection.tracked())

    def verify(self, published: tuple[int, str] | None = None,
               progress: Callable[[int], None] | None = None) -> dict[str, Any]:
        """Check the whole log's hash chain (and that ``published``, a head (position, hash)
        published earlier, is on it): ``intact``, ``events``, ``head_position``, ``head_hash``,
        and where it breaks (``broken_at``, ``problem``)."""
        return self.store.verify(published, progress).as_dict()

    def warnings(self) -> list[str]:
        """One line per thing the user should know about this store and these plugins: plugins
        that failed to load, rule sets whose events are in the log but cannot be used here (their
        published scores are kept as they are), and scoring failures met by this process."""
        out = list(self.broken)
        events, groups = self.unscored
        if (events or groups) and not self._said_behind:  # (a NotYetCurrent said it already)
            what = " and ".join(([f"{events:,} logged events are not scored yet"] if events else [])
                                + ([f"{groups:,} subject-months are being rescored"] if groups else []))
            out.append(f"{what}: another process holds the write lock (an ingest or a catch-up); the figures "
                       "shown are those published before them")
        if self.damaged is not None:
            out.append(f"{self.damaged}; the scores shown are those published before it")
        missing = self.projection.missing()
        if missing:
            listed = ", ".join(f"{r} ({n} events)" for r, n in sorted(missing.items()))
            why = "; ".join(self.projection.unusable[r] for r in sorted(missing) if r in self.projection.unusable)
            out.append(f"{sum(missing.values())} events of the log belong to rule sets that are not installed or "
                       f"not usable here: {listed}; their published scores are kept as they were"
                       + (f" ({why})" if why else ""))
        out += list(self.projection.failures)
        return out

    def position_at(self, as_of: int | str) -> int:
        """A log position, or the last position recorded at or before a time (UTC, ISO 8601)."""
        if isinstance(as_of, int) or (isinstance(as_of, str) and as_of.isdigit()):
            position = int(as_of)
            if position < 0:
                raise CsatError(f"--as-of: expected a position ≥ 0, got {position}")
            return position
        stamp = as_of.rstrip("Z")
        if not periods.valid_time(stamp):
            raise CsatError(f"--as-of: expected a log position or a real time YYYY-MM-DD[THH:MM[:SS]], got {as_of!r}")
        from . import anonymous  # (an anonymous response carries its day, not its time)
        return anonymous.position_at(self.store, stamp)

    def _score_rows(self, ruleset: str | None, period: str | None, subject: str | None,
                    metric: str | None, conn: Any = None) -> list[dict[str, Any]]:
        where, args = [], []
        for column, value in (("ruleset", ruleset), ("period", period), ("subject", subject), ("metric", metric)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        sql = ("SELECT ruleset, adoption, period, subject, metric, score, grade, grade_label, responses, extras "
               "FROM scores" + (" WHERE " + " AND ".join(where) if where else "")
               + " ORDER BY ruleset, period, subject, metric")
        rows = []
        for rs, adoption, per, subj, met, score, grade, label, responses, extras in (conn or self.store.conn).execute(
                sql, args):
            row = {"ruleset": rs, "adoption": adoption, "period": per, "subject": subj, "metric": met,
                   "score": Decimal(score) if score is not None else None, "grade": grade,
                   "grade_label": label, "responses": responses}
            row.update(EXTRAS_DEC.decode(extras))
            rows.append(row)
        return rows

    # -- policy revisions ------------------------------------------------------------

    def params_from(self, ruleset: str, data: dict[str, Any] | str | os.PathLike[str], from_: str | None = None,
                    replace: Iterable[str] = (), projection: Projection | None = None) -> dict[str, Any]:
        """Complete parameters from a TOML file or a dict, as an adoption from month ``from_`` would
        store them now (in ``projection``'s read models; default the published ones): merged over
        the parameters in force at ``from_`` (without a month, or with none in force: the shipped
        defaults), the tables named in ``replace`` taken whole, and validated (InvalidParams lists
        every problem, naming the file and the key)."""
        rs = self._ruleset(ruleset)
        source = "params"
        if not isinstance(data, dict):
            source = os.fspath(data)
            data = read_toml(source)
        base = None
        if from_ is not None:
            adoptions, _ = (projection or self.projection).state()
            in_force = adoptions.in_force(ruleset, from_)
            base = in_force.data if in_force is not None else None
        return rs.complete_params(data, source, base, list(replace))

    def adopt(self, params: dict[str, Any] | str | os.PathLike[str], *, ruleset: str, from_: str, id: str | None = None,
              note: str | None = None, replace: Iterable[str] = (), actor: str | None = None) -> IngestReport:
        """Append an adoption of ``params`` (a TOML file or a dict) for ``ruleset`` from month ``from_``:
        merged over the parameters in force at ``from_``, ``replace`` tables taken whole (``actor``:
        as for :meth:`append`).

        :raises IngestFailed: every problem on a line of its own, located at the TOML file.
        """
        if (why := periods.month_problem(from_)):
            raise CsatError(f"--from: {why}")
        replace = list(replace)
        source = os.fspath(params) if not isinstance(params, dict) else "params"
        data = read_toml(source) if not isinstance(params, dict) else params
        self._catch_up_to_read(wait=True)
        try:
            self.params_from(ruleset, data, from_, replace)  # every problem at once, named by the file
        except InvalidParams as e:
            raise IngestFailed([p.replace("params: ", f"{source}: ", 1) for p in e.problems]) from None
        if id is None:
            stem = os.path.splitext(os.path.basename(source))[0] if not isinstance(params, dict) else "adoption"
            id = f"{stem}-{from_}"
        event: dict[str, Any] = {"type": "adoption", "id": id, "ruleset": ruleset, "from": from_, "params": data}
        if replace:
            event["replace"] = replace
        if note:
            event["note"] = note
        try:
            return Ingest(self.store, self.rulesets, self.projection).run(dict_lines([event], name=source), actor=actor)
        except IngestFailed as e:
            raise IngestFailed([p.replace(f"{source}:1: ", f"{source}: ", 1) for p in e.problems]) from None

    def whatif(self, ruleset: str, params: dict[str, Any] | str | os.PathLike[str], period: str | None = None,
               all: bool = False, from_: str | None = None, replace: Iterable[str] = (),
               jobs: int = 1, *, output: tables.Output = "rows") -> Any:
        """Every score of ``ruleset`` (or of ``period``) recomputed as if ``params`` had been adopted
        from ``from_`` (default: the rule set's first month) exactly as :meth:`adopt` with the same
        arguments would, beside the current ones; rows where something differs (all with ``all``).
        Nothing is written and nothing is locked: the replay runs on a private snapshot. ``jobs``
        > 1: its months are scored by forked processes, as :meth:`rebuild`'s (from a process with
        no other threads running). ``output="pandas"`` or ``"arrow"``: a DataFrame or an Arrow
        table of a fixed schema (:func:`csat.engine.app.tables.whatif_schema`)."""
        tables.check_output(output)
        rs = self._ruleset(ruleset)
        if from_ is not None and (why := periods.month_problem(from_)):
            raise CsatError(f"--from: {why}")
        if period is not None:
            periods.kind(period)
        self.catch_up()
        with copy_of(self.projection, ruleset) as private:  # one read snapshot of the published read models
            first = private.conn.execute("SELECT MIN(period) FROM rm_responses WHERE ruleset = ?",
                                         (ruleset,)).fetchone()[0]
            month = from_ or first
            if month is None:
                return tables.whatif_out(self, [], output, ruleset)
            complete = self.params_from(ruleset, params, month, replace, projection=private)
            adoptions, org = private.state()
            from .adoption_check import refuse  # logged answers these parameters would score off the scale
            refuse(private.conn, rs, month, complete, adoptions, params)
            before = {(r["period"], r["subject"], r["metric"]): r
                      for r in self._score_rows(ruleset, period, None, None, private.conn)}
            adoption = ParametersAdopted(id="what-if", ruleset=ruleset, from_=month, params=complete,
                                         note="what-if, never appended", params_version=rs.params_version)
            with private.transaction():  # as if appended right after the position the copy reflects
                private.applier.apply([Logged(private.tracked() + 1, "", f"adoption:{ruleset}:what-if", adoption)],
                               adoptions, org)
                private.rescore_from(ruleset, month, jobs)
            after = {(r["period"], r["subject"], r["metric"]): r
                     for r in self._score_rows(ruleset, period, None, None, private.conn)}
        out = []
        for key in sorted(before.keys() | after.keys()):
            b, a = before.get(key, {}), after.get(key, {})
            sb, sa = b.get("score"), a.get("score")
            delta = sa - sb if sa is not None and sb is not None else None
            if all or sb != sa or b.get("grade") != a.get("grade"):
                out.append({"period": key[0], "subject": key[1], "metric": key[2], "before": sb, "after": sa,
                            "delta": delta, "grade_before": b.get("grade"), "grade_after": a.get("grade")})
        return tables.whatif_out(self, out, output, ruleset)

    def explain(self, ruleset: str, subject: str, period: str, metric: str | None = None,
                as_of: int | str | None = None, *, redact: bool = False) -> dict[str, Any]:
        """How one figure was derived: the score row plus ``params_hash``, ``steps``, ``events``,
        and the log position and head hash it reflects (``log_position``, ``log_head``).

        ``as_of`` (a log position or a recording time) explains the figure as it was published
        when the log ended there; events after it are not shown. ``redact`` replaces the raters
        and respondents in the steps by pseudonyms (:mod:`csat.engine.app.redact`).

        :raises NotFound: when the subject has no responses or no such metric in the period.
        """
        rs = self._ruleset(ruleset)
        periods.kind(period)
        if as_of is not None:
            position = self.position_at(as_of)
            with snapshot(self.projection, position, only=[ruleset]) as private:
                out = self._opened(self._named(explain(private, rs, subject, period, metric), private.conn))
            out["log_position"], out["log_head"] = self.store.head(position)
            return self._redacted(out) if redact else out
        self._catch_up_to_read()
        conn = self.store.conn
        with one_snapshot(conn):  # one state of the read models (another process may commit meanwhile)
            tracked = self.projection.tracked()
            out = kept = explained.lookup(conn, ruleset, period, subject, metric, tracked)
            try:
                if out is None:
                    out = explain(self.projection, rs, subject, period, metric)
            except NotFound:  # logged, not yet applied: not yet current rather than "no responses"
                wanted = {(ruleset, subject, month) for month in periods.months_of(period)}
                self._in_log(f"a response of {ruleset} about {subject!r} in {period}", about=lambda ev: (
                    getattr(ev, "ruleset", None), getattr(ev, "subject", None), getattr(ev, "period", None)) in wanted)
                raise
        if kept is None:
            self._keep_explanation(ruleset, period, subject, metric, tracked, out)
        out = self._opened(announce.beside(self, [self._named(out, conn)])[0])  # as its score row
        out["log_position"], out["log_head"] = self.store.head(tracked)
        if (revised := announce.revision(self, out)) is not None:
            out["revised_since_announced"] = revised
        return self._redacted(out) if redact else out

    # -- following changes and announcing ----------------------------------------------

    def changes(self, since: int | str = 0, until: int | str | None = None) -> "Changes":
        """The figures that moved since log position ``since`` (or a recording time, as ``as_of``
        takes them): a :class:`~csat.engine.app.changes.Changes` listing, per rule set, subject,
        period and metric whose score or grade differs or that appeared or went, the figure
        ``before`` and ``after``, ``delta``, ``grade_before``, ``grade_after``, ``events`` (the
        positions of the events since that bear on its rule-set month) and ``announced`` (the month
        was announced, 公示). Store its ``position`` and pass it as ``since`` next time: no change is
        missed or repeated. Catches up as every read does; with nothing new since, it answers at
        once (no replay, no read of the log). ``until``: the figures as they stood at that
        position (or time) instead of as published now.
        """
        from .changes import Changes, changes

        self._catch_up_to_read()
        tracked = self.projection.tracked()
        start = self._position_named("since", since)
        end = tracked if until is None else min(self._position_named("until", until), tracked)
        if until is not None and end < start:
            raise CsatError(f"until: position {end} is before since ({start})")
        if start >= end:
            if start > tracked and start > (last := self.store.max_position()):
                raise CsatError(f"since: position {start} is beyond the log's end ({last})")
            position = start if until is None else end
            return Changes(position, self.store.head(position)[1], [])
        return Changes(end, self.store.head(end)[1], self._open_names(changes(self.projection, start, end)))

    def _position_named(self, name: str, value: int | str) -> int:
        try:
            return self.position_at(value)
        except CsatError as e:
            raise CsatError(str(e).replace("--as-of", name, 1)) from None

    def announce(self, ruleset: str, period: str, *, under: str | None = None, date: str | None = None,
                 id: str | None = None, note: str | None = None, actor: str | None = None) -> IngestReport:
        """Append an announcement (公示) of ``ruleset``'s figures of month ``period`` — all of them,
        or those of ``under`` and the units below it — as published now (the read models are
        brought up to date first), on ``date`` (default: today); ``id`` defaults to
        ``RULESET-PERIOD-DATE`` (``actor``: as for :meth:`append`). From then on :meth:`scores`
        shows the announced figure beside any that moved.

        :raises CsatError: the month (under ``under``) has no figures: nothing to announce.
        """
        import datetime

        self._ruleset(ruleset)
        if (why := periods.month_problem(period)):
            raise CsatError(f"--period: {why}")
        self._catch_up_to_read(wait=True)
        rows = self._score_rows(ruleset, period, None, None)
        if under is not None:
            rows = self._under(rows, under)
        if not rows:
            raise CsatError(f"{ruleset} has no figures for {period}" + (f" under {under}" if under else "")
                            + ": nothing to announce")
        day = date or datetime.date.today().isoformat()
        return self.append([announce.announcement(ruleset, period, day, under=under, id=id, note=note)], actor=actor)

    def _redacted(self, out: dict[str, Any]) -> dict[str, Any]:
        found = self.store.at_positions(e["position"] for e in out["events"])
        events = [msgspec.to_builtins(found[p].event) for p in sorted(found) if found[p].event is not None]
        return redact.explanation(out, self.pseudonyms(), events)

    @staticmethod
    def _named(out: dict[str, Any], conn: Any) -> dict[str, Any]:
        """An explanation with ``subject_name`` after ``subject`` and ``kind`` after ``period``, as
        score rows have them (and their announced keys, None)."""
        return scoreviews.complete(scoreviews.with_names([out], Org.load(conn)))[0]

    def _keep_explanation(self, ruleset: str, period: str, subject: str, metric: str | None, tracked: int,
                          out: dict[str, Any]) -> None:
        """Store a fresh explanation for the next reader, when the write lock is free at once and
        the read models have not moved since it was computed; otherwise leave it."""
        if self.damaged is not None or self.store.conn.in_transaction:
            return
        with self.store.try_write_lock() as locked:
            if locked and self.projection.tracked() == tracked and not self.projection.behind():
                explained.store(self.store.conn, ruleset, period, subject, metric, tracked, out)

    def repair(self, *, dry_run: bool = False, actor: str | None = None) -> dict[str, Any]:
        """Chain again the rows csat wrote without a chain hash (a fault of csat's own), from the
        first break on, record that as a ``chain_repaired`` event and catch up
        (:func:`csat.engine.log.repair.repair` says what it returns); ``dry_run``: write nothing.

        :raises StoreError: a row from the break on was changed outside csat (named with its
            position and why); nothing is written.
        """
        from ..log.repair import repair
        done = repair(self.store, actor=actor, dry_run=dry_run)
        if done["repaired"] and not dry_run:
            self.damaged = None
            self.catch_up()
        return done

    def _ruleset(self, ruleset: str) -> RuleSet:
        try:
            return self.rulesets[ruleset]
        except KeyError:
            raise UnknownRuleSet.of(ruleset, self.rulesets) from None
