"""Rule-set parameters: TOML files, merging over defaults, validation, hashing.

A rule set ships a default TOML and a msgspec Struct type for it. An adoption's
``params`` are merged over the shipped defaults (tables merge key by key, any
other value replaces), validated against the Struct type, and stored complete
(:func:`canonical`), so a later change of the defaults never moves a past score.
"""
from __future__ import annotations

import hashlib
import os
from typing import Any

import msgspec

from .errors import InvalidParams
from .events import describe_validation_error, pin_path

_CANON = msgspec.json.Encoder(order="sorted")


def read_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A TOML file as plain data; raises InvalidParams naming the file on a syntax error."""
    try:
        with open(path, "rb") as f:
            return msgspec.toml.decode(f.read())
    except OSError as e:
        raise InvalidParams([f"{os.fspath(path)}: cannot read: {e.strerror}"]) from None
    except msgspec.DecodeError as e:
        raise InvalidParams([f"{os.fspath(path)}: not valid TOML: {e}"]) from None


def merge(defaults: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``overrides`` over ``defaults``: tables merge key by key, other values replace."""
    out = dict(defaults)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def decode(params_type: type, data: dict[str, Any], source: str = "params") -> Any:
    """Validate ``data`` against ``params_type``; InvalidParams names the key and what was expected."""
    try:
        return msgspec.convert(data, params_type, strict=False)
    except msgspec.ValidationError as e:
        pinned = pin_path(data, lambda d: msgspec.convert(d, params_type, strict=False), str(e))
        message = describe_validation_error(pinned).replace("field `", "key `")
        raise InvalidParams([f"{source}: {message}"]) from None


def canonical(params: Any) -> dict[str, Any]:
    """The complete parameters as plain JSON data (Decimals as strings, tuples as lists):
    exactly what the log stores and reads back."""
    return msgspec.json.decode(msgspec.json.encode(params))


def params_hash(data: dict[str, Any]) -> str:
    """A stable short hash of complete parameters (sorted-key JSON, SHA-256)."""
    return "sha256:" + hashlib.sha256(_CANON.encode(data)).hexdigest()[:16]
