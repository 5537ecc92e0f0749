"""Processes that end with the process that started them.

A process csat starts to help — a scoring process of ``csat rebuild``, a worker of ``csat serve
--workers N`` — must not outlive the command after a ``kill -9`` of it: left behind, it would hold
the command's output, the store's files or the port. :func:`end_with_parent` is called in the
helper process, once, first thing.
"""
from __future__ import annotations

import os
import signal
import threading
import time


def end_with_parent(parent: int) -> None:
    """End this process when process ``parent`` ends: Linux kills it at once
    (``PR_SET_PDEATHSIG``); elsewhere a daemon thread looks every half second. A parent that is
    already gone ends this process now."""
    try:
        import ctypes
        if ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0) == 0:  # PR_SET_PDEATHSIG
            if os.getppid() != parent:  # it ended before this was set
                os._exit(1)
            return
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass

    def watch() -> None:  # pragma: no cover - not Linux
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="csat-parent-watch", daemon=True).start()  # pragma: no cover
