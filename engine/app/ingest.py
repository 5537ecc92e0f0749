"""Ingest: validate input lines and append them to the log, all or nothing.

One call is one SQLite write transaction. Lines are read in chunks, decoded
strictly, validated against the log *and* the earlier lines of the same call
(earlier chunks are already inserted in the open transaction, so lookups see
them), and appended with ``executemany``. At the end the transaction commits
only if no line had a problem; otherwise every problem is reported as
``FILE:LINE: message`` and nothing is kept. Memory stays bounded by the chunk.

Idempotency: an event whose natural key is in the log with an identical body
is counted as already present; with a different body it is a conflict.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from ..collector import collector_paused
from ..errors import CsatError, IngestFailed, InvalidParams, RuleSetFailed
from ..log.events import (ComplaintClosed, ComplaintFiled, DealingsDeclined, Event, ParametersAdopted,
                          RectificationRequired, RectificationUpdated, ResponseCorrected, ResponseRecorded,
                          ResponseWithdrawn, ResultsAnnounced, RoundClosed, RoundOpened, UnitDeclared, decode_line,
                          natural_key)
from ..scoring.guard import checked_labels, guarded
from ..read.projection import Projection
from . import adoption_check, anonymous
from .inputs import EVENTS, Noted, dict_lines, line_problems  # (dict_lines: Engine.append's lines)
from .orgcheck import OrgCheck  # ids that break links; units named that the org chart lacks
from .privacy import IngestPrivacy
from .readers import Line, file_lines, is_sheet  # (file_lines: Engine.ingest's lines)
from .returns import Returns  # one return per assignment of a round; `received`
from ..read.readmodel import load_states
from ..scoring.params import merge
from ..scoring.ruleset import RuleSet
from ..log.store import Recorded, Store, now


@dataclass
class IngestReport:
    """What an ingest did (or, with ``dry_run``, would do)."""

    appended: int = 0
    present: int = 0
    lines: int = 0
    implicit_adoptions: list[str] = field(default_factory=list)
    dry_run: bool = False
    #: one line per thing worth a look that did not stop the ingest (``FILE:LINE: …``)
    warnings: list[str] = field(default_factory=list)

    @property
    def events(self) -> int:
        """The caller's own events appended: :attr:`appended` counts every event written to the log,
        the implicit adoptions (:attr:`implicit_adoptions`) among them."""
        return self.appended - len(self.implicit_adoptions)

    def summary(self) -> str:
        verb = "would be appended" if self.dry_run else "appended"
        return f"{self.appended} {verb}, {self.present} already present"


#: the events that may name a response (``response``), by tag
_NAMES_A_RESPONSE = frozenset(cls.__struct_config__.tag for cls in (ResponseCorrected, ResponseWithdrawn,
                                                                    ComplaintFiled, RectificationRequired))


class Ingest:
    """One ingest call against a store."""

    CHUNK = 2000

    def __init__(self, store: Store, rulesets: dict[str, RuleSet], projection: Projection):
        self.store = store
        self.rulesets = rulesets
        self.projection = projection
        self._labels: dict[tuple[str, str | None], dict[str, str]] = {}  # item labels -> ids, by adoption
        self.privacy: IngestPrivacy | None = None  # each call's own (its keys end with the call)
        self.hold: anonymous.Hold | None = None  # an anonymous link's return (csat.engine.app.anonymous)

    def run(self, lines: Iterable[Line], *, dry_run: bool = False,
            progress: Callable[[int], None] | None = None, catching_up: bool = False,
            actor: str | Sequence[str | None] | None = None) -> IngestReport:
        # the account making the change (recorded with each event), or None; a sequence: one per line
        self.actors = list(actor) if isinstance(actor, (list, tuple)) else None
        self.actor = None if self.actors is not None else actor
        for who in self.actors if self.actors is not None else [actor]:
            if not (who is None or (isinstance(who, str) and who and who.isprintable()
                                    and who.encode("utf-8", "surrogatepass").decode("utf-8", "replace") == who)):
                raise CsatError(f"actor: expected an account name (text) or None, got {who!r}"[:200])
        self._start_transaction()
        try:
            with collector_paused():
                report = self._run(lines, dry_run, progress)
        except BaseException:
            if self.privacy is not None:
                self.privacy.rollback()
            self.store.rollback()
            self.projection.forget_state()
            raise
        if self.problems or dry_run:
            self.privacy.rollback()  # type: ignore[union-attr]  # (set by _run)
            self.store.rollback()
            self.projection.forget_state()
            if self.problems:
                order = {name: i for i, name in enumerate(self.sources)}
                self.problems.sort(key=lambda p: (order.get(p[0], -1), p[1]))
                raise IngestFailed([p[2] for p in self.problems])
        else:
            if catching_up and report.appended:
                self.projection.will_catch_up()
            self.privacy.commit()  # type: ignore[union-attr]  # the keys first: never an event without its key
            self.store.commit()
        return report

    def _start_transaction(self) -> None:
        # The working tables answer "is this response withdrawn?" and "which adoption is in
        # force?": they are brought up to date inside this write transaction, so no other
        # writer can move the log between that and the checks.
        self.store.begin_write()
        self.projection.catch_up(settle=False)

    # -- the pass ------------------------------------------------------------------

    def _run(self, lines: Iterable[Line], dry_run: bool, progress: Callable[[int], None] | None) -> IngestReport:
        self.problems: list[tuple[str, int, str]] = []   # (source, line, "FILE:LINE: message")
        self.sources: dict[str, None] = {}
        self.report = IngestReport(dry_run=dry_run)
        self.privacy = IngestPrivacy(self.store, dry_run)
        self.report.warnings = self.privacy.warnings
        self.at = now()  # precise: an anonymous response alone records its day (_accept)
        if self.privacy.anonymous and not dry_run:  # a day's held anonymous returns, released shuffled
            anonymous.release_due(self.store)
        adoptions, org = self.projection.state()
        self.adoptions = adoptions.copy()   # this call's lines join the copies, never the projection's
        self.org = org.copy()
        self.orgcheck = OrgCheck(self.store.conn, self.org, self._problem)  # ids and units named (orgcheck.py)
        self.closed: dict[str, str] = {}              # case id -> closure id, this call
        self.rect_state: dict[str, tuple[str, str]] = {}  # rectification -> (status, date) after this call's updates
        self.next_position = self.store.max_position() + 1
        self.withdrawn: dict[str, str] = {}           # response id -> withdrawal id, this call
        self.returns = Returns(self.store, self.org, self.withdrawn, self.at)
        self.first_new = self.next_position - 1         # this call's events come after this position
        self.touched: set[str] = set()                # rule sets whose responses this call changes
        self.noted: dict[tuple[str, int], Noted] = {}  # lines given as Python values that needed care
        self.known = {}
        self.implicit: dict[str, list[Any]] = {}      # ruleset -> [Recorded, flushed?]
        chunk: list[tuple[str, int, Event]] = []
        for source, number, raw in lines:
            self.report.lines += 1
            self.sources.setdefault(source)
            if isinstance(raw, str):  # a problem the reader found (e.g. a CSV header)
                self._problem(source, number, raw)
                continue
            try:
                chunk.append((source, number, decode_line(raw)))
                if type(raw) is Noted:
                    self.noted[(source, number)] = raw
            except ValueError as e:  # every problem of the line, not only the first
                for p in line_problems(raw, str(e), self._check):
                    self._problem(source, number, p)
            if len(chunk) >= self.CHUNK:
                self._chunk(chunk)
                if progress:
                    progress(lines=len(chunk))
                chunk = []
        if chunk:
            self._chunk(chunk)
            if progress:
                progress(lines=len(chunk))
        self.orgcheck.finish(self.problems)  # units named that no line declared
        return self.report

    def _chunk(self, chunk: list[tuple[str, int, Event]]) -> None:
        natural = [natural_key(ev) for _, _, ev in chunk]
        keys = set(natural)
        keys |= {f"response:{ev.response}" for _, _, ev in chunk
                 if type(ev).__struct_config__.tag in _NAMES_A_RESPONSE and ev.response}
        self.known = {k: lg.event for k, lg in self.store.get(sorted(keys)).items()}
        if self.hold is not None:  # a page sent again finds its return in the pool
            self.known.update(self.hold.known(sorted(keys)))
        self.pending: list[Recorded] = []
        self.pending_keys: list[str] = []
        sheets = {source for source in {source for source, _, _ in chunk} if is_sheet(source)}
        for (source, number, ev), key in zip(chunk, natural):
            if self.actors is not None:
                if number > len(self.actors):
                    raise CsatError(f"actor: a list of {len(self.actors)} for more events than that: give one "
                                    "per event")
                self.actor = self.actors[number - 1]
            if source in sheets and type(ev).__struct_config__.tag == "response" and ev.ruleset in self.rulesets:
                ev = self._item_ids(ev)  # a sheet's item columns may be headed by their labels
            if (ev := self.orgcheck.named(ev, source, number)) is None:
                continue  # a name of several units (reported); units given by name stored by their id
            note = self.noted.pop((source, number), None) if self.noted else None
            if note is not None and note.problems:  # a value that could not be sent: refused, with the rest
                for p in note.amend(self._check(ev) if type(ev).__struct_config__.tag == "response" else []):
                    self._problem(source, number, p)
                continue
            if isinstance(ev, ParametersAdopted):
                try:
                    if key in self.known:  # a re-sent adoption: the same if it changes nothing stored
                        if self._same_adoption(self.known[key], ev):
                            self.report.present += 1
                        else:
                            self._problem(source, number, f"adoption {ev.id!r} of {ev.ruleset} already exists with a "
                                          "different body (parameters, from or note): choose another id "
                                          "(csat adopt --id ID)")
                        continue
                    ev = self._transform(ev)
                    if (refused := adoption_check.ingested(  # logged answers it would score off its scale
                            self.store, self.rulesets, self.adoptions, ev, self.first_new,
                            self.pending if ev.ruleset in self.touched else None)):
                        for p in refused:
                            self._problem(source, number, p)
                        continue
                except InvalidParams as e:
                    for p in e.problems:
                        self._problem(source, number, p)
                    continue
                except RuleSetFailed as e:
                    self._problem(source, number, str(e))
                    continue
            if type(ev).__struct_config__.tag == "response":  # --received, or the stored one's if re-sent
                ev = self.returns.given(ev, self.known.get(key))
            if key in self.known:
                if self.privacy.same(self.known[key], ev):
                    self.report.present += 1
                else:
                    self._problem(source, number, f"conflict: {key.split(':', 1)[0]} {ev.id!r} is already in the log "
                                  "with a different body (fix data with a correction or withdrawal, never by re-sending)")
                continue
            problems = self.orgcheck.problems(ev, source, number) or self._check(ev)
            if problems and note is not None:
                problems = note.amend(problems)
            if problems:
                for p in problems:
                    self._problem(source, number, p)
                continue
            if type(ev).__struct_config__.tag in ("response", "round"):  # one return per assignment (returns.py)
                routed = self.returns.route(ev)
                if isinstance(routed, str):
                    self._problem(source, number, routed)
                    continue
                if routed is not ev:  # a second return: a correction of the first (sent again: there already)
                    ev, key = routed, natural_key(routed)
                    if self._exists(key):
                        self.report.present += 1
                        continue
            if type(ev).__struct_config__.tag == "response" and ev.respondent is not None:
                self.privacy.warn(f"{EVENTS}[{number - 1}]" if source == EVENTS else f"{source}:{number}", ev)
            self._accept(ev, key)
        if self.pending:
            if self.privacy.anonymous:  # (the bulk of every ingest: no anonymous round open, no scan)
                self.privacy.shuffle(self.pending, self.pending_keys, [
                    i for i, r in enumerate(self.pending) if self.privacy.is_anonymous(r.event)])
            if self.hold is not None:  # the link's marks taken, its responses held (or refused)
                self.hold.take(self)
            self.store.append(self.pending, self.pending_keys)

    def _problem(self, source: str, number: int, message: str) -> None:
        where = f"{EVENTS}[{number - 1}]" if source == EVENTS else f"{source}:{number}"
        self.problems.append((source, number, f"{where}: {message}"))

    def _accept(self, ev: Event, key: str) -> None:
        if isinstance(ev, ResponseRecorded):
            self.touched.add(ev.ruleset)
            if self.adoptions.in_force(ev.ruleset, ev.period) is None:
                self._implicit_adoption(ev.ruleset, ev.period)
        elif isinstance(ev, (ResponseCorrected, ResponseWithdrawn)):
            if (target := self._response(ev.response)) is not None:
                self.touched.add(target.ruleset)
            if isinstance(ev, ResponseWithdrawn):
                self.withdrawn[ev.response] = ev.id
        if isinstance(ev, ParametersAdopted):
            self.adoptions.add(ev.ruleset, ev.id, ev.from_, self._position(), ev.params, ev.params_version)
        if isinstance(ev, ComplaintClosed):
            self.closed[ev.complaint] = ev.id
        if isinstance(ev, RectificationUpdated):
            self.rect_state[ev.rectification] = (ev.status, ev.date)
        if isinstance(ev, RoundClosed) and ev.round in self.privacy.anonymous.values():
            anonymous.release_round(self, ev.round)  # its held returns go before its closing
        self.privacy.note(ev)
        self.known[key] = ev
        target = self._response(ev.response) if isinstance(ev, ResponseCorrected) else None
        person = isinstance(ev, UnitDeclared) and self.org.kinds.get(ev.id) == "person"
        at = anonymous.day_of(self.at) if self.privacy.is_anonymous(ev) else self.at
        self.pending.append(Recorded(at, self.privacy.seal(ev, target, person), self.actor))
        self.pending_keys.append(key)
        self.report.appended += 1

    def _position(self) -> int:
        self.next_position += 1
        return self.next_position

    def _implicit_adoption(self, ruleset: str, period: str) -> None:
        """Record the shipped defaults for a rule set used with no adoption in force
        (``from`` = the earliest period seen, lowered by later lines of the same call)."""
        rs = self.rulesets[ruleset]
        mine = self.implicit.get(ruleset)
        if mine is not None:
            old: ParametersAdopted = mine[0].event
            lowered = msgspec.structs.replace(old, from_=period)
            recorded = Recorded(self.at, lowered, self.actor)
            if mine[0] in self.pending:
                self.pending[self.pending.index(mine[0])] = recorded  # same key: pending_keys unchanged
            else:
                self.store.replace_uncommitted(recorded)
            mine[0] = recorded
            self.adoptions.add(ruleset, old.id, period, self._position(), old.params, old.params_version)
            self.known[natural_key(lowered)] = lowered
            return
        taken = {a.id for a in self.adoptions.of(ruleset)}
        id_ = "default" if "default" not in taken else f"default-{period}"
        params = guarded(rs, "completing its shipped parameters", rs.complete_params, {}, f"{ruleset} defaults")
        ev = ParametersAdopted(id=id_, ruleset=ruleset, from_=period, params=params,
                               note="implicit adoption of the shipped defaults on first use",
                               params_version=rs.params_version)
        recorded = Recorded(self.at, ev, self.actor)
        self.implicit[ruleset] = [recorded]
        self.pending.append(recorded)
        self.pending_keys.append(natural_key(ev))
        self.adoptions.add(ruleset, id_, period, self._position(), params, rs.params_version)
        self.known[natural_key(ev)] = ev
        self.report.appended += 1
        self.report.implicit_adoptions.append(f"{ruleset}:{id_}")

    # -- validation ----------------------------------------------------------------

    def _transform(self, ev: ParametersAdopted) -> ParametersAdopted:
        """The form the log stores: an adoption carries complete parameters — its ``params``
        merged over those in force at its ``from`` (this call's earlier lines included), or the
        shipped defaults — in the rule set's current parameter version."""
        rs = self.rulesets.get(ev.ruleset)
        if rs is None:
            return ev
        version = ev.params_version or rs.params_version
        if version != rs.params_version:
            raise InvalidParams([f"field `params_version`: parameters written for version {version}; {rs.id} reads "
                                 f"version {rs.params_version}: write them for that version"])
        in_force = self.adoptions.in_force(ev.ruleset, ev.from_)
        base = in_force.data if in_force is not None and ev.ruleset not in self.adoptions.failed else None
        try:
            complete = rs.complete_params(ev.params, "params", base, ev.replace)
        except InvalidParams:
            raise
        except Exception as e:  # noqa: BLE001 — the plugin's own code failed, not the input
            raise RuleSetFailed(rs.id, f"completing the parameters of adoption {ev.id}",
                                f"raised {type(e).__name__}: {e}") from e
        return msgspec.structs.replace(ev, params=complete, params_version=rs.params_version)

    def _same_adoption(self, stored: ParametersAdopted, ev: ParametersAdopted) -> bool:
        """Re-sending an adoption appends nothing when its parameters, merged over what the log
        stores for it, change nothing (and its month and note are the same)."""
        rs = self.rulesets.get(ev.ruleset)
        if rs is None or (stored.from_, stored.note) != (ev.from_, ev.note):
            return False
        if (ev.params_version or stored.params_version or 1) != (stored.params_version or 1):
            return False
        if (stored.params_version or 1) != rs.params_version:  # stored for an older version: compare as given
            return merge(stored.params, ev.params, ev.replace) == stored.params
        return rs.complete_params(ev.params, "params", stored.params, ev.replace) == stored.params

    def _ruleset_problem(self, ruleset: str | None) -> str | None:
        if ruleset is None or ruleset in self.rulesets:
            return None
        installed = ", ".join(sorted(self.rulesets)) or "none"
        return f"field `ruleset`: rule set {ruleset!r} is not installed (installed: {installed})"

    def _response(self, response_id: str) -> ResponseRecorded | None:
        key = f"response:{response_id}"
        if key not in self.known:
            found = self.store.get([key])
            if key in found:
                self.known[key] = found[key].event
        ev = self.known.get(key)
        return ev if isinstance(ev, ResponseRecorded) else None

    def _withdrawn_by(self, response_id: str) -> str | None:
        if response_id in self.withdrawn:
            return self.withdrawn[response_id]
        state = load_states(self.store.conn, [response_id]).get(response_id)
        return state.withdrawn.id if state is not None and state.withdrawn is not None else None

    def _exists(self, key: str) -> bool:
        if key not in self.known:
            found = self.store.get([key])
            if key in found:
                self.known[key] = found[key].event
        return key in self.known

    def _check(self, ev: Event) -> list[str]:
        if type(ev).__struct_config__.tag == "response":  # the bulk of every file: no isinstance chain
            if ev.ruleset not in self.rulesets:
                return [self._ruleset_problem(ev.ruleset)]
            return self.privacy.problems(ev) or self._answers_problems(ev)
        if isinstance(ev, UnitDeclared):
            return self._unit_problems(ev)
        if isinstance(ev, (ResponseCorrected, ResponseWithdrawn)):
            target = self._response(ev.response)
            if target is None:
                return [f"field `response`: no response {ev.response!r} in the log or earlier in the input"]
            if target.ruleset not in self.rulesets:
                what = "corrected" if isinstance(ev, ResponseCorrected) else "withdrawn"
                return [f"field `response`: response {ev.response!r} belongs to rule set {target.ruleset!r}, which "
                        f"is not installed, so it cannot be {what} now (install the rule set and ingest again)"]
            by = self._withdrawn_by(ev.response)
            if by is not None:
                what = "corrected" if isinstance(ev, ResponseCorrected) else "withdrawn again"
                return [f"field `response`: response {ev.response!r} was withdrawn by {by!r} and cannot be {what}"]
            if isinstance(ev, ResponseCorrected):
                corrected = msgspec.structs.replace(target, answers=ev.answers, reasons=ev.reasons,
                                                    comment=ev.comment)
                return self._answers_problems(corrected)
            return []
        if isinstance(ev, ParametersAdopted):
            return [p] if (p := self._ruleset_problem(ev.ruleset)) else []
        problems = []
        if isinstance(ev, (ComplaintFiled, RectificationRequired)):
            if (p := self._ruleset_problem(ev.ruleset)):
                problems.append(p)
            if ev.response and self._response(ev.response) is None:
                problems.append(f"field `response`: no response {ev.response!r} in the log or earlier in the input")
        if isinstance(ev, RectificationRequired) and ev.complaint and not self._exists(f"complaint:{ev.complaint}"):
            problems.append(f"field `complaint`: no complaint {ev.complaint!r} in the log or earlier in the input")
        if isinstance(ev, ComplaintClosed):
            by = self._closed_by(ev.complaint)
            if by is not None:
                problems.append(f"field `complaint`: {ev.complaint!r} was already closed by {by!r}")
            elif ev.complaint.startswith("remedy:"):
                if self._response(ev.complaint.removeprefix("remedy:")) is None:
                    problems.append(f"field `complaint`: remedy case {ev.complaint!r} names no response in the log")
            elif not self._exists(f"complaint:{ev.complaint}"):
                problems.append(f"field `complaint`: no complaint {ev.complaint!r} in the log or earlier in the input")
        if isinstance(ev, (RoundOpened, ResultsAnnounced)):
            if (p := self._ruleset_problem(ev.ruleset)):
                problems.append(p)
            if isinstance(ev, RoundOpened) and bool(ev.assignments) == (ev.rule is not None):
                problems.append("field `assignments`: give who rates whom as `assignments` or as a `rule`, one of them")
        if isinstance(ev, (DealingsDeclined, RoundClosed)):
            if not self._exists(f"round:{ev.round}"):
                problems.append(f"field `round`: no round {ev.round!r} in the log or earlier in the input")
            elif isinstance(ev, DealingsDeclined) and self._exists(f"round_closed:{ev.round}"):
                problems.append(f"field `round`: round {ev.round!r} is closed")
        if isinstance(ev, RectificationUpdated):
            if not self._exists(f"rectification:{ev.rectification}"):
                problems.append(f"field `rectification`: no rectification {ev.rectification!r} in the log or "
                                "earlier in the input")
            else:
                problems += self._lifecycle_problems(ev)
        return problems

    #: rectification life cycle: open → completed → verified / ineffective; ineffective → completed again;
    #: open or ineffective → cancelled; nothing after verified or cancelled.
    NEXT = {"open": ("completed", "cancelled"), "completed": ("verified", "ineffective"),
            "ineffective": ("completed", "cancelled"), "verified": (), "cancelled": ()}

    def _lifecycle_problems(self, ev: RectificationUpdated) -> list[str]:
        state = self.rect_state.get(ev.rectification)
        if state is None:
            row = self.store.conn.execute(
                "SELECT status, date FROM rm_rectification_updates WHERE rectification = ? ORDER BY position DESC "
                "LIMIT 1", (ev.rectification,)).fetchone()
            state = tuple(row) if row else ("open", "")
        status, last_date = state
        allowed = self.NEXT[status]
        if ev.status not in allowed:
            expected = " or ".join(allowed) if allowed else "nothing more (the life cycle has ended)"
            return [f"field `status`: rectification {ev.rectification!r} is {status}; expected {expected}, "
                    f"got {ev.status!r}"]
        if ev.date < last_date:
            return [f"field `date`: {ev.date} is before the previous update of {ev.rectification!r} ({last_date})"]
        return []

    def _unit_problems(self, ev: UnitDeclared) -> list[str]:
        """A parent that would put the unit in a cycle (in any month) is refused; otherwise the
        membership joins the org chart the rest of this call is checked against."""
        if ev.parent == ev.id:
            return [f"field `parent`: a unit cannot be its own parent ({ev.id!r})"]
        before = self.org.history(ev.id)
        self.org.add(ev.id, ev.from_ or "", ev.name, ev.kind, ev.parent)
        cycle = self.org.cycle(ev.id) if ev.parent else None
        if cycle:
            self.org.restore(ev.id, before)
            return [f"field `parent`: {ev.parent!r} would make a cycle in the org chart: {' → '.join(cycle)}"]
        return []

    def _closed_by(self, case: str) -> str | None:
        if case in self.closed:
            return self.closed[case]
        row = self.store.conn.execute("SELECT id FROM rm_closures WHERE complaint = ?", (case,)).fetchone()
        return row[0] if row else None

    def _item_ids(self, ev: ResponseRecorded) -> ResponseRecorded:
        """A sheet's response whose answers (and reasons) name items by their label (产品质量) with
        the item ids of the parameters in force; any other response as it is."""
        adoption = self.adoptions.in_force(ev.ruleset, ev.period)
        cache_key = (ev.ruleset, adoption.id if adoption else None)
        labels = self._labels.get(cache_key)
        if labels is None:
            rs = self.rulesets[ev.ruleset]
            try:
                params = adoption.params if adoption else self._defaults(rs)
                where = "reading item labels"
                named = checked_labels(rs, where, guarded(rs, where, rs.item_labels, params))
            except RuleSetFailed:
                named = {}
            labels = self._labels[cache_key] = {label: item for item, label in named.items() if label not in named}
        if not labels or not any(k in labels for k in (*ev.answers, *ev.reasons)):
            return ev
        return msgspec.structs.replace(ev, answers={labels.get(k, k): v for k, v in ev.answers.items()},
                                       reasons={labels.get(k, k): v for k, v in ev.reasons.items()})

    def _answers_problems(self, ev: ResponseRecorded) -> list[str]:
        rs = self.rulesets[ev.ruleset]
        if ev.ruleset in self.adoptions.failed:
            return [f"field `ruleset`: rule set {rs.id} cannot be used: {self.adoptions.failed[ev.ruleset]}"]
        adoption = self.adoptions.in_force(ev.ruleset, ev.period)
        where = f"checking response {ev.id}"
        try:
            params = adoption.params if adoption else self._defaults(rs)
            found = guarded(rs, where, rs.check_response, ev, params)
            if not isinstance(found, (list, tuple)) or not all(
                    isinstance(p, tuple) and len(p) == 2 and all(isinstance(x, str) for x in p) for p in found):
                raise RuleSetFailed(rs.id, where, f"check_response: expected a list of Problem(field, message), "
                                    f"got {found!r:.80}")
        except RuleSetFailed as e:
            return [str(e)]
        return [f"field `{p[0]}`: {p[1]}" for p in found]

    def _defaults(self, rs: RuleSet) -> Any:
        return guarded(rs, "decoding its shipped parameters", rs.decode_params, rs.default_params(),
                       f"{rs.id} defaults")
