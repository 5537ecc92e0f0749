"""Rule-set parameters: TOML files, merging over defaults, validation, hashing.

A rule set ships a default TOML and a msgspec Struct type for it. An adoption's
``params`` are merged over the parameters in force at its month, or the
shipped defaults (tables merge key by key, any other value replaces, the
tables named in ``replace`` are taken whole), validated against the Struct
type, and stored complete (:func:`canonical`), so neither a later revision
nor a change of the defaults ever moves a past score.
"""
from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import Any

import msgspec

from ..errors import InvalidParams
from ..log.events import describe_validation_error, pin_path

_CANON = msgspec.json.Encoder(order="sorted")

#: The decimals every rule set's figures may be published to (``precision``): 34 significant digits
#: leave room for 24 before the point.
PRECISION = (0, 10)
#: The largest magnitude a number among new parameters may have (a weight, a maximum, a deduction):
#: far beyond any scale, far below what the 34-digit arithmetic cannot carry.
LARGEST = Decimal(10) ** 12


def read_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A TOML file as plain data; raises InvalidParams naming the file on a syntax error."""
    try:
        with open(path, "rb") as f:
            return msgspec.toml.decode(f.read())
    except OSError as e:
        raise InvalidParams([f"{os.fspath(path)}: cannot read: {e.strerror}"]) from None
    except msgspec.DecodeError as e:
        raise InvalidParams([f"{os.fspath(path)}: not valid TOML: {e}"]) from None


def merge(defaults: dict[str, Any], overrides: dict[str, Any], replace: Iterable[str] = (),
          _path: str = "") -> dict[str, Any]:
    """``overrides`` over ``defaults``: tables merge key by key, other values replace — except the
    tables named in ``replace`` (dotted keys, e.g. ``items`` or ``departments.finance``), which are
    taken whole from ``overrides`` (so an item, a level or a department can be removed)."""
    whole = set(replace)
    out = dict(defaults)
    for key, value in overrides.items():
        path = f"{_path}{key}"
        if isinstance(value, dict) and isinstance(out.get(key), dict) and path not in whole:
            out[key] = merge(out[key], value, whole, f"{path}.")
        else:
            out[key] = value
    return out


def replace_problems(overrides: dict[str, Any], replace: Iterable[str]) -> list[str]:
    """A ``replace`` key must name a table given in the parameters."""
    problems = []
    for key in replace:
        node: Any = overrides
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            problems.append(f"replace `{key}`: expected a table given in the parameters, to take whole")
    return problems


def shown(value: Any) -> str:
    """A value as the parameter file would spell it (strings quoted), cut short."""
    try:
        text = msgspec.json.encode(value).decode() if not isinstance(value, Decimal) else str(value)
    except (TypeError, msgspec.EncodeError):
        text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


def precision_problem(value: Any) -> str | None:
    """``precision`` — shared by every rule set: the decimals the engine rounds ``score`` to."""
    if isinstance(value, bool) or not isinstance(value, int) or not PRECISION[0] <= value <= PRECISION[1]:
        return f"key `precision`: expected an integer {PRECISION[0]} to {PRECISION[1]}, got {shown(value)}"
    return None


def _numbers(value: Any, path: str, depth: int = 0) -> Iterable[tuple[str, Any]]:
    """Every number (Decimal, float, int) in decoded parameters, with its dotted key."""
    if depth > 32:
        return
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, (Decimal, float, int)):
        yield path, value
    elif isinstance(value, msgspec.Struct):
        for f in msgspec.structs.fields(value):
            yield from _numbers(getattr(value, f.name), f"{path}.{f.encode_name}" if path else f.encode_name, depth + 1)
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _numbers(v, f"{path}.{k}" if path else str(k), depth + 1)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _numbers(v, f"{path}[{i}]", depth + 1)


def finite_problems(params: Any) -> list[str]:
    """Numbers that are no numbers (``nan``, ``inf``): refused whenever parameters are decoded,
    before a rule set's own checks compare them."""
    return [f"key `{path}`: expected a finite number, got {v}" for path, v in _numbers(params, "")
            if isinstance(v, (Decimal, float)) and not (v.is_finite() if isinstance(v, Decimal) else math.isfinite(v))]


def range_problems(params: Any) -> list[str]:
    """The ranges every rule set's new parameters keep (adopt, what-if, an ingested adoption):
    ``precision`` an integer 0 to 10, every number within ±10¹²."""
    problems = []
    if hasattr(params, "precision") and (p := precision_problem(params.precision)):
        problems.append(p)
    for path, v in _numbers(params, ""):
        if path == "precision" or isinstance(v, float) and not math.isfinite(v):
            continue
        if isinstance(v, Decimal) and not v.is_finite():
            continue
        if abs(v) > LARGEST:
            problems.append(f"key `{path}`: expected a number from -10^12 to 10^12, got {shown(v)}")
    return problems


def outside(key: str, value: Any, low: Any = None, high: Any = None) -> list[str]:
    """``[problem]`` when ``value`` (a number) lies outside [low, high] (None: unbounded), for a rule
    set's :meth:`~csat.engine.scoring.ruleset.RuleSet.check_ranges`; else ``[]``."""
    if (low is None or value >= low) and (high is None or value <= high):
        return []
    want = (f"{low} to {high}" if low is not None and high is not None
            else f"≥ {low}" if low is not None else f"≤ {high}")
    return [f"key `{key}`: expected {want}, got {shown(value)}"]


def _type_problems(params_type: type, data: dict[str, Any], source: str) -> list[str]:
    """Every top-level key's problem, one each: unknown keys, missing keys, wrong values."""
    fields = {f.encode_name: f for f in msgspec.structs.fields(params_type)}
    problems = [f"{source}: unknown key `{k}`" for k in data if k not in fields]
    for name, f in fields.items():
        if name not in data:
            if f.required:
                problems.append(f"{source}: missing required key `{name}`")
            continue
        try:
            msgspec.convert(data[name], f.type, strict=False)
        except msgspec.ValidationError as e:
            if name == "precision" and f.type is int and (p := precision_problem(data[name])):
                problems.append(f"{source}: {p}")
                continue
            pinned = pin_path({name: data[name]}, lambda d: msgspec.convert(d[name], f.type, strict=False),
                              str(e).replace(" - at `$", f" - at `$.{name}", 1) if " - at `$" in str(e)
                              else f"{e} - at `$.{name}`")
            problems.append(f"{source}: " + describe_validation_error(pinned).replace("field `", "key `"))
    return problems


def decode(params_type: type, data: dict[str, Any], source: str = "params") -> Any:
    """Validate ``data`` against ``params_type``; InvalidParams lists every top-level key that is
    wrong, each naming the key and what was expected."""
    try:
        return msgspec.convert(data, params_type, strict=False)
    except msgspec.ValidationError as e:
        problems = []
        try:
            problems = _type_problems(params_type, data, source)
        except Exception:  # noqa: BLE001 — listing is a courtesy; the first problem is always reported
            pass
        if not problems:
            pinned = pin_path(data, lambda d: msgspec.convert(d, params_type, strict=False), str(e))
            problems = [f"{source}: " + describe_validation_error(pinned).replace("field `", "key `")]
        raise InvalidParams(problems) from None


def canonical(params: Any) -> dict[str, Any]:
    """The complete parameters as plain JSON data (Decimals as strings, tuples as lists):
    exactly what the log stores and reads back."""
    return msgspec.json.decode(msgspec.json.encode(params))


def params_hash(data: dict[str, Any]) -> str:
    """A stable short hash of complete parameters (sorted-key JSON, SHA-256)."""
    return "sha256:" + hashlib.sha256(_CANON.encode(data)).hexdigest()[:16]


def added_entries(base: dict[str, Any], overrides: dict[str, Any], tables: dict[str, str],
                  replace: Iterable[str] = ()) -> list[tuple[str, str]]:
    """The entries ``overrides`` would add, by merging, to a closed table of ``base`` — a table
    whose keys name things the rule set already knows (its questionnaire's items): ``after_sale``
    beside ``after_sales`` is a typo, not a new item. ``tables`` maps each such table's dotted key
    to the noun for its entries (``{"items": "item"}``); a table named in ``replace`` (or under one)
    is taken whole and may add entries. Returns (dotted key of the entry, problem) pairs."""
    whole = set(replace)
    found = []
    for table, noun in tables.items():
        parts = table.split(".")
        if any(".".join(parts[:i]) in whole for i in range(1, len(parts) + 1)):
            continue
        given: Any = overrides
        known: Any = base
        for part in parts:
            given = given.get(part) if isinstance(given, dict) else None
            known = known.get(part) if isinstance(known, dict) else None
        if not isinstance(given, dict) or not isinstance(known, dict):
            continue
        for key in given:
            if key not in known:
                found.append((f"{table}.{key}", f"key `{table}.{key}`: no such {noun} ({table}: {', '.join(known)}); "
                              f"to add or remove {noun}s, give the whole table with replace = [\"{table}\"]"))
    return found


def complete_closed(complete: Callable[..., dict[str, Any]], base: dict[str, Any], data: dict[str, Any],
                    source: str, replace: Sequence[str], tables: dict[str, str]) -> dict[str, Any]:
    """``complete(data, source, base, replace)`` (a rule set's ``complete_params``), refusing by
    name what :func:`added_entries` finds — before the problems the rest of ``data`` has on its own
    (a typo'd item is named, not reported as "the maxima must sum to 100, got 120")."""
    added = added_entries(base, data, tables, replace)
    if not added:
        return complete(data, source, base, replace)
    problems = [f"{source}: {p}" for _, p in added]
    trimmed = _without(data, [key for key, _ in added])
    try:
        complete(trimmed, source, base, replace)
    except InvalidParams as e:
        problems += e.problems
    raise InvalidParams(problems)


def _without(data: dict[str, Any], keys: list[str]) -> dict[str, Any]:
    """``data`` without the entries at the dotted ``keys`` (copies along the way; ``data`` unchanged)."""
    out = dict(data)
    for key in keys:
        *parents, last = key.split(".")
        node = out
        for part in parents:
            node[part] = dict(node[part])
            node = node[part]
        node.pop(last, None)
    return out
