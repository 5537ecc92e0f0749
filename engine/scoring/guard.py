"""The boundary between the engine and rule-set code.

A rule set is plugin code: it may raise, or return something other than the
contract says (a ``float`` score, a tuple instead of a list of figures, a
credit without a subject). Everything a rule set returns is checked here, and
every failure becomes one :class:`~csat.engine.errors.RuleSetFailed` naming
the rule set, what it was doing (the subject-month) and the field — so the
engine can keep every other rule set working and tell the user in one line.
"""
from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any, TypeVar

from ..errors import RuleSetFailed
from .numbers import publish
from .ruleset import Credit, Figure, ItemPoints, RuleSet

T = TypeVar("T")


def guarded(rs: RuleSet, where: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` — a rule-set method — with any exception turned into RuleSetFailed."""
    try:
        return fn(*args, **kwargs)
    except RuleSetFailed:
        raise
    except Exception as e:  # noqa: BLE001 — plugin code may raise anything; say which and where
        text = str(e).splitlines()[0] if str(e) else ""
        raise RuleSetFailed(rs.id, where, f"raised {type(e).__name__}" + (f": {text}" if text else "")) from e


#: what a rule set's arithmetic (or the engine's rounding of its figures) raises when the
#: parameters in force ask for the impossible: a precision of 100000, a zero divisor, an overflow
ARITHMETIC = (ArithmeticError, ValueError, OverflowError)


class ParamsFailed(RuleSetFailed):
    """A rule set's figures could not be computed under the parameters of ``adoption`` (named in
    ``problem`` too): the rule set's rows of those months are kept as published and the months stay
    to be scored; a later adoption from the same month (or earlier) supersedes it."""

    def __init__(self, ruleset: str, where: str, problem: str, adoption: str = ""):
        super().__init__(ruleset, where, problem)
        self.adoption = adoption

    def __reduce__(self) -> tuple[type, tuple[str, str, str, str]]:  # type: ignore[override]
        return type(self), (self.ruleset, self.where, self.problem, self.adoption)


def under_adoption(e: RuleSetFailed, adoption: Any) -> RuleSetFailed:
    """``e`` naming the adoption in force, and — when arithmetic failed — saying how to supersede it."""
    if adoption is None or isinstance(e, ParamsFailed):
        return e
    cause = e.__cause__
    if not isinstance(cause, ARITHMETIC):
        return e
    found = ParamsFailed(e.ruleset, e.where, f"{e.problem} under the parameters of adoption {adoption.id} (from "
                         f"{adoption.from_}): its published rows stay; adopt corrected parameters from "
                         f"{adoption.from_} to supersede it", adoption.id)
    found.__cause__ = cause
    return found


def rounded(rs: RuleSet, where: str, adoption: Any, value: Decimal, places: Any, metric: str) -> Decimal:
    """``value`` published to ``places`` (the engine rounds every ``score``): a rounding the
    parameters make impossible fails as :class:`ParamsFailed` naming the adoption."""
    try:
        return publish(value, places)
    except ARITHMETIC as x:
        e = RuleSetFailed(rs.id, where, f"figure {metric}: {x}")
        e.__cause__ = x
        raise under_adoption(e, adoption) from x


def _type_name(value: Any) -> str:
    return type(value).__name__


def _published_value_problem(value: Any, path: str, depth: int = 0) -> str | None:
    """Published values are exact: Decimal, int, str, bool, None, or lists/dicts of them."""
    if value is None or isinstance(value, (bool, int, str, Decimal)):
        return None
    if isinstance(value, float):
        return f"{path}: expected a Decimal (exact), got float {value!r}"
    if depth > 16:
        return f"{path}: nested too deeply"
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            if (p := _published_value_problem(v, f"{path}[{i}]", depth + 1)):
                return p
        return None
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                return f"{path}: keys must be strings, got {_type_name(k)} {k!r}"
            if (p := _published_value_problem(v, f"{path}.{k}", depth + 1)):
                return p
        return None
    return f"{path}: expected a Decimal, int, str, bool, None, list or dict, got {_type_name(value)}"


def figure_problem(fig: Any) -> str | None:
    """What is wrong with one returned figure, or None."""
    if not isinstance(fig, Figure):
        return f"expected a Figure, got {_type_name(fig)}"
    if not isinstance(fig.metric, str) or not fig.metric:
        return f"metric: expected a non-empty string, got {fig.metric!r}"
    where = f"figure {fig.metric}"
    if fig.score is not None and (isinstance(fig.score, bool) or not isinstance(fig.score, Decimal)):
        return f"{where}: score: expected a Decimal or None, got {_type_name(fig.score)} {fig.score!r}"
    if fig.score is not None and not fig.score.is_finite():
        return f"{where}: score: expected a finite number, got {fig.score}"
    if isinstance(fig.responses, bool) or not isinstance(fig.responses, int) or fig.responses < 0:
        return f"{where}: responses: expected a whole number ≥ 0, got {fig.responses!r}"
    for name in ("grade", "grade_label"):
        value = getattr(fig, name)
        if value is not None and not isinstance(value, str):
            return f"{where}: {name}: expected a string or None, got {_type_name(value)} {value!r}"
    if not isinstance(fig.extras, dict):
        return f"{where}: extras: expected a dict, got {_type_name(fig.extras)}"
    if (p := _published_value_problem(fig.extras, f"{where}: extras")):
        return p
    if not isinstance(fig.state, dict):
        return f"{where}: state: expected a dict, got {_type_name(fig.state)}"
    return None


def declared(rs: RuleSet, where: str, params: Any) -> tuple[str, ...]:
    """The metrics ``rs`` declares under ``params``, checked and kept once per parameters object
    (a figure is checked against them on the scoring path)."""
    def build(p: Any) -> tuple[str, ...]:
        metrics = guarded(rs, where, rs.declared_metrics, p)
        if not isinstance(metrics, tuple) or not all(isinstance(m, str) for m in metrics):
            raise RuleSetFailed(rs.id, where, f"declared_metrics: expected a tuple of strings, got {metrics!r:.60}")
        return metrics
    return rs.per_params("declared_metrics", params, build)


def _undeclared(rs: RuleSet, where: str, fig: Figure, params: Any) -> None:
    metrics = declared(rs, where, params)
    if fig.metric not in metrics:
        raise RuleSetFailed(rs.id, where, f"figure metric {fig.metric!r} is not one the rule set declares "
                            f"({', '.join(metrics) or 'none'}): fix the name, or declare it in `metrics` "
                            "(declared_metrics for metrics from the parameters)")


def checked_figures(rs: RuleSet, where: str, figures: Any, params: Any) -> list[Figure]:
    """``score_month``'s result: a list of Figures of distinct metrics, each one the rule set
    declares under ``params``."""
    if not isinstance(figures, list):
        raise RuleSetFailed(rs.id, where, f"expected a list of Figure, got {_type_name(figures)}")
    seen: set[str] = set()
    for fig in figures:
        if (p := figure_problem(fig)):
            raise RuleSetFailed(rs.id, where, p)
        if fig.metric in seen:
            raise RuleSetFailed(rs.id, where, f"metric {fig.metric!r} returned twice")
        _undeclared(rs, where, fig, params)
        seen.add(fig.metric)
    return figures


def checked_figure(rs: RuleSet, where: str, fig: Any, params: Any) -> Figure | None:
    """``roll_up``'s result: a Figure of a declared metric, or None."""
    if fig is not None:
        if (p := figure_problem(fig)):
            raise RuleSetFailed(rs.id, where, p)
        _undeclared(rs, where, fig, params)
    return fig


def checked_sequence(rs: RuleSet, where: str, months: Any, expected: list[str]) -> list[tuple[str, Figure]]:
    """``sequence``'s result: the same months, in order, each with a Figure."""
    if not isinstance(months, list):
        raise RuleSetFailed(rs.id, where, f"sequence: expected a list of (month, Figure), got {_type_name(months)}")
    got = [m[0] if isinstance(m, tuple) and len(m) == 2 else None for m in months]
    if got != expected:
        raise RuleSetFailed(rs.id, where, "sequence: expected the same months in the same order, "
                            f"got {got[:3]}{'…' if len(got) > 3 else ''}")
    for month, fig in months:
        if (p := figure_problem(fig)):
            raise RuleSetFailed(rs.id, f"{where} {month}", f"sequence: {p}")
    return months


def checked_credits(rs: RuleSet, where: str, credits: Any) -> list[Credit]:
    """``credits``' result: a list of Credit (subject, role, via — strings, subject non-empty)."""
    if not isinstance(credits, list):
        raise RuleSetFailed(rs.id, where, f"credits: expected a list of Credit, got {_type_name(credits)}")
    out = []
    for c in credits:
        if not isinstance(c, tuple) or not 1 <= len(c) <= 3 or not all(isinstance(x, str) for x in c):
            raise RuleSetFailed(rs.id, where, f"credits: expected Credit(subject, role, via) of strings, got {c!r}")
        c = c if isinstance(c, Credit) else Credit(*c)
        if not c.subject:
            raise RuleSetFailed(rs.id, where, "credits: a credit with an empty subject")
        out.append(c)
    return out


def checked_remedy(rs: RuleSet, where: str, why: Any) -> str | None:
    if why is not None and not isinstance(why, str):
        raise RuleSetFailed(rs.id, where, f"remedy: expected a string or None, got {_type_name(why)}")
    return why or None


def checked_item_points(rs: RuleSet, where: str, points: Any) -> dict[str, ItemPoints]:
    """``item_points``' result: item id → ItemPoints(points, possible), Decimals with
    ``0 ≤ points ≤ possible`` and ``possible > 0``."""
    if not isinstance(points, dict):
        raise RuleSetFailed(rs.id, where, f"item_points: expected a dict of ItemPoints, got {_type_name(points)}")
    out = {}
    for item, ip in points.items():
        if not isinstance(item, str) or not item:
            raise RuleSetFailed(rs.id, where, f"item_points: expected item ids as strings, got {item!r}")
        if not isinstance(ip, tuple) or len(ip) != 2 or not all(
                isinstance(x, Decimal) and x.is_finite() for x in ip):
            raise RuleSetFailed(rs.id, where, f"item_points: {item}: expected ItemPoints(points, possible) of "
                                f"Decimals, got {ip!r}")
        ip = ip if isinstance(ip, ItemPoints) else ItemPoints(*ip)
        if not (ip.possible > 0 and 0 <= ip.points <= ip.possible):
            raise RuleSetFailed(rs.id, where, f"item_points: {item}: expected 0 ≤ points ≤ possible and possible "
                                f"> 0, got {ip.points} of {ip.possible}")
        out[item] = ip
    return out


def checked_labels(rs: RuleSet, where: str, labels: Any) -> dict[str, str]:
    """``item_labels``' result: item id → label, both strings."""
    if not isinstance(labels, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        raise RuleSetFailed(rs.id, where, f"item_labels: expected a dict of strings, got {labels!r:.60}")
    return labels
