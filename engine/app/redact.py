"""Confidential raters (考核数据保密): who gave a mark replaced by a stable pseudonym.

Within one output the first rater met is ``rater-1``, the next ``rater-2``, and
the same person keeps the same pseudonym wherever they appear — a ``rater``
field, an id that embeds the name (``plant-2026-03-finance-workshop-7``), a
reason, a comment, a step label or formula, any field in any format — so an
output can still be read ("rater-3 gave both low marks") without naming
anyone. Pseudonyms are not stable across outputs: two listings cannot be
joined to re-identify.

The names to hide are known up front (:meth:`csat.engine.Engine.pseudonyms`:
every rater and respondent in the log), so a text that names a person before
the output reaches that person's own response is redacted too. A name is
replaced wherever it stands inside a string — over-redacting is the safe side —
except a short ASCII name (``c1``), replaced only where it stands as a token.
The fields that say what was assessed and how (``subject``, ``metric``,
hashes, …, :data:`KEPT`) are left as they are: a department that rates others
is still named where it is the one rated.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from ..log.personal import ERASED, SEALED

#: the event fields that name a person or a rating unit, and the pseudonym each becomes
FIELDS = {"rater": "rater", "respondent": "respondent"}
#: fields never redacted: what was assessed, under which rules, and the log's own fingerprints
KEPT = frozenset({"subject", "subject_name", "ruleset", "metric", "period", "type", "kind", "recorded", "adoption",
                  "adoption_from", "params_hash", "log_head", "head_hash", "grade", "grade_label", "from"})
#: ASCII names this short are matched as whole tokens only (``c1`` is not redacted inside ``c10``'s hash)
SHORT = 2
#: what stands where a personal value cannot be read (:mod:`csat.engine.log.personal`): no name
MARKS = frozenset({ERASED, SEALED})


class Pseudonyms:
    """The pseudonyms of one output.

    :param known: ``(kind, name)`` pairs of every name to hide (kind ``rater`` or ``respondent``).
    """

    def __init__(self, known: Iterable[tuple[str, str]] = ()) -> None:
        self._kind: dict[str, str] = {}   # a name -> the kind it was first known as
        self._of: dict[str, str] = {}     # a name -> its pseudonym (given on first appearance)
        self._counts: dict[str, int] = {}
        self._pattern: re.Pattern[str] | None = None
        for kind, name in known:
            self.know(kind, name)

    def know(self, kind: str, name: str) -> None:
        """Add a name to hide (its pseudonym is given where it first appears); the marks of an
        erased or sealed value hide no one and stay as they are."""
        if name and name not in self._kind and name not in MARKS:
            self._kind[name] = kind
            self._pattern = None

    def of(self, kind: str, value: str) -> str:
        """The pseudonym of ``value`` (given now if it has none yet)."""
        if value in MARKS:
            return value
        self.know(kind, value)
        found = self._of.get(value)
        if found is None:
            kind = self._kind[value]
            while True:  # a pseudonym never contains a name it hides (a rater called "rater")
                self._counts[kind] = self._counts.get(kind, 0) + 1
                found = f"{kind}-{self._counts[kind]}"
                if not self._names_in(found):
                    break
            self._of[value] = found
        return found

    def _names_in(self, text: str) -> bool:
        return self._regex().search(text) is not None

    def _regex(self) -> re.Pattern[str]:
        if self._pattern is None:
            names = sorted(self._kind, key=len, reverse=True)  # the longest first: flight-ops/gm before flight-ops
            parts = [rf"(?<![A-Za-z0-9]){re.escape(n)}(?![A-Za-z0-9])" if len(n) <= SHORT and n.isascii()
                     else re.escape(n) for n in names]
            self._pattern = re.compile("|".join(parts)) if parts else re.compile(r"(?!x)x")
        return self._pattern

    def text(self, text: str) -> str:
        """``text`` with every name to hide replaced by its pseudonym."""
        if not self._kind or not text:
            return text
        return self._regex().sub(lambda m: self.of(self._kind[m.group(0)], m.group(0)), text)

    def deep(self, value: Any, key: str | None = None) -> Any:
        """``value`` with every string in it (keys too, nested in lists and dicts) redacted, except
        the fields in :data:`KEPT`."""
        if isinstance(value, str):
            return value if key in KEPT else self.text(value)
        if isinstance(value, dict):
            return {(self.text(k) if isinstance(k, str) else k): self.deep(v, k) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.deep(v, key) for v in value]
        return value

    def meet(self, event: dict[str, Any]) -> None:
        """Give the raters and respondents of an event (as a dict) their pseudonyms, in field order."""
        for field, kind in FIELDS.items():
            if isinstance(event.get(field), str) and event[field]:
                self.of(kind, event[field])

    def event(self, event: dict[str, Any]) -> dict[str, Any]:
        """An event (as a dict) with its raters and respondents — and every other string that
        names one of them — replaced."""
        self.meet(event)  # its own rater is known even if the list given up front missed it
        return self.deep(event)

    def row(self, row: dict[str, Any]) -> dict[str, Any]:
        """A listing's row (``csat log``) with its ``event`` met first, then every string redacted."""
        if isinstance(row.get("event"), dict):
            self.meet(row["event"])
        return self.deep(row)

    def steps(self, steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """An explanation's steps with the names replaced in labels and formulas."""
        return [{**s, "label": self.text(s["label"]), "formula": self.text(s["formula"])} for s in steps]


def explanation(x: dict[str, Any], names: Pseudonyms, events: Iterable[dict[str, Any]] = ()) -> dict[str, Any]:
    """An explanation with every rater and respondent replaced (steps, event ids, why, any other
    field); ``events`` are the events it read, as dicts in log order: their raters get the first
    pseudonyms."""
    for ev in events:
        names.meet(ev)
    return names.deep(x)
