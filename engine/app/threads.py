"""Threads and one engine: its calls take turns, and a call that fails leaves no transaction open.

An :class:`~csat.engine.Engine` holds one database connection, and a connection runs one
transaction at a time. A web service that shares one engine between the threads of its pool (as
FastAPI and Starlette do for ``def`` endpoints) would otherwise interleave two appends on it — a
write inside another's transaction, a commit of half of another's batch — and break the log's
chain for good. So every public method of the engine (and of the objects it hands out that reach
the same connection, such as its accounts) runs behind one :class:`Gate`: a re-entrant lock, held
for the whole call (for a method that streams, for each step of the stream).

When the outermost call of a thread ends in an exception, the gate rolls back whatever
transaction it left open on the connection: the next call, from any thread, starts clean.

For reads in parallel, an :class:`~csat.engine.app.pool.EnginePool` gives each thread an engine of
its own (SQLite readers never wait for each other; PostgreSQL sessions neither).
"""
from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from ..errors import CsatError

T = TypeVar("T")


class Gate:
    """One engine's turn-taking: a re-entrant lock, and what to do when a call fails.

    :param recover: called (under the lock) when the outermost call of a thread raised — it
        rolls back a transaction the call left open.
    """

    def __init__(self, recover: Callable[[], None]):
        self._lock = threading.RLock()
        self._depth = 0  # (changed only by the thread holding the lock)
        self._recover = recover
        #: set when the engine was closed: a later call is refused in one line (closing again is not)
        self.closed = False

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        with self._lock:
            self._depth += 1
            try:
                return fn(*args, **kwargs)
            except BaseException:
                if self._depth == 1:
                    self._recover()
                raise
            finally:
                self._depth -= 1

    def stream(self, items: Iterator[T]) -> Iterator[T]:
        """``items`` (a generator reading the connection) advanced one step at a time under the
        lock; other calls may run between two steps (a close among them ends the stream)."""
        while True:
            if self.closed:
                raise CsatError("the engine was closed while this listing was read")
            try:
                item = self.call(next, items)
            except StopIteration:
                return
            yield item


def _gated(fn: Callable[..., Any]) -> Callable[..., Any]:
    closing = fn.__name__ == "close"

    @functools.wraps(fn)
    def gated(self: Any, *args: Any, **kwargs: Any) -> Any:
        if self._gate.closed and not closing:
            raise CsatError(f"{type(self).__name__.lower()} is closed: open the store again to go on")
        result = self._gate.call(fn, self, *args, **kwargs)
        if inspect.isgenerator(result):
            return self._gate.stream(result)
        return result

    gated.__csat_gated__ = True  # type: ignore[attr-defined]
    return gated


def gated(cls: type[T]) -> type[T]:
    """Class decorator: every public method of ``cls`` (its own and those it inherits, save
    ``object``'s; not class or static methods, not properties) runs through the instance's
    ``_gate`` (a :class:`Gate`)."""
    seen: set[str] = set()
    for klass in cls.__mro__:
        if klass is object:
            continue
        for name, value in vars(klass).items():
            if name.startswith("_") or name in seen:
                continue
            seen.add(name)
            if inspect.isfunction(value) and not getattr(value, "__csat_gated__", False):
                setattr(cls, name, _gated(value))
    return cls
