"""The plugin system: fresh managers, built-ins as ordinary plugins, duplicates skipped."""
from __future__ import annotations

import json

from csat.engine import Engine
from csat.plugins import BUILTIN_PLUGINS, hookimpl, installed_rulesets, load_rulesets, make_plugin_manager
from csat.rulesets.airline_1000 import Airline1000


def test_each_call_returns_a_fresh_manager():
    a, b = make_plugin_manager(), make_plugin_manager()
    assert a is not b
    a.unregister(name=BUILTIN_PLUGINS[0])
    assert b.get_plugin(BUILTIN_PLUGINS[0]) is not None


def test_builtins_are_registered_by_name_with_the_same_hooks():
    pm = make_plugin_manager(entry_points=False)
    infos = {i.ruleset.id: i for i in installed_rulesets(pm)}
    assert infos["airline-1000"].source == "built in"
    assert infos["airline-1000"].plugin == "csat.rulesets.airline_1000"
    assert "csat_rulesets" in infos["airline-1000"].hooks


def test_no_builtins_means_no_rulesets():
    assert installed_rulesets(make_plugin_manager(builtins=False, entry_points=False)) == []


def test_a_duplicate_ruleset_id_is_skipped_naming_both_plugins():
    class Again:
        @hookimpl
        def csat_rulesets(self):
            return [Airline1000()]
    pm = make_plugin_manager(entry_points=False, plugins={"again": Again()})
    infos, broken = load_rulesets(pm)
    assert [i.plugin for i in infos if i.ruleset.id == "airline-1000"] == ["csat.rulesets.airline_1000"]
    assert [b.line() for b in broken] == [
        "plugin again (registered) skipped: rule set id 'airline-1000' is already provided by "
        "csat.rulesets.airline_1000 (built in)"]
    assert len(installed_rulesets(pm)) == 5


def test_an_embedder_chooses_its_rulesets(db):
    with Engine.open(db, rulesets=[]) as e:
        assert e.ruleset_list() == []


def test_rulesets_command(cli):
    rows = cli.json("rulesets")
    assert [r["id"] for r in rows] == ["airline-1000", "dealership-cs", "iso-100", "plant-50", "supplier-400"]
    assert rows[0]["source"] == "built in" and rows[0]["version"] and rows[0]["title"]
    table = cli("rulesets").stdout
    assert "airline-1000" in table and "built in" in table
    assert json.loads(cli("rulesets", "--format", "json").stdout)[0]["metrics"] == ["satisfaction"]
