"""Hook specifications: the reference for plugin authors.

A plugin implements any of these hooks with :data:`csat.plugins.hookimpl`::

    from csat.plugins import hookimpl

    @hookimpl
    def csat_rulesets():
        return [MyRuleSet()]

and is made known to csat through the ``csat`` entry-point group of its
distribution::

    [project.entry-points.csat]
    my_company = "my_company_csat.plugin"

csat calls every hook with keyword arguments. A rule set itself is an object
of a :class:`csat.engine.ruleset.RuleSet` subclass; its methods (parameters,
input checks, scoring, roll-ups) are documented there.
"""
from __future__ import annotations

from .markers import hookspec


@hookspec
def csat_rulesets() -> list:
    """Return the rule sets this plugin provides.

    Called once when the engine is opened. Every rule set id must be unique
    across all installed plugins: a rule set whose id another plugin already
    provides is skipped, and listed as broken naming both. A plugin whose
    hook raises, or returns anything but a list of well-formed rule sets, is
    skipped the same way; every other plugin keeps working.

    :returns: a list of :class:`csat.engine.ruleset.RuleSet` instances (may be
        empty).
    """


@hookspec
def csat_demo_files() -> list:
    """Return JSON Lines files that ``csat demo`` ingests to show this plugin's rule sets.

    The files are ingested in the order plugins are called, each through the
    ordinary ``csat ingest`` path (validated, all or nothing).

    :returns: a list of paths (``str`` or :class:`os.PathLike`), possibly empty.
    """


@hookspec(firstresult=True)
def csat_demo_explain() -> tuple | None:
    """Name the figure ``csat demo`` explains after printing the scores.

    ``firstresult``: the first plugin that answers wins (built-ins answer last,
    so an installed plugin can feature its own rule set).

    :returns: ``(ruleset, subject, period, metric)`` or ``None`` to pass.
    """
