"""The plugin-manager factory. There is no global manager: every call returns a
fresh one, so an embedding application chooses which plugins take part."""
from __future__ import annotations

import importlib
import importlib.metadata
import os
from dataclasses import dataclass

import msgspec
import pluggy

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


@dataclass(frozen=True)
class BrokenPlugin:
    """A plugin (or one of its rule sets) that was skipped, and why."""

    plugin: str                 # the entry point's or registration's name
    source: str                 # "<distribution> <version>", "built in" or "registered"
    reason: str

    def line(self) -> str:
        return f"plugin {self.plugin} ({self.source}) skipped: {self.reason}"

    def as_dict(self) -> dict[str, str]:
        return {"plugin": self.plugin, "source": self.source, "reason": self.reason}


class CsatPluginManager(pluggy.PluginManager):
    """pluggy's manager, remembering where each plugin came from and which failed to load."""

    def __init__(self) -> None:
        super().__init__(PROJECT)
        self.sources: dict[str, str] = {}           # plugin name -> where it comes from
        self.broken: list[BrokenPlugin] = []        # plugins that could not be loaded


def make_plugin_manager(*, builtins: bool = True, entry_points: bool | None = None,
                        plugins: dict[str, object] | None = None) -> CsatPluginManager:
    """A fresh plugin manager with csat's hook specifications.

    A plugin that cannot be loaded (its import fails, a hook's signature does
    not match its specification) is skipped and listed in ``pm.broken``;
    every other plugin is registered.

    :param builtins: register the built-in rule-set plugins.
    :param entry_points: load plugins from the ``csat`` entry-point group;
        default: yes, unless the environment variable ``CSAT_NO_ENTRY_POINTS``
        is set.
    :param plugins: further plugins to register, by name.
    """
    pm = CsatPluginManager()
    pm.add_hookspecs(hookspecs)
    if builtins:
        for name in BUILTIN_PLUGINS:
            _register(pm, importlib.import_module(name), name, "built in")
    for name, plugin in (plugins or {}).items():
        _register(pm, plugin, name, "registered")
    if entry_points is None:
        entry_points = not os.environ.get(NO_ENTRY_POINTS_ENV)
    if entry_points:
        for ep in importlib.metadata.entry_points(group=PROJECT):
            if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
                continue
            source = f"{ep.dist.name} {ep.dist.version}" if ep.dist is not None else ep.value
            try:
                plugin = ep.load()
            except BaseException as e:  # noqa: BLE001 — an import error, or a plugin that exits on import
                if isinstance(e, KeyboardInterrupt):
                    raise
                pm.broken.append(BrokenPlugin(ep.name, source, f"cannot be imported: {_reason(e)}"))
                continue
            _register(pm, plugin, ep.name, source)
    return pm


def _reason(e: BaseException) -> str:
    """An exception as one line (pluggy's validation messages span several)."""
    text = "; ".join(line.strip() for line in str(e).splitlines() if line.strip())
    return f"{type(e).__name__}: {text[:300]}" if text else type(e).__name__


def _register(pm: CsatPluginManager, plugin: object, name: str, source: str) -> None:
    try:
        pm.register(plugin, name=name)
    except (pluggy.PluginValidationError, ValueError) as e:
        pm.broken.append(BrokenPlugin(name, source, f"does not match csat's hooks: {_reason(e)}"))
        return
    pm.sources[name] = source


def _hooks_of(pm: pluggy.PluginManager, plugin: object) -> tuple[str, ...]:
    return tuple(sorted(c.name for c in pm.get_hookcallers(plugin) or ()))


def ruleset_problem(rs: object) -> str | None:
    """What makes an object returned by ``csat_rulesets`` unusable as a rule set, or None."""
    if not isinstance(rs, RuleSet):
        return f"csat_rulesets returned {rs!r:.60}, not a RuleSet"
    cls = type(rs)
    rid = getattr(rs, "id", None)
    if not isinstance(rid, str) or not rid or rid != rid.strip():
        return f"{cls.__name__}: id must be a non-empty string without surrounding spaces, got {rid!r}"
    metrics = getattr(rs, "metrics", None)
    if not isinstance(metrics, (tuple, list)) or not metrics or not all(isinstance(m, str) for m in metrics):
        return f"rule set {rid}: metrics must be a non-empty tuple of strings"
    params_type = getattr(rs, "params_type", None)
    if not isinstance(params_type, type) or not issubclass(params_type, msgspec.Struct):
        return f"rule set {rid}: params_type must be a msgspec Struct class"
    if not isinstance(getattr(rs, "defaults_path", None), str):
        return f"rule set {rid}: defaults_path must name its shipped TOML file"
    if cls.score_month is RuleSet.score_month:
        return f"rule set {rid}: score_month is not implemented"
    return None


def load_rulesets(pm: CsatPluginManager) -> tuple[list[RuleSetInfo], list[BrokenPlugin]]:
    """Every rule set the registered plugins provide, and the plugins that were skipped.

    A plugin whose ``csat_rulesets`` raises or returns something that is not a
    list of well-formed rule sets, or a rule set whose id another plugin
    already provides, is skipped; the others are returned, by id.
    """
    broken = list(getattr(pm, "broken", ()))
    sources = getattr(pm, "sources", {})
    found: dict[str, RuleSetInfo] = {}
    for impl in pm.hook.csat_rulesets.get_hookimpls():  # registration order
        name = pm.get_name(impl.plugin) or repr(impl.plugin)
        source = sources.get(name, "built in" if name in BUILTIN_PLUGINS else "registered")
        try:
            provided = impl.function()
        except Exception as e:  # noqa: BLE001 — plugin code
            broken.append(BrokenPlugin(name, source, f"csat_rulesets raised {_reason(e)}"))
            continue
        if provided is None:
            provided = []
        if not isinstance(provided, (list, tuple)):
            broken.append(BrokenPlugin(name, source, f"csat_rulesets returned {type(provided).__name__}, not a list"))
            continue
        for rs in provided:
            if (problem := ruleset_problem(rs)):
                broken.append(BrokenPlugin(name, source, problem))
            elif rs.id in found:
                broken.append(BrokenPlugin(name, source, f"rule set id {rs.id!r} is already provided by "
                                                         f"{found[rs.id].plugin} ({found[rs.id].source})"))
            else:
                found[rs.id] = RuleSetInfo(rs, name, source, _hooks_of(pm, impl.plugin))
    return sorted(found.values(), key=lambda i: i.ruleset.id), broken


def installed_rulesets(pm: pluggy.PluginManager) -> list[RuleSetInfo]:
    """Every usable rule set the registered plugins provide (broken ones skipped: see :func:`load_rulesets`)."""
    return load_rulesets(pm)[0]
