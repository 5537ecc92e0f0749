"""sqlite-utils, imported without the pandas and numpy it looks for.

sqlite-utils imports pandas and numpy at import time when they are installed, only to map their
scalar types to column types on insert. csat inserts plain Python values, so it never needs that
mapping — and with the ``frames`` extra installed the two would double the start-up time of every
``csat`` command (0.38 s → 1.04 s here). This module imports sqlite-utils once with them hidden
(unless the application imported them already: then sqlite-utils gets them as usual). Every csat
module takes sqlite-utils from here.
"""
from __future__ import annotations

import sys
from types import ModuleType


def _import() -> ModuleType:
    if "sqlite_utils" in sys.modules:
        return sys.modules["sqlite_utils"]
    hidden = [name for name in ("pandas", "numpy") if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # an import of it raises ImportError
    try:
        import sqlite_utils
    finally:
        for name in hidden:
            del sys.modules[name]
    return sqlite_utils


sqlite_utils = _import()
