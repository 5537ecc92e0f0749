"""csat's plugin system (pluggy): hook specifications, the plugin-manager factory
and, in :mod:`csat.plugins.testing`, a conformance kit for rule-set authors.

A plugin is a module or object with ``@hookimpl`` functions named after the
hooks in :mod:`csat.plugins.hookspecs`. Third-party plugins are found through
the ``csat`` entry-point group; built-in rule sets are plugins of exactly the
same kind, registered by :func:`make_plugin_manager`.
"""
from .markers import hookimpl, hookspec
from .manager import (BUILTIN_PLUGINS, BrokenPlugin, CsatPluginManager, RuleSetInfo, installed_rulesets,
                      load_rulesets, make_plugin_manager)

__all__ = ["hookimpl", "hookspec", "make_plugin_manager", "installed_rulesets", "load_rulesets", "RuleSetInfo",
           "BrokenPlugin", "CsatPluginManager", "BUILTIN_PLUGINS"]
