"""An alias kept for rule-set plugins (the public plugin API): parameter files and merging —
now in :mod:`csat.engine.scoring.params`; ``import csat.engine.params`` gives that very module."""
import sys

from .scoring import params as _module

sys.modules[__name__] = _module
