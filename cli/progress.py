"""Progress of long runs on stderr: lines checked, events applied, subject-months scored.

One status line, rewritten in place, shown only when stderr is a terminal (or
when forced, for tests); throttled so that printing never costs the run.
"""
from __future__ import annotations

import sys
import time
from typing import IO


class ProgressLine:
    """``progress(events=…, scored=…, lines=…)`` — the callback the engine's long runs accept."""

    def __init__(self, label: str, events_total: int = 0, lines_total: int = 0, *, file: IO[str] | None = None,
                 force: bool = False, every: float = 0.1):
        self.file = file if file is not None else sys.stderr
        self.enabled = force or self.file.isatty()
        self.label = label
        self.events_total = events_total
        self.lines_total = lines_total
        self.events = self.scored = self.lines = 0
        self.every = every
        self._last = 0.0
        self._shown = False
        self._done = False

    def __call__(self, events: int = 0, scored: int = 0, lines: int = 0) -> None:
        self.events += events
        self.scored += scored
        self.lines += lines
        now = time.monotonic()
        if self.enabled and now - self._last >= self.every:
            self._last = now
            self._show()

    def text(self) -> str:
        parts = []
        if self.lines_total or self.lines:
            parts.append(f"{self.lines:,}/{self.lines_total:,} lines checked" if self.lines_total
                         else f"{self.lines:,} lines checked")
        if self.events_total or self.events:
            total = max(self.events_total, self.events)
            parts.append(f"{self.events:,}/{total:,} events applied ({self.events * 100 // total if total else 100}%)")
        if self.scored:
            parts.append(f"{self.scored:,} subject-months scored")
        return f"{self.label}: " + " · ".join(parts)

    def _show(self) -> None:
        self.file.write("\r" + self.text() + "\x1b[K")
        self.file.flush()
        self._shown = True

    def done(self) -> None:
        """Leave the final figures on their own line."""
        if self.enabled and not self._done and (self._shown or self.events or self.scored or self.lines):
            self._done = True
            self._show()
            self.file.write("\n")
            self.file.flush()
