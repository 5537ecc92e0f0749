"""Events: the facts csat records, as frozen msgspec Structs.

Each event type carries an explicit, stable tag — the ``type`` of the ingest
format (``events.md`` §2) — never its class name. Two decoders exist:

- :data:`INPUT` decodes user input strictly: unknown fields are errors and
  periods, dates and enumerations are checked (:func:`decode_line`);
- stored events are decoded leniently (see :mod:`csat.engine.log.store`), so an
  older csat can read a log written by a newer one.

Every event has a *natural key* (:func:`natural_key`); the log holds one event
per key, which is what makes ingest idempotent.
"""
from __future__ import annotations

import json
import re
from typing import Any, Literal, Union

import msgspec

from ..periods import date_problem, month_problem

Answer = str | int | float
NA = "N/A"

RESPONSE_STATUSES = ("completed", "refused", "unreachable")
RECTIFICATION_STATUSES = ("completed", "verified", "ineffective", "cancelled")
CLOSE_OUTCOMES = ("resolved", "rejected")


class Event(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, tag_field="type"):
    """Base of every event: an ``id`` and the ``type`` tag."""

    id: str


class UnitDeclared(Event, frozen=True, tag="unit"):
    """A unit (department, workshop, team, person, supplier) and, from a month on, its parent."""

    name: str | None = None
    kind: str | None = None
    parent: str | None = None
    from_: str | None = msgspec.field(default=None, name="from")


class ResponseRecorded(Event, frozen=True, tag="response"):
    """A filled questionnaire or callback about ``subject`` in ``period``."""

    ruleset: str
    period: str
    subject: str
    answers: dict[str, Answer]
    form: str | None = None
    rater: str | None = None
    respondent: str | None = None
    roles: dict[str, list[str]] = {}
    status: Literal["completed", "refused", "unreachable"] = "completed"
    reasons: dict[str, str] = {}
    comment: str | None = None
    #: the day the return was received (``YYYY-MM-DD``), when it was keyed in later: a round's
    #: lateness and ``round status --as-of`` go by it (else by the recording time); within the
    #: period's first day and the day it is recorded (checked at ingest)
    received: str | None = None


class ResponseCorrected(Event, frozen=True, tag="correction"):
    """Replaces the answers, reasons and comment of an earlier response."""

    response: str
    answers: dict[str, Answer]
    reason: str
    reasons: dict[str, str] = {}
    comment: str | None = None


class ResponseWithdrawn(Event, frozen=True, tag="withdrawal"):
    """Voids an earlier response."""

    response: str
    reason: str


class ComplaintFiled(Event, frozen=True, tag="complaint"):
    """A complaint about ``subject`` (客户投诉 / 来料抱怨)."""

    subject: str
    period: str
    text: str
    ruleset: str | None = None
    date: str | None = None
    source: str | None = None
    severity: str | None = None
    category: str | None = None
    response: str | None = None


class ComplaintClosed(Event, frozen=True, tag="complaint_closed"):
    """Closes a filed complaint or a remedy case (``remedy:<response id>``)."""

    complaint: str
    date: str
    outcome: Literal["resolved", "rejected"] = "resolved"
    note: str | None = None


class RectificationRequired(Event, frozen=True, tag="rectification"):
    """A rectification (整改 / 品质改善) due by ``due``."""

    subject: str
    period: str
    issue: str
    due: str
    ruleset: str | None = None
    complaint: str | None = None
    response: str | None = None
    item: str | None = None


class RectificationUpdated(Event, frozen=True, tag="rectification_update"):
    """A step in a rectification's life: completed, verified, ineffective or cancelled."""

    rectification: str
    status: Literal["completed", "verified", "ineffective", "cancelled"]
    date: str
    note: str | None = None


class ParametersAdopted(Event, frozen=True, tag="adoption"):
    """Binds parameters to a rule set from a month on.

    In the log ``params`` are complete: the input's ``params`` merged over the
    parameters in force at ``from`` when it was recorded (or the shipped
    defaults), the tables named in ``replace`` taken whole; ``params_version``
    is the rule set's parameter version they were written for (absent: 1).
    """

    ruleset: str
    from_: str = msgspec.field(name="from")
    params: dict[str, Any]
    note: str | None = None
    replace: list[str] = []
    params_version: int | None = None


class Assignment(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Who rates whom in a round: a rating unit, the subjects it rates, and (optionally) the
    people of it who answer (its managers)."""

    rater: str
    subjects: list[str]
    respondents: list[str] = []


class AssignmentRule(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Who rates whom by the org chart as of the round's period: every unit of kind ``raters``
    rates every unit of kind ``subjects`` (every workshop rates every department)."""

    raters: str
    subjects: str


class RoundOpened(Event, frozen=True, tag="round"):
    """An assessment round for a rule set's month: the questionnaires go out, the returns are due
    by ``due``; who rates whom as a list of ``assignments`` or as a ``rule`` over the org chart."""

    ruleset: str
    period: str
    due: str
    assignments: list[Assignment] = []
    rule: AssignmentRule | None = None
    note: str | None = None
    #: an anonymous round: its responses name no respondent, and the log keeps no trace finer
    #: than the day of when each came in (the return is still counted for the 回收率)
    anonymous: bool = False
    #: a second return for an assignment (another id, another channel) corrects the first until
    #: the due date; ``False``: it is refused, naming the first (``engine/app/returns.py``)
    changes: bool = True


class DealingsDeclined(Event, frozen=True, tag="no_dealings"):
    """A rater's word that it had no dealings with a subject in a round's month (the plant's
    "may leave it out"): neither an answer nor a missing return."""

    round: str
    rater: str
    subject: str
    reason: str | None = None


class RoundClosed(Event, frozen=True, tag="round_closed"):
    """A round closed on ``date``: no more returns are chased."""

    round: str
    date: str


class ResultsAnnounced(Event, frozen=True, tag="announcement"):
    """A rule set's figures of a month announced (公示) on ``date`` — all of them, or those of
    ``under`` and the units below it: the figures as published just before this event."""

    ruleset: str
    period: str
    date: str
    under: str | None = None
    note: str | None = None


class PersonErased(Event, frozen=True, tag="erasure"):
    """A person's personal data made unreadable on request: their key was destroyed. Names no one:
    ``key`` is the destroyed key's id (the person's pseudonym ``p-<key>``), ``fields`` how many
    sealed fields of the log it made unreadable, ``plain`` how many fields of events written
    before csat sealed personal data still hold that person's data in plain form."""

    key: str
    fields: int
    plain: int = 0


class ChainRepaired(Event, frozen=True, tag="chain_repaired"):
    """Rows csat wrote without a chain hash (a fault of csat's own) chained again by ``csat
    repair``: ``rows`` rows from ``from_position`` to ``to_position``, in the position ``ranges``
    [first, last] given; ``reason`` says why they could be. Recorded by the repair only: an
    ingest refuses the type. Nothing is projected from it."""

    from_position: int
    to_position: int
    rows: int
    reason: str
    ranges: list[list[int]] = []


EVENT_TYPES: tuple[type[Event], ...] = (
    UnitDeclared, ResponseRecorded, ResponseCorrected, ResponseWithdrawn, ComplaintFiled,
    ComplaintClosed, RectificationRequired, RectificationUpdated, ParametersAdopted,
    RoundOpened, DealingsDeclined, RoundClosed, ResultsAnnounced, PersonErased, ChainRepaired,
)
TAGS: dict[str, type[Event]] = {cls.__struct_config__.tag: cls for cls in EVENT_TYPES}
#: the event types only csat itself records, never accepted as input, and the command that records each
RECORDED_BY_CSAT: dict[str, str] = {"chain_repaired": "csat repair"}


def tag_of(event: Event) -> str:
    return type(event).__struct_config__.tag


def natural_key(event: Event) -> str:
    """The key under which the log holds ``event`` (its originator id).

    ``unit`` events are keyed by (id, from); adoptions by (rule set, id), so
    every rule set can have its own implicit ``default`` adoption.
    """
    if isinstance(event, UnitDeclared):
        return f"unit:{event.id}@{event.from_ or ''}"
    if isinstance(event, ParametersAdopted):
        return f"adoption:{event.ruleset}:{event.id}"
    if isinstance(event, RoundClosed):  # a round closes once, whatever the closing event's id
        return f"round_closed:{event.round}"
    return f"{tag_of(event)}:{event.id}"


# -- strict input -------------------------------------------------------------

_MONTH_FIELDS = ("period", "from_")
_DATE_FIELDS = ("date", "due", "received")


def _check_fields(self: Event) -> None:
    if not self.id:
        raise ValueError("field `id`: expected a non-empty string")
    for name in _MONTH_FIELDS:
        value = getattr(self, name, None)
        if value is not None and (why := month_problem(value)):
            raise ValueError(f"field `{'from' if name == 'from_' else name}`: {why}")
    for name in _DATE_FIELDS:
        value = getattr(self, name, None)
        if value is not None and (why := date_problem(value)):
            raise ValueError(f"field `{name}`: {why}")


def _strict(cls: type[Event]) -> type[Event]:
    return type(cls.__name__, (cls,), {"__post_init__": _check_fields, "__module__": __name__},
                frozen=True, forbid_unknown_fields=True)


STRICT_TYPES = tuple(_strict(cls) for cls in EVENT_TYPES if cls.__struct_config__.tag not in RECORDED_BY_CSAT)
_INPUT = msgspec.json.Decoder(Union[STRICT_TYPES])  # one reusable typed decoder
_AT = re.compile(r"^(.*?) - at `\$(.*)`$")
_TYPES_TEXT = ", ".join(t for t in TAGS if t not in RECORDED_BY_CSAT)


def pin_path(data: Any, convert: Any, message: str) -> str:
    """Replace msgspec's ``[...]`` (an unnamed dict entry) in an error's path by the
    real key, found by converting one entry at a time (error path only)."""
    m = _AT.match(message)
    if not m or "[...]" not in m.group(2):
        return message
    path = m.group(2)
    done = ""
    while "[...]" in path:
        before, after = path.split("[...]", 1)
        node = data
        for part in (done + before).lstrip("$.").split("."):
            if part and isinstance(node, dict):
                node = node.get(part)
        if not isinstance(node, dict):
            break
        culprit = None
        for key, value in node.items():
            node_backup = dict(node)
            node.clear()
            node[key] = value
            try:
                convert(data)
            except msgspec.ValidationError as e:
                if str(e) == message or "[...]" in str(e):
                    culprit = key
            finally:
                node.clear()
                node.update(node_backup)
            if culprit is not None:
                break
        if culprit is None:
            break
        done, path = f"{done}{before}.{culprit}", after
    return f"{m.group(1)} - at `${done}{path}`"


def describe_validation_error(message: str) -> str:
    """msgspec's validation message in the words of the ingest format."""
    m = _AT.match(message)
    text, path = (m.group(1), m.group(2).lstrip(".")) if m else (message, "")
    path = path.replace("[...]", ".*").lstrip(".")
    if text == "Invalid decimal string":
        text = "Expected a number"
    if text.startswith("Object missing required field "):
        field = text.removeprefix("Object missing required field ")
        if path:
            return f"field `{path}`: missing required field {field}"
        if field == "`type`":
            return f"missing required field `type` (one of {_TYPES_TEXT})"
        return f"missing required field {field}"
    if text.startswith("Object contains unknown field "):
        field = text.removeprefix("Object contains unknown field ").strip("`")
        where = f"{path}." if path else ""
        return f"unknown field `{where}{field}`"
    if path == "type" and text.startswith("Invalid value"):
        if (got := text.removeprefix("Invalid value ").strip("'")) in RECORDED_BY_CSAT:
            return f"field `type`: {got!r} events are recorded by `{RECORDED_BY_CSAT[got]}` only, never ingested"
        return f"field `type`: {text.removeprefix('Invalid value ')} is not an event type (expected one of {_TYPES_TEXT})"
    if text.startswith("Expected "):
        text = "expected " + text.removeprefix("Expected ")
    elif text.startswith("Invalid enum value "):
        text = f"{text.removeprefix('Invalid enum value ')} is not allowed"
    return f"field `{path}`: {text}" if path else text


_ALLOWED = {
    ("response", "status"): RESPONSE_STATUSES,
    ("rectification_update", "status"): RECTIFICATION_STATUSES,
    ("complaint_closed", "outcome"): CLOSE_OUTCOMES,
}


def _enum_message(line: bytes, message: str) -> str | None:
    m = _AT.match(message)
    if not m or not m.group(1).startswith("Invalid enum value "):
        return None
    try:
        tag = msgspec.json.decode(line, type=dict).get("type")
    except (msgspec.DecodeError, AttributeError):
        return None
    field = m.group(2).lstrip(".")
    allowed = _ALLOWED.get((tag, field))
    if allowed is None:
        return None
    got = m.group(1).removeprefix("Invalid enum value ")
    return f"field `{field}`: expected one of {', '.join(allowed)}, got {got}"


_KEYS_ENCODER = msgspec.json.Encoder()


def _duplicate_key(line: bytes, event: Event) -> str | None:
    """A key given twice in one JSON object of ``line`` (JSON parsers keep the last silently).

    Fast path: with the JSON whitespace taken out, every key of the input ends in ``":``, and
    so does every key of the event re-encoded (defaults omitted; a string value holds ``":``
    at least as often in the input as re-encoded, unless it escapes a quote or colon as
    ``\\u00..``). Equal counts and no ``\\u00`` escape mean no key was repeated; otherwise
    the line is parsed once more, pair by pair.
    """
    if (b"\\u00" not in line
            and line.translate(None, b" \t\r\n").count(b'":') == _KEYS_ENCODER.encode(event).count(b'":')):
        return None
    found: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: set[str] = set()
        for key, _ in items:
            if key in seen and not found:
                found.append(key)
            seen.add(key)
        return dict(items)

    try:
        json.loads(line, object_pairs_hook=pairs)
    except (ValueError, RecursionError):
        return None
    return found[0] if found else None


def decode_line(line: bytes) -> Event:
    """Decode one input line strictly; raises ``ValueError`` with a message fit
    for a ``FILE:LINE:`` report. The result is an instance of a strict subclass
    of the event type (``isinstance`` works; compare with :func:`same_event`)."""
    try:
        event = _INPUT.decode(line)
    except msgspec.ValidationError as e:
        message = str(e)
        if "[...]" in message:
            try:
                message = pin_path(msgspec.json.decode(line), lambda d: msgspec.convert(d, Union[STRICT_TYPES]),
                                   message)
            except (msgspec.DecodeError, RecursionError):
                pass
        raise ValueError(_enum_message(line, message) or describe_validation_error(message)) from None
    except msgspec.DecodeError as e:
        raise ValueError(f"not valid JSON: {str(e).removeprefix('JSON is malformed: ')}") from None
    except RecursionError:
        raise ValueError("nested too deeply: an event is a flat object whose values nest a few levels at most") \
            from None
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text: save the file as UTF-8") from None
    if (key := _duplicate_key(line, event)) is not None:
        raise ValueError(f"key `{key}` appears twice in one JSON object (expected each key once; "
                         "a parser would silently keep the last)")
    return event


def same_event(a: Event, b: Event) -> bool:
    """Equal type and fields, whether decoded strictly (input) or leniently (stored)."""
    return tag_of(a) == tag_of(b) and msgspec.structs.astuple(a) == msgspec.structs.astuple(b)

