"""The engine from asyncio code: :class:`AsyncEngine` runs each call off the event loop.

An ``async def`` endpoint must not call the engine directly: a read that catches up, an ingest, a
replay would hold the event loop and every other request with it. :class:`AsyncEngine` runs each
call in a worker thread of its own pool, on an engine of an :class:`~csat.engine.EnginePool` (each
opened when first needed, with the first engine's rule sets), so reads run in parallel — SQLite
readers never wait for each other (WAL), nor PostgreSQL sessions — while writes take the store's
write lock one at a time, as several processes' do.

>>> async def main():                                               # doctest: +SKIP
...     async with await AsyncEngine.open("csat.db") as engine:
...         await engine.append([{"type": "response", ...}])
...         rows = await engine.scores(period="2026-03")
...         news = await engine.changes(since=position)
"""
from __future__ import annotations

import asyncio
import functools
import inspect
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..errors import CsatError
from ..scoring.ruleset import RuleSet
from .api import Engine, default_target
from .pool import EnginePool
from .changes import Changes


class AsyncEngine:
    """An engine for asyncio code: every public method of :class:`~csat.engine.Engine` (``scores``,
    ``explain``, ``append``, ``ingest``, ``adopt``, ``announce``, ``changes``, ``log``, ``head``,
    ``caught_up``, …) as a coroutine with the same arguments, run in one of ``threads`` worker
    threads on an engine lent by its pool for the call. A method that streams (``log``) comes back
    as a list. Open it with ``await AsyncEngine.open(…)``; ``async with`` (or :meth:`close`) closes
    every engine. ``rulesets`` and ``broken`` are the first engine's.

    Calls that fork (``rebuild`` and ``catch_up`` with ``jobs`` > 1) must not be made from it:
    forking a process that runs threads is unsafe.
    """

    def __init__(self, engines: EnginePool, pool: ThreadPoolExecutor):
        self._engines, self._pool = engines, pool
        self.rulesets = {rs.id: rs for rs in engines.rulesets}
        self.broken = list(engines.broken)
        self._closed = False

    @classmethod
    async def open(cls, target: str | os.PathLike[str] | None = None, rulesets: Iterable[RuleSet] | None = None,
                   *, threads: int = 4, create: bool = True) -> "AsyncEngine":
        """Open a store as :meth:`Engine.open` does (in a worker thread), with ``threads`` worker
        threads for the calls to come, each call on an engine of an
        :class:`~csat.engine.EnginePool` of that size."""
        if threads < 1:
            raise CsatError(f"an async engine needs at least one thread, got {threads}")
        where = os.fspath(target) if target is not None else default_target()
        pool = ThreadPoolExecutor(threads, thread_name_prefix="csat-async")
        try:
            engines = await asyncio.get_running_loop().run_in_executor(
                pool, functools.partial(EnginePool, where, threads, rulesets, create=create))
        except BaseException:
            pool.shutdown(wait=False)
            raise
        return cls(engines, pool)

    def _call(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        with self._engines.borrow() as engine:
            result = getattr(engine, name)(*args, **kwargs)
            return list(result) if inspect.isgenerator(result) else result  # read here, on the lent engine

    async def _run(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if self._closed:
            raise CsatError("this async engine is closed")
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, functools.partial(self._call, name, args, kwargs))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or not callable(getattr(Engine, name, None)):
            raise AttributeError(f"{type(self).__name__!r} has no attribute {name!r} (its methods are Engine's, "
                                 "as coroutines)")

        @functools.wraps(getattr(Engine, name))
        async def call(*args: Any, **kwargs: Any) -> Any:
            return await self._run(name, *args, **kwargs)

        return call

    async def changes(self, since: int | str = 0, until: int | str | None = None) -> Changes:
        """:meth:`Engine.changes` off the event loop: the figures that moved since ``since``."""
        return await self._run("changes", since, until)

    async def close(self) -> None:
        """Wait for the calls under way, then close every engine."""
        if self._closed:
            return
        self._closed = True
        await asyncio.get_running_loop().run_in_executor(None, self._shut)

    def _shut(self) -> None:
        self._pool.shutdown(wait=True)
        self._engines.close()

    async def __aenter__(self) -> "AsyncEngine":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
