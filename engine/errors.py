"""The error hierarchy: one root, mixed with the built-in it resembles."""
from __future__ import annotations

from collections.abc import Iterable


class CsatError(Exception):
    """Root of every error csat raises on purpose."""


class InvalidEvent(CsatError, ValueError):
    """An event (or input line) failed validation."""


class InvalidParams(CsatError, ValueError):
    """Rule-set parameters failed their schema or their rule set's checks."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


class UnknownRuleSet(CsatError, LookupError):
    """No installed rule set has this id."""

    @classmethod
    def of(cls, ruleset: str, installed: Iterable[str]) -> "UnknownRuleSet":
        return cls(f"rule set {ruleset!r} is not installed (installed: {', '.join(sorted(installed)) or 'none'})")


class NotFound(CsatError, LookupError):
    """A subject, period or event that was asked for does not exist."""


_BREAKS = str.maketrans({"\n": "\\n", "\r": "\\r", "\v": "\\x0b", "\f": "\\x0c", "\x1c": "\\x1c", "\x1d": "\\x1d",
                         "\x1e": "\\x1e", "\x85": "\\x85", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def one_line(text: str) -> str:
    """``text`` with every character that breaks a line (for ``str.splitlines``: U+2028, U+0085,
    …) escaped, so that one problem stays one line for line-based tools."""
    return text.translate(_BREAKS)


class IngestFailed(CsatError, ValueError):
    """An ingest found problems; nothing was appended.

    ``problems`` holds one ``FILE:LINE: message`` string per problem (``events[I]: message`` for
    events given to :meth:`~csat.engine.Engine.append`, I their index), each on one line.
    """

    def __init__(self, problems: list[str]):
        self.problems = [one_line(p) for p in problems]
        n = len(self.problems)
        super().__init__(f"{n} problem{'s' if n != 1 else ''}; nothing appended")


class StoreError(CsatError, RuntimeError):
    """The event store or the read models cannot be used as asked."""


class RuleSetFailed(CsatError, RuntimeError):
    """A rule set's code raised, or returned something other than its contract says.

    ``ruleset`` is its id, ``where`` what it was doing (e.g. ``scoring finance 2026-03``),
    ``problem`` what was wrong. Other rule sets keep working.
    """

    def __init__(self, ruleset: str, where: str, problem: str):
        self.ruleset, self.where, self.problem = ruleset, where, problem
        super().__init__(f"rule set {ruleset}: {where}: {problem}")

    def __reduce__(self) -> tuple[type, tuple[str, str, str]]:  # (from a scoring process, intact)
        return type(self), (self.ruleset, self.where, self.problem)


class RuleSetUnavailable(CsatError, LookupError):
    """A command needs a rule set whose events are in the log but which is not installed (or is broken)."""


class LogDamaged(StoreError):
    """The log does not chain, or a row cannot be decoded, at ``position`` (see ``csat verify``).

    Projections stop before such a row: nothing from it on is scored, nothing before it is lost.
    """

    def __init__(self, position: int, problem: str):
        self.position, self.problem = position, problem
        super().__init__(f"the log does not chain at position {position}: {problem}; nothing from there on is "
                         "scored (csat verify checks the whole log)")


class NoStore(StoreError):
    """There is no csat store at the target (only writing commands create one)."""


class PgIntegrityError(StoreError):
    """A PostgreSQL constraint refused a write (the counterpart of ``sqlite3.IntegrityError``)."""


class NotYetCurrent(StoreError):
    """What was asked for is in the log but not yet in the read models: another process holds the
    write lock (an ingest, a catch-up) and the read answered from the read models last committed;
    asking again in a moment answers it."""
