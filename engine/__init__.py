"""csat.engine — the core: events, the event store, projections, scoring
primitives, explanations and the embedding API (:class:`Engine`).

No command line and no plugin machinery lives here; rule sets are handed in.
"""
from .app.api import Engine, default_target
from .app.pool import EnginePool
from .processes import end_with_parent
from .errors import (CsatError, IngestFailed, InvalidEvent, InvalidParams, NotFound, RuleSetFailed,
                     RuleSetUnavailable, StoreError, UnknownRuleSet)
from .app.ingest import IngestReport
from .jsonable import to_json

__all__ = ["Engine", "AsyncEngine", "EnginePool", "default_target", "end_with_parent", "IngestReport", "CsatError",
           "IngestFailed", "InvalidEvent", "InvalidParams", "NotFound", "RuleSetFailed", "RuleSetUnavailable", "StoreError",
           "UnknownRuleSet", "to_json"]


def __getattr__(name: str) -> object:
    if name == "AsyncEngine":  # imported when asked for: asyncio costs every other import ~80 ms
        from .app.aio import AsyncEngine
        return AsyncEngine
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
