"""Group commit: the raters' submissions that arrive together are appended together.

Every append is one write transaction, and a store has one writer at a time: 200 raters
submitting at once would queue 200 transactions. The :class:`Writer` thread takes whatever
submissions are waiting, appends them in one call (each event keeping its own actor), and tells
each submitter how theirs went. When the batch is refused, the problems name the events they are
about: the submissions with problems get theirs, and the others are appended again without them —
one rater's missing reason never holds up another's answers. Nothing is reported appended that
was not committed.
"""
from __future__ import annotations

import queue
import re
import threading
from concurrent.futures import Future
from typing import Any

from csat.engine import Engine, IngestFailed

_INDEX = re.compile(r"^events\[(\d+)\]: ")


class Writer:
    """One thread appending the web's submissions in batches, on an engine of its own.

    :param target: the store.
    :param rulesets: the rule sets (as the other engines of the application have them).
    """

    MAX_BATCH = 500  # submissions per append

    def __init__(self, target: str, rulesets: list[Any]):
        self.engine = Engine.open(target, rulesets)
        self._queue: queue.Queue[tuple[list[dict], Any, Future] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="csat-writer", daemon=True)
        self._thread.start()

    def submit(self, events: list[dict[str, Any]], actor: str | None) -> Future:
        """Queue one submission; the future's result is None once appended, or it raises
        :class:`IngestFailed` with this submission's problems (``events[i]`` its own indexes)."""
        done: Future = Future()
        self._queue.put((events, actor, done))
        return done

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(30)
        self.engine.close()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self.MAX_BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)
                    break
                batch.append(item)
            self._append(batch)

    def _append(self, batch: list[tuple[list[dict], Any, Future]]) -> None:
        while batch:
            events, actors, owner = [], [], []
            for n, (evs, actor, _) in enumerate(batch):
                events += evs
                actors += [actor] * len(evs)
                owner += [(n, i) for i in range(len(evs))]
            try:
                self.engine.append(events, actor=actors)
            except IngestFailed as e:
                mine: dict[int, list[str]] = {}
                unplaced = []
                for p in e.problems:
                    m = _INDEX.match(p)
                    if m is None:
                        unplaced.append(p)
                        continue
                    n, i = owner[int(m.group(1))]
                    mine.setdefault(n, []).append(f"events[{i}]: {p[m.end():]}")
                if unplaced or not mine:  # not about one submission: every one of them is told
                    for _, _, done in batch:
                        done.set_exception(IngestFailed(e.problems))
                    return
                for n, problems in mine.items():
                    batch[n][2].set_exception(IngestFailed(problems))
                batch = [b for n, b in enumerate(batch) if n not in mine]
                continue
            except BaseException as e:  # noqa: BLE001 — the store went away, …: each submitter is told
                for _, _, done in batch:
                    done.set_exception(e)
                return
            for _, _, done in batch:
                done.set_result(None)
            try:  # the read models follow at once, here: readers then find nothing to catch up on
                self.engine.catch_up()
            except Exception:  # noqa: BLE001 — the next reader catches up instead
                pass
            return
