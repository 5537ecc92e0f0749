"""An alias kept for rule-set plugins (the public plugin API): months, quarters and years —
now in :mod:`csat.engine.scoring.periods`; ``import csat.engine.periods`` gives that very module."""
import sys

from .scoring import periods as _module

sys.modules[__name__] = _module
