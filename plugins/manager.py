"""The plugin-manager factory. There is no global manager: every call returns a
fresh one, so an embedding application chooses which plugins take part."""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass

import pluggy

from csat.engine.errors import CsatError
from csat.engine.ruleset import RuleSet

from . import hookspecs
from .markers import PROJECT

#: Built-in plugins, registered under these names exactly like third-party ones.
BUILTIN_PLUGINS = (
    "csat.rulesets.airline_1000",
    "csat.rulesets.plant_50",
    "csat.rulesets.iso_100",
    "csat.rulesets.dealership_cs",
    "csat.rulesets.supplier_400",
)

#: Set to a non-empty value to skip plugins found through the ``csat`` entry-point group.
NO_ENTRY_POINTS_ENV = "CSAT_NO_ENTRY_POINTS"


@dataclass(frozen=True)
class RuleSetInfo:
    """An installed rule set and where it comes from."""

    ruleset: RuleSet
    plugin: str                 # the plugin's registered name
    source: str                 # "built in", or "<distribution> <version>"
    hooks: tuple[str, ...]      # hooks the providing plugin implements


def make_plugin_manager(*, builtins: bool = True, entry_points: bool | None = None,
                        plugins: dict[str, object] | None = None) -> pluggy.PluginManager:
    """A fresh plugin manager with csat's hook specifications.

    :param builtins: register the built-in rule-set plugins.
    :param entry_points: load plugins from the ``csat`` entry-point group;
        default: yes, unless the environment variable ``CSAT_NO_ENTRY_POINTS``
        is set.
    :param plugins: further plugins to register, by name.
    """
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    if builtins:
        for name in BUILTIN_PLUGINS:
            pm.register(importlib.import_module(name), name=name)
    for name, plugin in (plugins or {}).items():
        pm.register(plugin, name=name)
    if entry_points is None:
        entry_points = not os.environ.get(NO_ENTRY_POINTS_ENV)
    if entry_points:
        pm.load_setuptools_entrypoints(PROJECT)
    return pm


def _hooks_of(pm: pluggy.PluginManager, plugin: object) -> tuple[str, ...]:
    return tuple(sorted(c.name for c in pm.get_hookcallers(plugin) or ()))


def installed_rulesets(pm: pluggy.PluginManager) -> list[RuleSetInfo]:
    """Every rule set the registered plugins provide, checked for duplicate ids."""
    dists = {id(plugin): f"{dist.project_name} {dist.version}" for plugin, dist in pm.list_plugin_distinfo()}
    found: dict[str, RuleSetInfo] = {}
    for impl in pm.hook.csat_rulesets.get_hookimpls():  # registration order
        name = pm.get_name(impl.plugin) or repr(impl.plugin)
        for rs in impl.function() or ():
            if not isinstance(rs, RuleSet):
                raise CsatError(f"plugin {name!r}: csat_rulesets returned {rs!r}, not a RuleSet")
            if rs.id in found:
                raise CsatError(f"rule set {rs.id!r} is provided by both {found[rs.id].plugin!r} and {name!r}")
            source = dists.get(id(impl.plugin), "built in" if name in BUILTIN_PLUGINS else "registered")
            found[rs.id] = RuleSetInfo(rs, name, source, _hooks_of(pm, impl.plugin))
    return sorted(found.values(), key=lambda i: i.ruleset.id)
