"""An alias kept for rule-set plugins (the public plugin API): the rule-set contract —
now in :mod:`csat.engine.scoring.ruleset`; ``import csat.engine.ruleset`` gives that very module."""
import sys

from .scoring import ruleset as _module

sys.modules[__name__] = _module
