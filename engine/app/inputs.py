"""Events given as Python values (``Engine.append``), and every problem of an input line.

**Values JSON does not have.** An embedder hands over what its tools give: ``Decimal("27.5")``
(sent as the JSON number ``27.5``, the same event as the float or the number in a file),
numpy scalars (``df.at[...]`` gives ``numpy.float64``: sent as the Python value, so ``3.0``
stays a float and ``3`` an int, as in a file), and NaN for an empty cell (``float('nan')``,
``numpy.nan``, ``pandas.NA``). A NaN answer is sent as ``"N/A"`` and the rule set decides: where
the item takes N/A it is N/A; elsewhere the problem says ``NaN is not an answer — send "N/A" for
not applicable, or leave the item out``. A NaN reason is no reason (an empty cell); NaN anywhere
else is null (an empty optional field). A value that cannot be sent (a ``datetime``, an
infinity, an object) is one problem naming the field and the Python type — never a raw
``TypeError``. All of that happens only when the plain encoding fails or gives a ``null``: the
common event costs one encode, as before.

**Every problem of a line.** The strict decoder stops at the first problem of an event
(:func:`~csat.engine.log.events.decode_line`). :func:`every_problem` finds the others on the
error path only: it sets the faulty field aside (an unknown field or a bad optional value
removed, a required one given a stand-in) and decodes again, until the event decodes; the
stand-in event is returned so that the rule set's own checks can add theirs, for the fields
that were not set aside. It is never appended.
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from typing import Any, Literal, get_args, get_origin

import msgspec

from ..errors import CsatError
from ..log.events import NA, TAGS, Event, decode_line
from .readers import Line

#: the source of events given through the API: a problem names the event by its index (``events[2]: …``)
EVENTS = "events"
#: the message for a NaN answer of an item that does not take N/A
NAN_ANSWER = 'NaN is not an answer — send "N/A" for not applicable, or leave the item out'


class Noted(bytes):
    """An event encoded from Python values, with what the encoding had to do: ``nan`` the fields
    (``answers.price``) given as NaN and sent as ``"N/A"``; ``problems`` (field, message) for
    values that could not be sent at all (sent as null: the event is refused whatever else)."""

    nan: frozenset[str] = frozenset()
    problems: tuple[tuple[str, str], ...] = ()

    def amend(self, problems: list[str]) -> list[str]:
        """The problems the checks found for this event, the encoding's first; a problem with a
        NaN answer says what NaN is not, and none is repeated for a value that was not sent."""
        out = [f"field `{path}`: {message}" for path, message in self.problems]
        skip = {path for path, _ in self.problems}
        for p in problems:
            field = field_of(p)
            if field in self.nan:
                p = f"field `{field}`: {NAN_ANSWER}"
            elif field is not None and any(field == s or field.startswith((f"{s}.", f"{s}[")) for s in skip):
                continue
            if p not in out:
                out.append(p)
        return out


def _numpy_value(x: Any) -> Any:
    """A numpy scalar as the Python value it holds (a float32 by its shortest digits: 0.1, not
    0.10000000149011612)."""
    value = x.item()
    if isinstance(value, float) and getattr(x, "itemsize", 8) < 8 and math.isfinite(value):
        value = float(str(x))
    return value


def _is_numpy(x: Any) -> bool:
    return type(x).__module__ == "numpy" and hasattr(x, "item")


def _hook(x: Any) -> Any:
    if _is_numpy(x):
        return _numpy_value(x)
    raise TypeError(type(x).__name__)


_ENCODER = msgspec.json.Encoder(enc_hook=_hook, decimal_format="number")
_NAN = object()  # a NaN met by the walk: what it becomes depends on where it is


def encode(data: dict[str, Any]) -> bytes:
    """An event given as a dict, as the JSON line a file would hold (a :class:`Noted` line when
    some value had to be converted or could not be sent)."""
    try:
        raw = _ENCODER.encode(data)
    except (TypeError, ValueError, OverflowError, RecursionError):
        raw = None
    # NaN, infinities encode as null; bytes as base64 text (never what the caller meant)
    if raw is not None and (b"null" not in raw or not _suspect(data)) and not _has_bytes(data):
        return raw
    nan: set[str] = set()
    problems: list[tuple[str, str]] = []
    try:
        clean = _walk(data, "", nan, problems)
        body = _ENCODER.encode(clean)
    except (TypeError, ValueError, OverflowError, RecursionError) as e:  # too deep, an int of 5,000 digits, …
        return f"the event cannot be sent: {type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}"
    if not nan and not problems:
        return body
    line = Noted(body)
    line.nan, line.problems = frozenset(nan), tuple(problems)
    return line


_PLAIN = frozenset((str, int, bool, type(None), dict, list))


def _suspect(data: dict[str, Any]) -> bool:
    """Whether a null in an event's JSON may stand for a NaN or an infinity where it matters: a
    value of the event, of its answers or of its reasons that is a float not finite, or no plain
    JSON value (deeper down a NaN is null, as msgspec encodes it)."""
    tables = [t for t in (data.get("answers"), data.get("reasons")) if type(t) is dict]
    for values in (data.values(), *(t.values() for t in tables)):
        for v in values:
            t = type(v)
            if t is float:
                if not math.isfinite(v):
                    return True
            elif t not in _PLAIN:
                return True
    return False


def _has_bytes(data: dict[str, Any]) -> bool:
    """Whether a value of the event (or of its answers, reasons or roles) is bytes."""
    tables = [t for t in (data.get("answers"), data.get("reasons"), data.get("roles")) if type(t) is dict]
    return any(isinstance(v, (bytes, bytearray, memoryview))
               for values in (data.values(), *(t.values() for t in tables)) for v in values)


def _type_name(x: Any) -> str:
    t = type(x)
    return t.__qualname__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


def _walk(value: Any, path: str, nan: set[str], problems: list[tuple[str, str]]) -> Any:
    """``value`` with every value JSON has as it is, NaN as :data:`_NAN` (placed by the dict
    holding it), and what cannot be sent as None, with a problem."""
    t = type(value)
    if value is None or t is str or t is bool or t is int:
        return value
    if _is_numpy(value):
        return _walk(_numpy_value(value), path, nan, problems)
    if isinstance(value, (float, Decimal)):
        if value.is_nan() if isinstance(value, Decimal) else value != value:
            return _NAN
        if value in (math.inf, -math.inf):
            problems.append((path, f"{value} is not a number an event can hold"))
            return None
        return float(value) if isinstance(value, float) else value  # (a Decimal goes as a JSON number)
    if t.__name__ in ("NAType", "NaTType") and t.__module__.startswith("pandas"):
        return _NAN
    if isinstance(value, dict):
        out = {}
        for key, v in value.items():
            if _is_numpy(key):
                key = _numpy_value(key)
            if not isinstance(key, str):
                if isinstance(key, int) and not isinstance(key, bool):
                    key = str(key)
                else:
                    problems.append((f"{path}{'.' if path else ''}{key!r}",
                                     f"a key must be a string, got a Python {_type_name(key)}"))
                    continue
            where = f"{path}.{key}" if path else str(key)
            v = _walk(v, where, nan, problems)
            if v is _NAN:
                if path in ("answers", "reasons"):
                    if path == "reasons":
                        continue  # an empty reason cell: no reason
                    nan.add(where)
                    v = NA
                else:
                    v = None
            out[str(key)] = v
        return out
    if isinstance(value, (list, tuple)):
        items = [_walk(v, f"{path}[{i}]", nan, problems) for i, v in enumerate(value)]
        return [None if v is _NAN else v for v in items]
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        problems.append((path, f"a Python {_type_name(value)} cannot be sent in an event (expected a string: "
                               "decode it first)"))
        return None
    try:  # what msgspec sends as JSON (a date as its ISO text, a set as a list), as a file would hold it
        return msgspec.to_builtins(value, enc_hook=_hook)
    except (TypeError, ValueError, OverflowError):
        problems.append((path, f"a Python {_type_name(value)} cannot be sent in an event (expected a string, a "
                               "number, true or false, null, a list or an object)"))
        return None


def dict_lines(items: Iterable[Event | dict[str, Any]], name: str = EVENTS) -> Iterator[Line]:
    """Events or dicts given through the API, as lines of an imaginary file."""
    if isinstance(items, (dict, str, bytes, Event)) or not hasattr(items, "__iter__"):
        raise CsatError(f"expected a list of events (dicts in the ingest format, or Events), got a Python "
                        f"{_type_name(items)}")
    for number, item in enumerate(items, 1):
        if isinstance(item, dict):
            yield name, number, encode(item)
        elif isinstance(item, Event):
            yield name, number, msgspec.json.encode(msgspec.to_builtins(item))
        else:
            yield name, number, (f"expected an event (a dict in the ingest format, or an Event), got a Python "
                                 f"{_type_name(item)}")


# -- every problem of a line -------------------------------------------------------------

_FIELD = re.compile(r"^field `([^`]+)`")
_UNKNOWN = re.compile(r"^unknown field `([^`]+)`$")
_MISSING = re.compile(r"^missing required field `([^`]+)`")
_MISSING_IN = re.compile(r"^field `([^`]+)`: missing required field `([^`]+)`")
_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")
_STAND_INS = {"period": "2000-01", "from": "2000-01", "date": "2000-01-01", "due": "2000-01-01"}
#: the most problems one line is searched for
MOST = 50


def field_of(problem: str) -> str | None:
    """The field a problem line names (``field `answers.price`: …`` → ``answers.price``)."""
    m = _FIELD.match(problem)
    return m.group(1) if m else None


def every_problem(raw: bytes, first: str) -> tuple[list[str], Event | None, set[str]]:
    """Every problem the strict decoder finds in ``raw`` (whose first is ``first``), found by
    setting each faulty field aside in turn; the event as it decodes with them set aside (or
    None) and the fields set aside (dotted paths)."""
    problems = [first]
    try:
        data = msgspec.json.decode(raw)
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
        return problems, None, set()
    cls = TAGS.get(data.get("type")) if isinstance(data, dict) and isinstance(data.get("type"), str) else None
    if cls is None:
        return problems, None, set()
    fields = {f.encode_name: f for f in msgspec.structs.fields(cls)}
    aside: set[str] = set()
    while len(problems) < MOST:
        path = _set_aside(data, problems[-1], fields)
        if path is None or path in aside:
            break
        aside.add(path)
        try:
            return problems, decode_line(msgspec.json.encode(data)), aside
        except ValueError as e:
            if str(e) in problems:
                break
            problems.append(str(e))
    return problems, None, aside


def line_problems(raw: bytes, first: str, check: Callable[[Event], list[str]]) -> list[str]:
    """Every problem of a line that does not decode (:func:`every_problem`), then, for a response
    whose identity and answers decoded, what ``check`` (the ingest's checks) finds in the fields
    that were not at fault."""
    problems, ev, aside = every_problem(raw, first)
    if (ev is not None and type(ev).__struct_config__.tag == "response"
            and not aside & {"id", "ruleset", "period", "subject", "form", "status", "answers"}):
        problems += [p for p in check(ev) if (f := field_of(p)) is None or not any(
            f == a or f.startswith((f"{a}.", f"{a}[")) for a in aside)]
    return raw.amend(problems) if type(raw) is Noted else problems


def _set_aside(data: dict[str, Any], problem: str, fields: dict[str, Any]) -> str | None:
    """Remove (or stand in for) the field ``problem`` names; the field's path, or None when it
    cannot be set aside."""
    if (m := _MISSING_IN.match(problem)):
        path, missing = m.group(1), None  # a nested object lacks a field: set the object aside
    elif (m := _MISSING.match(problem)):
        path, missing = m.group(1), True
    elif (m := _UNKNOWN.match(problem)) or (m := _FIELD.match(problem)):
        path, missing = m.group(1), False
    else:
        return None
    parts = [int(i) if i else k for k, i in _PART.findall(path)]
    if not parts or parts[0] == "type":
        return None
    if len(parts) == 1:
        name = parts[0]
        f = fields.get(name)
        if f is None:
            data.pop(name, None)
        elif missing or f.required:
            data[name] = _stand_in(name, f.type)
        else:
            data.pop(name, None)
        return path
    node: Any = data
    for part in parts[:-1]:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
    try:
        del node[parts[-1]]
    except (KeyError, IndexError, TypeError):
        return None
    return path


def _stand_in(name: str, type_: Any) -> Any:
    if name in _STAND_INS:
        return _STAND_INS[name]
    origin = get_origin(type_) or type_
    if origin is Literal:
        return get_args(type_)[0]
    if origin is dict:
        return {}
    if origin is list:
        return []
    if origin is int:
        return 0
    if origin is bool:
        return False
    return "-"
