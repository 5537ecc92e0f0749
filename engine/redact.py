"""Confidential raters (考核数据保密): who gave a mark replaced by a stable pseudonym.

Within one output the first rater met is ``rater-1``, the next ``rater-2``, and
the same person keeps the same pseudonym wherever they appear (an event's
field, an explanation's step label or formula), so an output can still be
read — "rater-3 gave both low marks" — without naming anyone. Pseudonyms are
not stable across outputs: two listings cannot be joined to re-identify.
"""
from __future__ import annotations

import re
from typing import Any

#: the event fields that name a person or a rating unit, and the pseudonym each becomes
FIELDS = {"rater": "rater", "respondent": "respondent"}


class Pseudonyms:
    """The pseudonyms of one output."""

    def __init__(self) -> None:
        self._of: dict[tuple[str, str], str] = {}
        self._counts: dict[str, int] = {}
        self._pattern: re.Pattern[str] | None = None
        self._by_name: dict[str, str] = {}  # a name as met in text -> its (first) pseudonym

    def of(self, kind: str, value: str) -> str:
        found = self._of.get((kind, value))
        if found is None:
            self._counts[kind] = self._counts.get(kind, 0) + 1
            found = self._of[(kind, value)] = f"{kind}-{self._counts[kind]}"
            self._pattern = None
        return found

    def event(self, event: dict[str, Any]) -> dict[str, Any]:
        """An event (as a dict) with its raters and respondents replaced."""
        out = dict(event)
        for field, kind in FIELDS.items():
            if isinstance(out.get(field), str) and out[field]:
                out[field] = self.of(kind, out[field])
        return out

    def steps(self, steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """An explanation's steps with the names met so far replaced in labels and formulas."""
        return [{**s, "label": self.text(s["label"]), "formula": self.text(s["formula"])} for s in steps]

    def text(self, text: str) -> str:
        """``text`` with every name met so far replaced where it stands as a token (letters and
        digits do not continue it on either side)."""
        if not self._of or not text:
            return text
        if self._pattern is None:
            names = sorted({v for _, v in self._of}, key=len, reverse=True)
            # a whole token, or a part of an id between hyphens (an id like plant-2026-03-x-workshop-1
            # names its rater too): over-redacting is the safe side
            self._pattern = re.compile(r"(?<!\w)(" + "|".join(map(re.escape, names)) + r")(?!\w)")
            self._by_name = {}
            for (kind, value), pseudonym in self._of.items():
                self._by_name.setdefault(value, pseudonym)
        return self._pattern.sub(lambda m: self._by_name[m.group(1)], text)


def explanation(x: dict[str, Any], events: list[dict[str, Any]]) -> dict[str, Any]:
    """An explanation with the raters and respondents of ``events`` (the events it read, as
    dicts, in log order) replaced in its steps."""
    names = Pseudonyms()
    for ev in events:
        names.event(ev)
    return {**x, "steps": names.steps(x["steps"])}
