"""csat's values as JSON, without losing a digit: for a web endpoint, a message queue, a file.

A figure is a :class:`decimal.Decimal` rounded as published (``83.10``); the usual JSON encoders
turn it into a float (``83.1``) or refuse it. Here it stays exact — written as the number's own
text (``decimals="number"``: ``83.10``, the form ``csat scores --format json`` writes) or as a
string (``decimals="string"``: ``"83.10"``, for a JavaScript client that would otherwise read it
into a double). Dates and times are ISO 8601 strings; numpy and pandas scalars, tuples and sets
come out as their plain values.

>>> from decimal import Decimal
>>> from csat.engine.jsonable import to_json
>>> to_json({"score": Decimal("83.10"), "grade": "B"})
b'{"score":83.10,"grade":"B"}'
>>> to_json([Decimal("83.10")], decimals="string")
b'["83.10"]'

No web framework is imported: a Starlette or FastAPI endpoint returns
``Response(to_json(rows), media_type="application/json")``.
"""
from __future__ import annotations

import datetime as _dt
from typing import Any, Literal

import msgspec

Decimals = Literal["number", "string"]


def enc_hook(value: Any) -> Any:
    """Plain values for what msgspec does not encode itself: a numpy or pandas scalar (its
    ``item()``; a missing value as None), a pandas ``Timestamp`` (ISO 8601), a set (sorted).

    :raises NotImplementedError: for anything else (msgspec then names the type).
    """
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    if isinstance(value, (_dt.date, _dt.time)):  # a subclass msgspec does not take (pandas' Timestamp)
        return value.isoformat()
    if type(value).__name__ in ("NAType", "NaTType"):  # pandas' missing values
        return None
    item = getattr(value, "item", None)
    if callable(item) and type(value).__module__ == "numpy":
        return item()
    raise NotImplementedError(f"cannot encode {type(value).__name__} as JSON")


def encoder(decimals: Decimals = "number") -> msgspec.json.Encoder:
    """A reusable encoder (thread-safe; make it once): ``encoder().encode(rows)`` gives the bytes
    :func:`to_json` gives. ``decimals``: ``"number"`` (``83.10``) or ``"string"`` (``"83.10"``)."""
    if decimals not in ("number", "string"):
        from .errors import CsatError
        raise CsatError(f"decimals: expected 'number' or 'string', got {decimals!r}")
    return msgspec.json.Encoder(enc_hook=enc_hook, decimal_format=decimals)


_ENCODERS = {d: encoder(d) for d in ("number", "string")}


def to_json(obj: Any, *, decimals: Decimals = "number") -> bytes:
    """``obj`` (score rows, an explanation, any of the API's results) as compact UTF-8 JSON, every
    Decimal exact: ``decimals="number"`` writes ``83.10`` as a JSON number with its own digits,
    ``"string"`` as ``"83.10"``. Dates and times become ISO 8601 strings."""
    if decimals not in _ENCODERS:
        encoder(decimals)  # raises, naming the choice
    return _ENCODERS[decimals].encode(obj)
