"""csat.engine — the core: events, the event store, projections, scoring
primitives, explanations and the embedding API (:class:`Engine`).

No command line and no plugin machinery lives here; rule sets are handed in.
"""
from .app.api import Engine, default_target
from .app.pool import EnginePool
from .errors import (CsatError, IngestFailed, InvalidEvent, InvalidParams, NotFound, RuleSetFailed,
                     RuleSetUnavailable, StoreError, UnknownRuleSet)
from .app.ingest import IngestReport

__all__ = ["Engine", "EnginePool", "default_target", "IngestReport", "CsatError", "IngestFailed", "InvalidEvent",
           "InvalidParams", "NotFound", "RuleSetFailed", "RuleSetUnavailable", "StoreError", "UnknownRuleSet"]
