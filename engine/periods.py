"""Periods: months ``YYYY-MM`` (the base period), quarters ``YYYY-Qn``, years ``YYYY``."""
from __future__ import annotations

import datetime as _dt
import re

from .errors import InvalidEvent

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_QUARTER = re.compile(r"^(\d{4})-Q([1-4])$")
_YEAR = re.compile(r"^(\d{4})$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def month_problem(value: str) -> str | None:
    """Why ``value`` is not a real month ``YYYY-MM``, or None when it is."""
    m = _MONTH.match(value)
    if not m:
        return f"expected a month YYYY-MM, got {value!r}"
    if not 1 <= int(m.group(2)) <= 12:
        return f"expected a real month YYYY-MM (01-12), got {value!r}"
    return None


def date_problem(value: str) -> str | None:
    """Why ``value`` is not a real date ``YYYY-MM-DD``, or None when it is."""
    if not _DATE.match(value):
        return f"expected a date YYYY-MM-DD, got {value!r}"
    try:
        _dt.date.fromisoformat(value)
    except ValueError:
        return f"expected a real date YYYY-MM-DD, got {value!r}"
    return None


def kind(period: str) -> str:
    """``month``, ``quarter`` or ``year``; raises InvalidEvent for anything else."""
    if _MONTH.match(period) and month_problem(period) is None:
        return "month"
    if _QUARTER.match(period):
        return "quarter"
    if _YEAR.match(period):
        return "year"
    raise InvalidEvent(f"expected a period YYYY-MM, YYYY-Qn or YYYY, got {period!r}")


def quarter_of(month: str) -> str:
    return f"{month[:4]}-Q{(int(month[5:7]) - 1) // 3 + 1}"


def year_of(month: str) -> str:
    return month[:4]


def rollups_of(month: str) -> tuple[str, str]:
    """The roll-up periods a month belongs to: its quarter and its year."""
    return quarter_of(month), year_of(month)


def months_of(period: str) -> list[str]:
    """The months a period covers, in order."""
    k = kind(period)
    if k == "month":
        return [period]
    year = int(period[:4])
    if k == "quarter":
        q = int(period[-1])
        return [f"{year:04d}-{m:02d}" for m in range(3 * q - 2, 3 * q + 1)]
    return [f"{year:04d}-{m:02d}" for m in range(1, 13)]


def next_month(month: str) -> str:
    y, m = int(month[:4]), int(month[5:7])
    return f"{y + m // 12:04d}-{m % 12 + 1:02d}"


def previous(period: str) -> str:
    """The period before, of the same kind: last month, last quarter, last year."""
    k = kind(period)
    year = int(period[:4])
    if k == "month":
        month = int(period[5:])
        return f"{year - 1:04d}-12" if month == 1 else f"{year:04d}-{month - 1:02d}"
    if k == "quarter":
        q = int(period[-1])
        return f"{year - 1:04d}-Q4" if q == 1 else f"{year:04d}-Q{q - 1}"
    return f"{year - 1:04d}"


def last_day(period: str) -> str:
    """The period's last day, ``YYYY-MM-DD``."""
    nxt = next_month(months_of(period)[-1])
    return (_dt.date(int(nxt[:4]), int(nxt[5:]), 1) - _dt.timedelta(days=1)).isoformat()


def consecutive(earlier: str, later: str) -> bool:
    """True when ``later`` is the calendar month right after ``earlier``."""
    return next_month(earlier) == later


_STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}(T\d{2}(:\d{2}(:\d{2}(\.\d+)?)?)?)?$")


def valid_time(stamp: str) -> bool:
    """A real recording time ``YYYY-MM-DD[THH:MM[:SS[.f]]]`` (``2026-02-30`` and ``T25:00`` are not)."""
    if not _STAMP.match(stamp):
        return False
    date, _, clock = stamp.partition("T")
    parts = (clock.split(":") + ["0", "0"])[:3] if clock else ["0", "0", "0"]
    try:
        _dt.datetime(*map(int, date.split("-")), int(parts[0]), int(parts[1] or 0), int(float(parts[2] or 0)))
    except ValueError:
        return False
    return True


def valid_as_of(value: str) -> bool:
    """A log position (digits) or a real recording time (a trailing ``Z`` allowed)."""
    return value.isdigit() or valid_time(value.rstrip("Z"))
