"""The rule-set contract: what the engine asks of a scoring method.

A rule set is an object of a :class:`RuleSet` subclass, handed to the engine
by a plugin (``csat_rulesets`` hook, :mod:`csat.plugins.hookspecs`). The engine
owns events, storage, grouping, exclusions common to every rule set, roll-up
scheduling, rounding of ``score`` and explanations; the rule set owns its
parameters, its input checks and its formulas.

Life of a score: responses credited to (rule set, subject, month) are loaded;
withdrawn, non-completed and all-N/A responses are excluded by the engine;
:meth:`RuleSet.score_month` turns the rest into one :class:`Figure` per metric;
:meth:`RuleSet.sequence` may adjust a subject's months in order (bonuses,
statuses over consecutive months); :meth:`RuleSet.roll_up` makes quarter and
year figures from the month figures.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar, Literal, NamedTuple

import msgspec

from ..log.events import NA, Answer, ResponseRecorded
from ..log import personal
from .numbers import dec, mean, plain, publish
from ..errors import InvalidParams
from .params import canonical, decode, finite_problems, merge, range_problems, read_toml, replace_problems


#: Whether an answer recorded after its round's due date counts in a score: a rule set's parameter
#: ``late_answers`` of this type (default ``"count"``) lets the adopters choose; with ``"exclude"``
#: the engine excludes late responses (``MonthInput.excluded``, the reason saying so) before the rule
#: set sees them. A rule set whose parameters have no ``late_answers`` counts every answer.
LateAnswers = Literal["count", "exclude"]

#: A respondent as a rule set may compare it: the person's stable pseudonym when sealed (respondents
#: reach rule sets sealed, ``docs/events.md`` §7), else the value as given.
person_of = personal.person_of


class Problem(NamedTuple):
    """An input problem found by a rule set: the field (``answers.q1``) and what was expected."""

    field: str
    message: str


class Amendment(msgspec.Struct, frozen=True, array_like=True):
    """A correction or withdrawal applied to a response, as the projection keeps it."""

    position: int
    type: str
    id: str
    reason: str


class ResponseState(msgspec.Struct, frozen=True):
    """A response as it stands after its corrections and withdrawal."""

    id: str
    position: int
    ruleset: str
    period: str
    subject: str
    answers: dict[str, Answer]
    form: str | None = None
    rater: str | None = None
    respondent: str | None = None
    roles: dict[str, list[str]] = {}
    status: str = "completed"
    reasons: dict[str, str] = {}
    comment: str | None = None
    corrections: list[Amendment] = []
    withdrawn: Amendment | None = None
    #: when the response was recorded (the log's time, UTC ``YYYY-MM-DDTHH:MM:SS.ffffffZ``; a
    #: correction keeps it): whether it came in after its round's due date
    recorded: str | None = None

    @classmethod
    def of(cls, event: ResponseRecorded, position: int, recorded: str | None = None) -> "ResponseState":
        return cls(id=event.id, position=position, ruleset=event.ruleset, period=event.period,
                   subject=event.subject, answers=event.answers, form=event.form, rater=event.rater,
                   respondent=event.respondent, roles=event.roles, status=event.status,
                   reasons=event.reasons, comment=event.comment, recorded=recorded or None)

    def answered(self) -> dict[str, Answer]:
        """The answers that are not N/A."""
        return {k: v for k, v in self.answers.items() if v != NA}


class ItemPoints(NamedTuple):
    """One item's answer in one response on the item's own scale: ``points`` out of ``possible``
    (``0 ≤ points ≤ possible``, ``possible > 0``, both Decimal). Ranks items, never scores subjects."""

    points: Decimal
    possible: Decimal


class Choice(NamedTuple):
    """An answer a questionnaire item accepts: ``value`` as stored in ``answers``, ``label`` as
    people read it (满意 / satisfied)."""

    value: str
    label: str


@dataclass(frozen=True)
class QuestionItem:
    """One item of a rule set's questionnaire.

    ``kind`` is ``choice`` (one of ``choices``), ``number`` (from ``minimum`` to ``maximum``;
    ``whole`` for counts) or ``yesno``. ``na``: "不知道/不适用" (``N/A``) may be answered.
    ``reason_for``: the choice values whose answer needs a reason (``reasons.<item>``).
    ``form``: the form the item belongs to, for rule sets with several forms (else None)."""

    id: str
    label: str
    kind: str = "choice"
    choices: tuple[Choice, ...] = ()
    minimum: Decimal | None = None
    maximum: Decimal | None = None
    whole: bool = False
    na: bool = True
    reason_for: tuple[str, ...] = ()
    form: str | None = None


@dataclass(frozen=True)
class Questionnaire:
    """What a rater is asked, as :meth:`RuleSet.questionnaire` gives it for some parameters:
    its ``items`` in order; ``forms`` the values of a response's ``form`` field, when the rule set
    has several forms (each item names its own); ``rater_required``: a response must name the
    rating unit."""

    items: tuple[QuestionItem, ...]
    forms: tuple[str, ...] = ()
    rater_required: bool = False


class Credit(NamedTuple):
    """A response credited to ``subject`` in role ``role`` (``subject``,
    ``roles.workshop`` …), through member ``via`` when credited up an org chain."""

    subject: str
    role: str = "subject"
    via: str = ""


@dataclass(frozen=True)
class Adoption:
    """The parameters in force: the adoption event's id, position and hash, and the decoded params.

    ``data`` is the complete parameters as plain data in the rule set's current parameter version
    (what a later revision merges over); ``upgraded_from`` the version they were stored in, when
    the rule set upgraded them on reading (the stored event is never rewritten).
    """

    ruleset: str
    id: str
    from_: str
    position: int
    hash: str
    params: Any
    data: dict[str, Any] | None = None
    upgraded_from: int | None = None


@dataclass
class Counted:
    """A response that counts, with the credit that brought it to this subject."""

    response: ResponseState
    credit: Credit


@dataclass
class Excluded:
    """A response credited here that counts for nothing, and why (withdrawn, not completed, all N/A)."""

    response: ResponseState
    why: str
    credit: Credit


@dataclass
class CaseEvent:
    """A complaint about the subject in the month, or a rectification of the subject due in the month,
    with what later events did to it (``closure`` of a complaint; ``updates`` of a rectification, in log order).
    ``subject`` is the unit it was filed against (a unit below the one scored, in ``MonthInput.below``)."""

    kind: str                      # "complaint" or "rectification"
    id: str
    position: int
    severity: str | None = None
    due: str | None = None
    closure: tuple[str, str, str, int] | None = None          # (closure id, outcome, date, position)
    updates: list[tuple[str, str, str, int]] = field(default_factory=list)  # (update id, status, date, position)
    subject: str = ""


@dataclass
class MonthInput:
    """Everything a rule set scores one subject-month from.

    ``kind`` is the subject's unit kind from ``unit`` events (None if undeclared). For rule sets
    with ``uses_cases``, ``cases`` are the subject's own complaints and rectifications of the
    month, and ``below`` those of every unit below it in the org chart as of the month (wards
    under a department), each naming its unit in ``CaseEvent.subject``: the rule set decides
    whether a department answers for its wards' complaints.
    """

    ruleset: str
    subject: str
    month: str
    adoption: Adoption
    counted: list[Counted]
    excluded: list[Excluded]
    kind: str | None = None
    cases: list[CaseEvent] = field(default_factory=list)  # only for rule sets with ``uses_cases``
    #: withdrawn responses credited here: they count nowhere (not in ``excluded`` either, so no
    #: rule set counts them as failed); kept only so that explanations can list them
    withdrawn: list[Excluded] = field(default_factory=list)
    #: the cases of the units below the subject (only for rule sets with ``uses_cases``)
    below: list[CaseEvent] = field(default_factory=list)

    @property
    def params(self) -> Any:
        return self.adoption.params


class Figure(msgspec.Struct):
    """One metric's result for a subject and period.

    ``score`` is unrounded (the engine rounds it to ``precision``); ``extras``
    are the rule set's published extra keys, already rounded where published;
    ``state`` holds unrounded values for :meth:`RuleSet.sequence` and
    :meth:`RuleSet.roll_up` (stored with the row, never published).
    """

    metric: str
    score: Decimal | None
    responses: int
    grade: str | None = None
    grade_label: str | None = None
    extras: dict[str, Any] = {}
    state: dict[str, Any] = {}


@dataclass
class Step:
    label: str
    formula: str
    value: Any
    metric: str | None = None  # the metric a step belongs to; None: every metric


@dataclass
class Trace:
    """Collects explanation steps and the use of each response while a figure is computed.

    Rule sets call ``trace.step`` only behind ``if trace:`` so scoring without
    an explanation pays nothing for formatting.
    """

    steps: list[Step] = field(default_factory=list)
    notes: dict[tuple[str | None, str], str] = field(default_factory=dict)  # (metric, response id) -> why not
    prefix: str = ""
    case_notes: dict[tuple[str | None, str], tuple[bool, str]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return True

    def step(self, label: str, formula: str, value: Any, metric: str | None = None) -> None:
        self.steps.append(Step(self.prefix + label, formula, value, metric))

    def exclude(self, response: ResponseState, why: str, metric: str | None = None) -> None:
        """Note that ``response`` did not count (for ``metric`` only, when given)."""
        self.notes[(metric, response.id)] = why

    def why_not(self, response_id: str, metric: str) -> str | None:
        return self.notes.get((metric, response_id)) or self.notes.get((None, response_id))

    def case(self, event_id: str, used: bool, why: str, metric: str | None = None) -> None:
        """Say what a complaint, closure, rectification or update did to ``metric``."""
        self.case_notes[(metric, event_id)] = (used, why)


class RuleSet:
    """Base class of every rule set; subclass it and hand an instance to the engine.

    Class attributes to set: ``id`` (stable, e.g. ``airline-1000``),
    ``version``, ``title``, ``metrics``, ``params_type`` (a msgspec Struct with
    ``forbid_unknown_fields=True``) and ``defaults_path`` (the shipped TOML).
    """

    id: ClassVar[str]
    version: ClassVar[str] = "1"
    title: ClassVar[str] = ""
    metrics: ClassVar[tuple[str, ...]] = ()
    params_type: ClassVar[type]
    defaults_path: ClassVar[str]
    #: True when :meth:`sequence` does something (months depend on earlier months).
    sequential: ClassVar[bool] = False
    #: True when :meth:`credits` follows the org chart or the parameters: responses are
    #: re-credited when a ``unit`` event or an adoption changes what they credit.
    uses_org: ClassVar[bool] = False
    #: True when complaints and rectifications feed the scores (``MonthInput.cases``).
    uses_cases: ClassVar[bool] = False
    #: The version of the parameter schema. Raise it when ``params_type`` changes so that stored
    #: parameters no longer decode (a new required key, a renamed table), and implement
    #: :meth:`upgrade_params` from every older version.
    params_version: ClassVar[int] = 1

    # -- parameters ----------------------------------------------------------

    def default_params(self) -> dict[str, Any]:
        """The shipped defaults as plain data (read once from ``defaults_path``; do not mutate)."""
        cached = self.__dict__.get("_defaults")
        if cached is None:
            cached = self.__dict__["_defaults"] = read_toml(self.defaults_path)
        return cached

    def decode_params(self, data: dict[str, Any], source: str = "params") -> Any:
        """Complete parameters (plain data) to the typed ``params_type``; raises InvalidParams."""
        params = decode(self.params_type, data, source)
        problems = finite_problems(params) or self.check_params(params)  # (nan compares by raising)
        if problems:
            raise InvalidParams([f"{source}: {p}" for p in problems])
        return params

    def complete_params(self, data: dict[str, Any], source: str = "params", base: dict[str, Any] | None = None,
                        replace: Sequence[str] = ()) -> dict[str, Any]:
        """``data`` merged over ``base`` (complete parameters; default the shipped defaults), the
        tables named in ``replace`` taken whole, validated, as the plain data an adoption stores."""
        problems = replace_problems(data, replace)
        if problems:
            raise InvalidParams([f"{source}: {p}" for p in problems])
        params = self.decode_params(merge(self.default_params() if base is None else base, data, replace), source)
        problems = range_problems(params) + self.check_ranges(params)
        if problems:
            raise InvalidParams([f"{source}: {p}" for p in problems])
        return canonical(params)

    def upgrade_params(self, data: dict[str, Any], from_version: int) -> dict[str, Any]:
        """Complete parameters stored under ``from_version`` (plain data), as this version's.

        Called when an adoption recorded by an older version of the rule set is read; the
        result is decoded and checked like any parameters. The stored event is never
        rewritten: a replay of the old log gives the same figures for ever. Default: no
        upgrade exists (only version 1).
        """
        raise InvalidParams([f"parameters of version {from_version} cannot be read by {self.id} "
                             f"version {self.params_version} (the rule set has no upgrade_params for them)"])

    def check_params(self, params: Any) -> list[str]:
        """Checks beyond the schema (``key: what was expected``), whenever parameters are decoded
        (stored adoptions too); none by default."""
        return []

    def check_ranges(self, params: Any) -> list[str]:
        """Ranges of new parameters (``key: expected …``, :func:`~csat.engine.scoring.params.outside`),
        checked before anything is appended, never on adoptions already in the log; the engine
        adds the common ones (``precision`` 0 to 10, numbers within ±10¹²). Default: none."""
        return []

    def per_params(self, name: str, params: Any, build: Callable[[Any], Any]) -> Any:
        """``build(params)``, computed once per parameters object (lookup tables and the like)."""
        cache = self.__dict__.setdefault(f"_per_params_{name}", {})
        hit = cache.get(id(params))
        if hit is None or hit[0] is not params:
            hit = cache[id(params)] = (params, build(params))
        return hit[1]

    #: the keys :meth:`remembered` keeps per name and parameters (then it starts afresh)
    REMEMBERED: ClassVar[int] = 20_000

    def remembered(self, name: str, params: Any, key: Any, compute: Callable[[], Any]) -> Any:
        """``compute()``, remembered per parameters object under ``key``: what a response's answers
        alone decide (a month repeats a few hundred answer patterns over thousands of
        responses), computed once per pattern. At most :attr:`REMEMBERED` keys are kept per name
        and parameters, so free-text or numeric answers cannot grow it without bound.

        Keys are compared with ``==``, under which ``90 == 90.0``: key answers by
        :func:`answers_key`, which tells them apart (their digits differ), never by
        ``tuple(answers.items())``."""
        memo = self.per_params(name, params, lambda p: {})
        if key in memo:
            return memo[key]
        if len(memo) >= self.REMEMBERED:
            memo.clear()
        value = memo[key] = compute()
        return value

    def declared_metrics(self, params: Any) -> tuple[str, ...]:
        """The metrics this rule set publishes under ``params``: a figure under any other name
        (a typo such as ``satisfation``) is refused at the boundary. Default: :attr:`metrics`;
        a rule set whose metrics are parameter data returns those."""
        return tuple(self.metrics)

    # -- input -----------------------------------------------------------------

    def check_response(self, response: ResponseRecorded, params: Any) -> list[Problem]:
        """Problems with a response's answers under ``params``; none means it is accepted."""
        return []

    def credits(self, response: ResponseState, params: Any, chain: Callable[[str, str], list[str]]) -> list[Credit]:
        """The subjects a response is credited to. Default: its ``subject``.

        ``chain(unit, month)`` gives the unit's ancestors as of that month,
        nearest first, for rule sets that credit up an org chart.
        """
        return [Credit(response.subject)]

    def credit_params(self, params: Any) -> Any:
        """The part of the parameters :meth:`credits` depends on (compared between adoptions:
        responses are re-credited only when it changes). Default: none."""
        return None

    def remedy(self, response: ResponseState, params: Any) -> str | None:
        """Why a response opens a remedy case ``remedy:<response id>`` (CS补救), or None.

        Called for completed, non-withdrawn responses whenever they change; the
        case is derived by the projection, never written to the log.
        """
        return None

    # -- items -----------------------------------------------------------------

    def item_points(self, response: ResponseState, params: Any) -> dict[str, ItemPoints]:
        """Each answered item of a counted response on the item's own scale, for the ranking of the
        weakest items (``csat items``, ``csat report``): the engine pools them over the period's
        responses (each response once, however many subjects it is credited to) as
        ``100 × Σ points / Σ possible``. Never part of a published score.

        Leave out N/A and anything the parameters in force do not score. Default: no items (the
        rule set takes no part in item rankings).
        """
        return {}

    def item_labels(self, params: Any) -> dict[str, str]:
        """Item id → the label people know it by (产品质量), from the parameters in force. Default:
        the ``label`` of each entry of a ``params.items`` table, where it has one. Sheets may head
        their columns with these labels."""
        items = getattr(params, "items", None)
        if not isinstance(items, dict):
            return {}
        return {name: item.label for name, item in items.items()
                if isinstance(getattr(item, "label", None), str) and item.label}

    def questionnaire(self, params: Any) -> Questionnaire | None:
        """The questionnaire raters answer under ``params``: each item's id, label, kind of answer,
        accepted answers, whether N/A is allowed and which answers need a reason. Answers built
        from it pass :meth:`check_response` (the conformance kit checks that). Shown by ``csat
        rulesets NAME``; forms and the web front are made from it. Default: None (no
        questionnaire published)."""
        return None

    # -- scoring ---------------------------------------------------------------

    def score_month(self, month: MonthInput, trace: Trace | None) -> list[Figure]:
        """One Figure per metric for the subject-month.

        Called whenever something that is not withdrawn is credited to the
        subject-month, even when every response was excluded (``month.counted``
        empty): return no figure then, unless the rule set publishes something
        about the excluded ones. Withdrawn responses are in neither list.
        """
        raise NotImplementedError

    def sequence(self, months: list[tuple[str, Figure]], params_of: Callable[[str], Any],
                 trace: Trace | None = None, focus: str | None = None) -> list[tuple[str, Figure]]:
        """Adjust a subject's month figures of one metric in month order; unchanged by default.

        ``focus`` names the month being explained, when ``trace`` is given.
        """
        return months

    def roll_up(self, period: str, metric: str, months: list[tuple[str, Figure]], params: Any,
                trace: Trace | None) -> Figure | None:
        """The quarter or year figure from the month figures of one metric. Default: mean of months."""
        return mean_of_months(period, metric, months, trace, getattr(params, "precision", 2))


def mean_of_months(period: str, metric: str, months: Sequence[tuple[str, Figure]], trace: Trace | None,
                   precision: int, keys: Sequence[str] = ()) -> Figure | None:
    """A roll-up as the mean of the monthly unrounded scores (``state["score"]``), and
    likewise of ``state[key]`` for each of ``keys`` (published as extras, rounded)."""
    scored = [(m, f) for m, f in months if f.state.get("score") is not None]
    if not scored:
        return None
    values = [dec(f.state["score"]) for _, f in scored]
    score = mean(values)
    if trace:
        trace.step(f"{period} {metric}", "mean of the monthly scores of the months that have one: ("
                   + " + ".join(f"{m} {plain(v)}" for (m, _), v in zip(scored, values))
                   + f") / {len(values)}", score)
    extras: dict[str, Any] = {}
    state: dict[str, Any] = {"score": score}
    for key in keys:
        vals = [dec(f.state[key]) for _, f in scored if f.state.get(key) is not None]
        if vals:
            state[key] = mean(vals)
            extras[key] = publish(state[key], precision)
            if trace:
                trace.step(f"{period} {key}", "mean of the monthly values: (" + " + ".join(map(plain, vals))
                           + f") / {len(vals)}", state[key])
    return Figure(metric=metric, score=score, responses=sum(f.responses for _, f in scored),
                  extras=extras, state=state)


class MinGrade(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A grade reached from a minimum score (e.g. 甲 from 90): the shape of ``[[grades]]`` with ``min``."""

    id: str
    min: Decimal
    label: str = ""


def first_grade(grades: Sequence[MinGrade], score: Decimal) -> MinGrade:
    """The first grade whose ``min`` ≤ the (unrounded) score; grades are listed best first."""
    return next(g for g in grades if g.min <= score)


def threshold_problems(grades: Sequence[MinGrade], key: str = "grades") -> list[str]:
    """Grades by minimum must be listed best first and end at 0, so every score gets one."""
    mins = [g.min for g in grades]
    if not mins or mins != sorted(mins, reverse=True) or mins[-1] != 0:
        return [f"key `{key}`: expected descending min, the last min = 0"]
    return []


def answers_key(answers: dict[str, Answer]) -> tuple[Any, ...]:
    """A response's answers as a key for :meth:`RuleSet.remembered`: equal only for the same items
    answered alike, value and type — ``90`` and ``90.0`` are equal in Python and hash alike, but a
    figure computed from one does not have the other's digits."""
    items = tuple(answers.items())
    for value in answers.values():
        if type(value) is not str:
            return items + tuple(type(v) for v in answers.values())
    return items


def module_file(module_file_path: str, name: str) -> str:
    """A file beside a module, e.g. the shipped TOML of a rule set."""
    return os.path.join(os.path.dirname(os.path.abspath(module_file_path)), name)
