"""The listings of the embedding API (:class:`csat.engine.Engine` inherits them): complaint cases,
rectifications, the org chart and the log itself, each read after catching up."""
from __future__ import annotations

import contextlib
import datetime as _dt
import io
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import msgspec

from .. import periods

from ..read import scoreviews
from ..errors import CsatError, NotFound, NotYetCurrent
from ..log.events import TAGS, UnitDeclared
from ..read.describe import describe
from ..read.items import item_rows
from .redact import Pseudonyms
from ..read.cases import ROUND_SPEC
from .rounds import round_status
from . import tables


class _Who(msgspec.Struct):
    """The two fields of a response that name who answered (the rest is skipped undecoded)."""

    rater: str | None = None
    respondent: str | None = None


_WHO = msgspec.json.Decoder(_Who)

if TYPE_CHECKING:
    from ..scoring.ruleset import RuleSet
    from ..read.projection import Projection
    from ..log.store import Store


def _subject_period_filter(subject: str | None, period: str | None, prefix: str = "") -> tuple[list[str], list[Any]]:
    """WHERE terms for an optional subject and an optional month, quarter or year."""
    where: list[str] = []
    args: list[Any] = []
    if subject is not None:
        where.append(f"{prefix}subject = ?")
        args.append(subject)
    if period is not None:
        months = periods.months_of(period)
        where.append(f"{prefix}period IN ({','.join('?' * len(months))})")
        args.extend(months)
    return where, args


@contextlib.contextmanager
def one_snapshot(conn: Any) -> Iterator[None]:
    """The queries of one answer read one state of the store, whatever another process commits
    meanwhile (a catch-up): one read transaction — SQLite's (WAL keeps the state of its first read),
    PostgreSQL's ``BEGIN`` is REPEATABLE READ (:mod:`csat.engine.log.pgsql`); in a transaction
    already, that one. Nothing in it may write."""
    if conn.in_transaction:
        yield
        return
    conn.execute("BEGIN")
    try:
        yield
    except BaseException:
        try:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        except Exception:  # noqa: BLE001 - a lost connection has no transaction left to end
            pass
        raise
    conn.execute("COMMIT")


class Listings:
    """Mixed into :class:`~csat.engine.app.api.Engine`: uses its ``store``, ``projection`` and
    ``_catch_up_to_read``."""

    store: Store
    projection: Projection
    sources: dict[str, str]
    hooks: dict[str, tuple[str, ...]]
    unscored: tuple[int, int]
    damaged: Any
    #: the last read raised NotYetCurrent, which says what :meth:`warnings` would say of ``unscored``
    _said_behind = False

    def _in_log(self, what: str, key: str | None = None, about: Callable[[Any], bool] | None = None) -> None:
        """After a read found no ``what`` in the read models: when they are behind because another
        process holds the write lock (:attr:`unscored`) and the log holds it — under its natural
        ``key``, or as an event not yet applied that ``about`` matches — raise NotYetCurrent
        rather than deny it (``events.md`` §6); otherwise return (the caller's NotFound stands)."""
        events = self.unscored[0]
        if not events or self.damaged is not None:
            return
        tracked = self.projection.tracked()
        if key is not None:
            found = self.store.get([key]).get(key)
            held = found is not None and found.position > tracked
        else:
            held = about is not None and any(lg.event is not None and about(lg.event)
                                             for page in self.store.lenient_pages(tracked) for lg in page)
        if held:
            self._said_behind = True
            raise NotYetCurrent(f"{what} is in the log but not yet in the read models ({events:,} logged events are "
                                "not scored yet: another process is catching up); try again in a moment")

    def _catch_up_to_read(self, wait: bool = False) -> None:  # pragma: no cover - the Engine's is called
        raise NotImplementedError

    def _ruleset(self, ruleset: str) -> RuleSet:  # pragma: no cover - the Engine's own is the one called
        raise NotImplementedError

    def scores(self, ruleset: str | None = None, period: str | None = None, subject: str | None = None,
               metric: str | None = None, as_of: int | str | None = None, *, under: str | None = None,
               vs: str | None = None) -> list[dict[str, Any]]:  # pragma: no cover - the Engine's own
        raise NotImplementedError

    def position_at(self, as_of: int | str) -> int:  # pragma: no cover - the Engine's own is the one called
        raise NotImplementedError

    def items(self, ruleset: str, period: str, *, under: str | None = None,
              subjects: Iterable[str] | None = None, output: tables.Output = "rows") -> Any:
        """The rule set's items over ``period``, weakest first (:mod:`csat.engine.read.items`): each item's
        ``attainment`` (100 × Σ points / Σ possible over the counted responses), ``label``,
        ``responses`` and ``response_ids``. Over every subject with a score in the period (those
        ``under`` a unit), or over the given ``subjects``; empty for a rule set without
        ``item_points``. ``output="pandas"`` or ``"arrow"``: a DataFrame or an Arrow table of a
        fixed schema (:func:`csat.engine.app.tables.items_schema`)."""
        tables.check_output(output)
        rs = self._ruleset(ruleset)
        if subjects is None:
            subjects = {r["subject"] for r in self.scores(ruleset, period, under=under)}
        else:
            self._catch_up_to_read()
        return tables.items_out(item_rows(self.projection, rs, period, subjects), output)

    def complaints(self, subject: str | None = None, period: str | None = None,
                   open_only: bool = False, *, under: str | None = None) -> list[dict[str, Any]]:
        """Complaint cases: filed complaints and the remedy cases rule sets open (``events.md`` §3);
        ``under`` keeps those about a unit and the units below it (as of each case's month)."""
        self._catch_up_to_read()
        where, args = _subject_period_filter(subject, period, "c.")
        sql = ("SELECT c.id, c.kind, c.subject, c.period, c.ruleset, c.severity, c.source, c.response, c.text, "
               "(SELECT outcome FROM rm_closures WHERE complaint = c.id ORDER BY position DESC LIMIT 1), "
               "(SELECT date FROM rm_closures WHERE complaint = c.id ORDER BY position DESC LIMIT 1), "
               "(SELECT group_concat(id, ',') FROM (SELECT id FROM rm_rectifications WHERE complaint = c.id "
               "ORDER BY position) AS r) FROM rm_cases c" + (" WHERE " + " AND ".join(where) if where else "")
               + " ORDER BY c.period, c.subject, c.position")
        rows = []
        for id_, kind, subj, per, rs, sev, src, resp, text, outcome, closed, rects in self.store.conn.execute(sql, args):
            status = outcome or "open"
            if open_only and status != "open":
                continue
            rows.append({"id": id_, "kind": kind, "subject": subj, "period": per, "ruleset": rs, "severity": sev,
                         "source": src, "response": resp, "status": status, "closed": closed,
                         "rectifications": rects.split(",") if rects else [], "text": text})
        return self._opened(self._under(rows, under))

    def _under(self, rows: list[dict[str, Any]], unit: str | None, org: Any = None,
               conn: Any = None) -> list[dict[str, Any]]:
        """The rows (with ``subject`` and ``period``) about ``unit`` or a unit below it (``--under``),
        by the org chart and read models given (default: the published ones). ``unit`` is one the
        org chart declares, or a subject with scores (a unit of its own, nothing below it);
        raises NotFound otherwise."""
        if unit is None:
            return rows
        org = self.projection.state()[1] if org is None else org
        conn = self.store.conn if conn is None else conn
        if not org.history(unit) and conn.execute("SELECT 1 FROM scores WHERE subject = ? LIMIT 1",
                                                  (unit,)).fetchone() is None:
            if conn is self.store.conn:
                self._in_log(f"unit {unit!r}", about=lambda ev: getattr(ev, "subject", None) == unit
                             or (isinstance(ev, UnitDeclared) and ev.id == unit))
            raise NotFound(f"no unit {unit!r} in the log (csat units lists them)")
        return scoreviews.under(rows, org, unit)

    def rectifications(self, subject: str | None = None, overdue: bool = False, as_of: str | None = None,
                       period: str | None = None, *, under: str | None = None) -> list[dict[str, Any]]:
        """Rectifications as they stood at ``as_of`` (a date, default today): status, completion,
        lateness and whether overdue (``events.md`` §3). Updates dated after ``as_of`` are ignored;
        ``under`` keeps those of a unit and the units below it."""
        day = as_of or _dt.date.today().isoformat()
        if (why := periods.date_problem(day)):
            raise CsatError(f"--as-of: {why}")
        self._catch_up_to_read()
        where, args = _subject_period_filter(subject, period)
        conn = self.store.conn
        rows = []
        where.append("period <= ?")  # raised in a later month: it did not exist yet at the as-of date
        args.append(day[:7])
        for id_, subj, per, issue, due, complaint, response in conn.execute(
                "SELECT id, subject, period, issue, due, complaint, response FROM rm_rectifications WHERE "
                + " AND ".join(where) + " ORDER BY due, id", args):
            updates = [(st, d) for st, d in conn.execute(
                "SELECT status, date FROM rm_rectification_updates WHERE rectification = ? AND date <= ? "
                "ORDER BY position", (id_, day))]
            status = updates[-1][0] if updates else "open"
            completed = next((d for st, d in reversed(updates) if st == "completed"), None)
            is_overdue = due < day and not any(st in ("completed", "cancelled") for st, _ in updates)
            if overdue and not is_overdue:
                continue
            rows.append({"id": id_, "subject": subj, "period": per, "issue": issue, "due": due, "status": status,
                         "completed": completed, "late": completed is not None and completed > due,
                         "overdue": is_overdue, "complaint": complaint, "response": response})
        return self._opened(self._under(rows, under))

    def units(self, as_of: str, unit: str | None = None) -> list[dict[str, Any]]:
        """Units with their parent and chain of ancestors as of a month."""
        if (why := periods.month_problem(as_of)):
            raise CsatError(f"--as-of: {why}")
        self._catch_up_to_read()
        org = self.projection.state()[1]
        names = [unit] if unit is not None else org.units()
        if unit is not None and not org.history(unit):
            self._in_log(f"unit {unit!r}", about=lambda ev: isinstance(ev, UnitDeclared) and ev.id == unit)
            raise NotFound(f"no unit {unit!r} in the log")
        out = []
        for u in names:
            link = org.link(u, as_of)
            out.append({"id": u, "name": org.name(u, as_of) or org.names.get(u), "kind": org.kind(u, as_of),
                        "parent": link.parent if link else None, "since": (link.from_ or None) if link else None,
                        "chain": org.chain(u, as_of)})
        return self._opened(out)

    def describe_ruleset(self, ruleset: str, month: str | None = None) -> dict[str, Any]:
        """A rule set with the parameters in force in ``month`` (default: this month) in this store:
        ``id``, ``version``, ``title``, ``source``, ``metrics``, ``adoption`` (id, from, position,
        params_hash, upgraded_from; None when none is in force: the shipped defaults),
        ``parameters`` (complete, as the log stores them), ``questionnaire`` (see
        :func:`csat.engine.read.describe.questionnaire_data`; None when the rule set publishes none)
        and ``item_labels`` (item → the label a sheet's column may be headed by)."""
        rs = self._ruleset(ruleset)
        month = month or _dt.date.today().strftime("%Y-%m")
        if (why := periods.month_problem(month)):
            raise CsatError(f"--as-of: {why}")
        self._catch_up_to_read()
        adoption = self.projection.state()[0].in_force(ruleset, month)
        return describe(rs, adoption, self.sources.get(ruleset, "given"), month)

    def months(self, ruleset: str | None = None) -> list[str]:
        """The months that have published figures (of one rule set, or of any), oldest first."""
        self._catch_up_to_read()
        sql = "SELECT DISTINCT period FROM scores WHERE kind = 'month'" + (" AND ruleset = ?" if ruleset else "")
        return sorted(p for (p,) in self.store.conn.execute(sql, (ruleset,) if ruleset else ()))

    def rounds(self) -> list[dict[str, Any]]:
        """The assessment rounds of the log, in the order they were opened: ``round``, ``ruleset``,
        ``period``, ``due`` and ``closed`` (the date, or None)."""
        self._catch_up_to_read()
        rows = self.store.conn.execute("SELECT round, kind, date, spec FROM rm_rounds WHERE kind IN ('opened', 'closed') "
                                       "ORDER BY position").fetchall()
        closed = {r: d for r, kind, d, _ in rows if kind == "closed"}
        out = []
        for r, kind, due, spec in rows:
            if kind == "opened":
                s = ROUND_SPEC.decode(spec)
                out.append({"round": r, "ruleset": s.ruleset, "period": s.period, "due": due, "closed": closed.get(r)})
        return out

    def round_status(self, round_id: str, as_of: str | None = None, *, output: tables.Output = "rows") -> Any:
        """A round's returns as of a date (:mod:`csat.engine.app.rounds`): each assignment
        answered, declined (no dealings) or missing, and late or not; the response rate (回收率)
        by rater, by subject and overall. ``output="pandas"`` or ``"arrow"``: the assignments as a
        DataFrame or an Arrow table of a fixed schema, one row each with its round's fields
        (:func:`csat.engine.app.tables.round_schema`; the rates are a ``groupby`` of it).

        :raises NotFound: no such round.
        :raises NotYetCurrent: the round is in the log, not yet in the read models (another
            process holds the write lock: an ingest, a catch-up).
        """
        tables.check_output(output)
        if as_of is not None and (why := periods.date_problem(as_of)):
            raise CsatError(f"--as-of: {why}")
        self._catch_up_to_read()
        with one_snapshot(self.store.conn):  # never a catch-up's work half seen (issue 31)
            org = self.projection.state()[1]
            try:
                from .anonymous import held_returns
                status = round_status(self.store.conn, org, lambda ps: {
                    p: lg.at for p, lg in self.store.at_positions(ps).items()}, round_id, as_of,
                    held_returns(self.store, round_id))
            except NotFound:
                self._in_log(f"round {round_id!r}", key=f"round:{round_id}")
                raise
        return tables.round_out(self._opened(status), output)

    def forms(self, round_id: str, rater: str | None = None) -> dict[str, bytes]:
        """A round's questionnaires as Excel workbooks (:mod:`csat.engine.render.forms`), one per
        rater, in the order of the round's assignments: ``{rater: the .xlsx file's bytes}``.

        :raises NotFound: no such round, or ``rater`` has no assignment in it.
        :raises CsatError: the rule set has no questionnaire items for the round's month.
        """
        status = self.round_status(round_id)
        described = self.describe_ruleset(status["ruleset"], status["period"])
        raters = list(dict.fromkeys(r["rater"] for r in status["assignments"]))
        if rater is not None:
            if rater not in raters:
                raise NotFound(f"rater {rater!r} has no assignment in round {round_id}")
            raters = [rater]
        from ..render.forms import write_form  # (openpyxl: loaded when a form is made)
        out = {}
        for who in raters:
            buffer = io.BytesIO()
            write_form(buffer, who, [r for r in status["assignments"] if r["rater"] == who], status, described)
            out[who] = buffer.getvalue()
        return out

    def report(self, period: str, ruleset: str | None = None, under: str | None = None,
               min_responses: int = 0) -> str:
        """The period's report for management as one self-contained HTML page (``csat report``;
        :func:`csat.engine.app.report.report_data` holds what it shows). No rater or respondent
        is named; a figure from fewer than ``min_responses`` responses is shown as "—"."""
        from ..render.report import render_report  # (Jinja2: loaded when a report is made)
        from .report import report_data
        return render_report(report_data(self, period, ruleset, under, min_responses))

    def ruleset_list(self) -> list[dict[str, Any]]:
        """The rule sets in use: id, version, title, source and the hooks their plugin implements."""
        return [{"id": rs.id, "version": rs.version, "title": rs.title,
                 "source": self.sources.get(rs.id, "given"), "metrics": list(rs.metrics),
                 "hooks": list(self.hooks.get(rs.id, ()))}
                for rs in sorted(self.rulesets.values(), key=lambda r: r.id)]

    def pseudonyms(self) -> Pseudonyms:
        """Pseudonyms for one redacted output (:mod:`csat.engine.app.redact`), knowing every rater and
        respondent in the log up front: a reason or an id that names one is redacted wherever it
        stands, even before that person's own response is listed."""
        self._catch_up_to_read()
        names, opener = Pseudonyms(), self.opener()
        for (blob,) in self.store.conn.execute("SELECT state FROM rm_responses ORDER BY position"):
            who = _WHO.decode(bytes(blob))
            names.know("rater", who.rater or "")
            names.know("respondent", opener.text(who.respondent or "", "respondent"))
        for page in self.store.lenient_pages(self.projection.tracked()):  # not yet applied (a damaged log)
            for lg in page:
                for kind in ("rater", "respondent"):
                    names.know(kind, opener.text(getattr(lg.event, kind, None) or "", kind))
        return names

    def log(self, type: str | None = None, id: str | None = None, after: int = 0, *, subject: str | None = None,
            period: str | None = None, ruleset: str | None = None, limit: int | None = None,
            tail: int | None = None, until: int | str | None = None) -> Iterator[dict[str, Any]]:
        """The events of the log with position and recording time, streamed page by page.

        Filters: one ``type``, one ``id``, events about a ``subject``, in a ``period`` (month,
        quarter or year) or of a ``ruleset``; those after position ``after`` and up to ``until``
        (a position, or a recording time as ``as_of`` takes them: the last event recorded by
        then); ``limit`` stops after that many, ``tail`` gives the last that many (in log order).
        """
        if type is not None and type not in TAGS and type != "damaged":
            raise CsatError(f"unknown event type {type!r} (expected one of {', '.join(TAGS)})")
        try:
            upto = self.position_at(until) if until is not None else None
        except CsatError as e:
            raise CsatError(str(e).replace("--as-of", "until", 1)) from None
        months = set(periods.months_of(period)) if period is not None else None
        opener = self.opener()

        def wanted(lg: Any) -> bool:
            ev = lg.event
            if ev is None:  # a damaged row: shown to anyone listing the log unfiltered, or by type "damaged"
                return type in (None, "damaged") and id is None and subject is None and months is None \
                    and ruleset is None
            return ((type is None or lg.type == type) and (id is None or ev.id == id)
                    and (subject is None or getattr(ev, "subject", None) == subject)
                    and (months is None or getattr(ev, "period", None) in months)
                    and (ruleset is None or getattr(ev, "ruleset", None) == ruleset))

        def row(lg: Any) -> dict[str, Any]:
            if lg.event is None:
                return {"position": lg.position, "recorded": None, "type": "damaged", "id": None,
                        "event": {"damaged": lg.damaged, "key": lg.key}}
            return {"position": lg.position, "recorded": lg.at, "type": lg.type, "id": lg.event.id,
                    "event": opener.deep(msgspec.to_builtins(lg.event)), **({"by": lg.by} if lg.by else {})}

        if tail is not None:
            last: list[Any] = []
            for page in self.store.pages_backwards():
                last += [lg for lg in page if wanted(lg) and (upto is None or lg.position <= upto)]
                if len(last) >= tail:
                    break
            yield from (row(lg) for lg in reversed(last[:tail]))
            return
        n = 0
        for page in self.store.lenient_pages(after):
            for lg in page:
                if upto is not None and lg.position > upto:
                    return
                if wanted(lg):
                    if limit is not None and n >= limit:
                        return
                    n += 1
                    yield row(lg)
