"""Engines for a threaded service: each call on an engine of its own, so reads run in parallel.

One :class:`~csat.engine.Engine` is safe to share between threads, but its calls take turns on
its one connection. A service that answers many readers at once (a FastAPI or Starlette app with
``def`` endpoints, a thread pool of workers) lends each call an engine of the pool instead:

>>> pool = EnginePool("csat.db", size=8)                    # doctest: +SKIP
>>> with pool.borrow() as engine:                           # doctest: +SKIP
...     rows = engine.scores(period="2026-03")

SQLite readers never wait for each other, nor for a writer (WAL); writes still take the store's
write lock one at a time, whichever engine makes them. The first engine loads the installed rule
sets (or takes those given); the others reuse them, so plugins load once.
"""
from __future__ import annotations

import contextlib
import os
import queue
import threading
from collections.abc import Iterable, Iterator

from ..errors import CsatError
from ..scoring.ruleset import RuleSet
from .api import Engine


class EnginePool:
    """Up to ``size`` engines on one store, each lent to one caller at a time.

    :param target: the store (a SQLite file or a ``postgresql://`` URL).
    :param size: how many engines at most (a borrower waits when all are lent).
    :param rulesets: the rule sets (default: the installed ones, loaded once).
    :param create: as for :meth:`Engine.open`.
    """

    def __init__(self, target: str | os.PathLike[str], size: int = 4, rulesets: Iterable[RuleSet] | None = None,
                 *, create: bool = True):
        if size < 1:
            raise CsatError(f"an engine pool holds at least one engine, got size {size}")
        first = Engine.open(target, rulesets, create=create)
        self.target = os.fspath(target)
        self.rulesets = list(first.rulesets.values())
        #: one line per plugin that failed to load (as :attr:`Engine.broken`)
        self.broken = list(first.broken)
        self._first = first
        self._idle: queue.LifoQueue[Engine] = queue.LifoQueue()  # the warmest engine first
        self._idle.put(first)
        self._made, self._size, self._lock = 1, size, threading.Lock()
        self._all = [first]
        self._closed = False

    @contextlib.contextmanager
    def borrow(self) -> Iterator[Engine]:
        """An engine for the block, returned to the pool after it (waits while all are lent)."""
        if self._closed:
            raise CsatError("this engine pool is closed")
        try:
            engine = self._idle.get_nowait()
        except queue.Empty:
            with self._lock:
                grow = self._made < self._size
                if grow:
                    self._made += 1
            if grow:
                try:
                    engine = Engine.open(self.target, self.rulesets)
                    engine.sources, engine.hooks, engine.broken = (self._first.sources, self._first.hooks,
                                                                   list(self.broken))
                except BaseException:
                    with self._lock:
                        self._made -= 1
                    raise
                with self._lock:
                    self._all.append(engine)
            else:
                engine = self._idle.get()
        try:
            yield engine
        finally:
            self._idle.put(engine)

    def __len__(self) -> int:
        """How many engines the pool has opened so far (at most ``size``)."""
        return len(self._all)

    def close(self) -> None:
        """Close every engine of the pool (those lent are closed too: call it when the service stops)."""
        self._closed = True
        with self._lock:
            engines, self._all = self._all, []
        for engine in engines:
            engine.close()

    def __enter__(self) -> "EnginePool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
