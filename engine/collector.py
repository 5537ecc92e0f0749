"""Python's cyclic garbage collector, paused while the engine makes objects in bulk.

A replay, an ingest or a catch-up makes millions of short-lived objects with no reference
cycles among them — events, states, credits, inputs, figures — which reference counting frees
as they go. The collector would walk the growing heap again and again meanwhile (a third of a
what-if's time), finding nothing. Every layer may use it.
"""
from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator


_lock = threading.Lock()
_paused = [0, False]  # blocks open (in any thread), and whether the collector ran before the first


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """The collector paused for the block and resumed when the last such block (of any thread)
    ends, as it was before the first began: an embedder that disabled it keeps it disabled.
    Cycles made meanwhile (by a plugin, say) wait for the next collection; none is lost.
    Also a decorator: ``@collector_paused()``."""
    with _lock:
        if _paused[0] == 0:
            _paused[1] = gc.isenabled()
            gc.disable()
        _paused[0] += 1
    try:
        yield
    finally:
        with _lock:
            _paused[0] -= 1
            if _paused[0] == 0 and _paused[1]:
                gc.enable()
