"""An alias kept for rule-set plugins (the public plugin API): exact decimal arithmetic —
now in :mod:`csat.engine.scoring.numbers`; ``import csat.engine.numbers`` gives that very module."""
import sys

from .scoring import numbers as _module

sys.modules[__name__] = _module
