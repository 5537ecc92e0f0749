"""An alias kept for rule-set plugins (the public plugin API): the events (frozen msgspec Structs with stable tags) —
now in :mod:`csat.engine.log.events`; ``import csat.engine.events`` gives that very module."""
import sys

from .log import events as _module

sys.modules[__name__] = _module
