"""The error hierarchy: one root, mixed with the built-in it resembles."""
from __future__ import annotations


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


class NotFound(CsatError, LookupError):
    """A subject, period or event that was asked for does not exist."""


class IngestFailed(CsatError, ValueError):
    """An ingest found problems; nothing was appended.

    ``problems`` holds one ``FILE:LINE: message`` string per problem.
    """

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        n = len(self.problems)
        super().__init__(f"{n} problem{'s' if n != 1 else ''}; nothing appended")


class StoreError(CsatError, RuntimeError):
    """The event store or the read models cannot be used as asked."""
