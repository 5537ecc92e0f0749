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


def test_a_rule_set_described_with_its_questionnaire_and_the_parameters_in_force(cli, tmp_path):
    """`csat rulesets NAME` (issue 20.16): the items with their Chinese labels, the answers
    accepted, N/A and reasons, and the parameters in force in a month (table and JSON)."""
    import json
    from decimal import Decimal
    from conftest import EXAMPLES
    d = json.loads(cli("rulesets", "plant-50", "--format", "json").stdout, parse_float=Decimal)
    assert d["adoption"] is None  # no store yet: the shipped defaults
    items = {i["id"]: i for i in d["questionnaire"]["items"]}
    assert {k: i["label"] for k, i in items.items()} == {"attitude": "服务态度", "response": "响应速度",
                                                        "solution": "问题解决"}
    assert [c["value"] for c in items["response"]["choices"]] == ["满意", "一般", "不满意", "很不满意"]
    assert items["response"]["reason_for"] == ["不满意", "很不满意"] and items["response"]["na"]
    for name in ("airline-1000", "dealership-cs", "iso-100", "supplier-400"):  # every built-in, labelled
        q = json.loads(cli("rulesets", name, "--format", "json").stdout)["questionnaire"]
        assert q["items"] and all(i["label"] and i["label"] != i["id"] for i in q["items"]), name
        assert all(any("\u4e00" <= ch <= "\u9fff" for ch in i["label"]) for i in q["items"]), name
    cli("ingest", str(EXAMPLES / "iso-100.jsonl"))
    harsher = tmp_path / "harsher.toml"
    harsher.write_text('[items.quality]\nmax = 30\nlabel = "产品质量与可靠性"\n', encoding="utf-8")
    cli("adopt", str(harsher), "-r", "iso-100", "--from", "2027-01")
    before = json.loads(cli("rulesets", "iso-100", "--as-of", "2026-11", "--format", "json").stdout)
    after = json.loads(cli("rulesets", "iso-100", "--as-of", "2027-02", "--format", "json").stdout)
    assert before["adoption"]["id"] == "default" and after["adoption"]["id"] == "harsher-2027-01"
    assert after["questionnaire"]["items"][0]["label"] == "产品质量与可靠性" != before["questionnaire"]["items"][0]["label"]
    assert after["parameters"]["items"]["quality"]["label"] == "产品质量与可靠性"
    text = cli("rulesets", "iso-100", "--as-of", "2027-02").stdout
    assert "adoption harsher-2027-01 (from 2027-01" in text and "产品质量与可靠性" in text and "0–30" in text
    assert cli("rulesets", "nope", expect=1).stderr.startswith("csat: rule set 'nope' is not installed")
