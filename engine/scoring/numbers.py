"""Scoring primitives in decimal arithmetic.

Every figure is a :class:`decimal.Decimal` computed in one fixed context, so a
replay reproduces every digit. Rounding half-up (四舍五入) happens only where a
rule set publishes a value (:func:`publish`).
"""
from __future__ import annotations

import decimal
from functools import reduce
from collections.abc import Iterable
from decimal import Decimal

from ..errors import InvalidParams

#: The context every computation runs in: 34 significant digits (IEEE decimal128),
#: banker's rounding for intermediate results, exceptions on invalid operations.
CONTEXT = decimal.Context(prec=34, rounding=decimal.ROUND_HALF_EVEN,
                          traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow])

ZERO = Decimal(0)
ONE = Decimal(1)


def dec(value: object) -> Decimal:
    """An exact Decimal for an int, a str, a Decimal, or a float (by its shortest repr)."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool):
        raise TypeError("a boolean is not a number")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, str):
        return Decimal(value)
    raise TypeError(f"not a number: {value!r}")


def add(*values: Decimal) -> Decimal:
    return total(values)


#: Sums are exact (a sum of decimals needs only as many digits as its terms span), and are rounded
#: to :data:`CONTEXT` once, at the end: a total — and a mean — then does not depend on the order of
#: its terms, so the same responses give the same digits whatever order they arrived in.
EXACT = decimal.Context(prec=decimal.MAX_PREC, rounding=decimal.ROUND_HALF_EVEN,
                        traps=[decimal.InvalidOperation, decimal.Overflow])


def total(values: Iterable[Decimal]) -> Decimal:
    """The sum, exact until rounded once to :data:`CONTEXT` (independent of the terms' order)."""
    return CONTEXT.plus(reduce(EXACT.add, values, ZERO))


def mul(a: Decimal, b: Decimal) -> Decimal:
    return CONTEXT.multiply(a, b)


def div(a: Decimal, b: Decimal) -> Decimal:
    return CONTEXT.divide(a, b)


def sub(a: Decimal, b: Decimal) -> Decimal:
    return CONTEXT.subtract(a, b)


def mean(values: Iterable[Decimal]) -> Decimal:
    vals = list(values)
    if not vals:
        raise ValueError("mean of nothing")
    return div(total(vals), Decimal(len(vals)))


class CannotRound(InvalidParams):
    """A value cannot be rounded to the places asked (negative or not a number of places, or more
    digits than the 34 the arithmetic carries): the parameters in force ask for what cannot be
    published."""


def publish(value: Decimal, places: int) -> Decimal:
    """Round half-up (四舍五入) to ``places`` decimals, as published figures are.

    :raises CannotRound: ``places`` is negative or no number of places, or the result would need
        more than 34 digits (a ``precision`` of 100000)."""
    try:
        if places < 0:
            raise ValueError(places)
        return value.quantize(Decimal(1).scaleb(-places), rounding=decimal.ROUND_HALF_UP, context=CONTEXT)
    except (ArithmeticError, TypeError, ValueError):
        raise CannotRound([f"cannot round {value} to {places!r} decimal places (precision: expected an integer "
                           "0 to 10)"]) from None


def plain(value: Decimal) -> str:
    """A Decimal as text without exponent, for formulas in explanations."""
    s = format(value, "f")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return s or "0"
