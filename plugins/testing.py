"""A conformance kit for rule-set plugins: import it in your own tests.

::

    from csat.plugins.testing import check_plugin
    import my_company_csat.plugin as plugin

    def test_my_rule_set_conforms(tmp_path):
        check_plugin(plugin, examples=["tests/example.jsonl"], tmp_path=tmp_path)

:func:`check_plugin` runs every check below; each raises ``AssertionError``
with a message that says what is wrong. The checks use the real engine on a
real SQLite file, with the built-in rule sets installed beside yours.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import msgspec

from csat.engine import Engine, InvalidParams
from csat.engine.ruleset import RuleSet

from .manager import installed_rulesets, make_plugin_manager


def check_plugin(plugin: object, examples: Sequence[str | os.PathLike[str]], tmp_path: str | os.PathLike[str],
                 name: str = "plugin-under-test") -> list[RuleSet]:
    """Every check: hooks, parameters, scoring, explanations, rebuild and incremental equality.

    :param plugin: the plugin object or module (what your entry point names).
    :param examples: JSON Lines files with events for your rule sets.
    :param tmp_path: a folder for the test databases.
    :returns: the rule sets the plugin provides.
    """
    rulesets = check_hooks(plugin, name)
    for rs in rulesets:
        check_parameters(rs)
    check_scoring(rulesets, examples, tmp_path)
    return rulesets


def check_hooks(plugin: object, name: str = "plugin-under-test") -> list[RuleSet]:
    """The plugin registers, implements only known hooks, and provides well-formed rule sets."""
    pm = make_plugin_manager(builtins=True, entry_points=False, plugins={name: plugin})
    pm.check_pending()  # an @hookimpl whose name is no csat hook (a typo) fails here
    mine = [i.ruleset for i in installed_rulesets(pm) if i.plugin == name]
    assert mine, f"{name}: csat_rulesets returned no rule set"
    for rs in mine:
        assert isinstance(rs.id, str) and rs.id and rs.id == rs.id.strip(), f"{rs!r}: id must be a non-empty string"
        assert rs.version and rs.title, f"{rs.id}: set version and title"
        assert rs.metrics, f"{rs.id}: list the metrics it publishes"
        assert issubclass(rs.params_type, msgspec.Struct), f"{rs.id}: params_type must be a msgspec Struct"
        assert rs.params_type.__struct_config__.forbid_unknown_fields, (
            f"{rs.id}: params_type needs forbid_unknown_fields=True so a misspelt TOML key is an error")
        assert os.path.isfile(rs.defaults_path), f"{rs.id}: defaults_path {rs.defaults_path} is not a file"
    return mine


def check_parameters(rs: RuleSet) -> None:
    """The shipped TOML decodes, passes the rule set's checks and survives the log's round trip."""
    defaults = rs.default_params()
    stored = rs.complete_params({}, rs.defaults_path)
    again = rs.complete_params(stored)
    assert again == stored, f"{rs.id}: parameters change on a round trip through the log"
    assert json.loads(json.dumps(stored)) == stored, f"{rs.id}: stored parameters must be plain JSON"
    try:
        rs.decode_params({**defaults, "no_such_key_in_any_rule_set": 1})
    except InvalidParams as e:
        assert "no_such_key_in_any_rule_set" in str(e), f"{rs.id}: the error must name the unknown key: {e}"
    else:
        raise AssertionError(f"{rs.id}: an unknown parameter key was accepted")


def _events(examples: Iterable[str | os.PathLike[str]]) -> list[dict[str, Any]]:
    out = []
    for path in examples:
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            if line.strip():
                out.append(json.loads(line))
    return out


def _rows(engine: Engine, ids: set[str]) -> list[dict[str, Any]]:
    return [r for r in engine.scores() if r["ruleset"] in ids]


def check_scoring(rulesets: list[RuleSet], examples: Sequence[str | os.PathLike[str]],
                  tmp_path: str | os.PathLike[str]) -> None:
    """The examples score; every row explains to itself; a rebuild and an event-by-event
    ingest give the same rows as one ingest."""
    builtins = [i.ruleset for i in installed_rulesets(make_plugin_manager(entry_points=False))]
    everything = builtins + [rs for rs in rulesets if rs.id not in {b.id for b in builtins}]
    ids = {rs.id for rs in rulesets}
    tmp = Path(tmp_path)
    with Engine.open(tmp / "conformance-once.db", rulesets=everything) as engine:
        engine.ingest(list(examples))
        rows = _rows(engine, ids)
        assert rows, f"the examples produced no score for {', '.join(sorted(ids))}"
        for row in rows:
            x = engine.explain(row["ruleset"], row["subject"], row["period"], row["metric"])
            assert {k: x[k] for k in row} == row, f"explain disagrees with the published row {row}"
            assert x["steps"], f"explain of {row['ruleset']} {row['subject']} {row['period']} has no steps"
            assert x["params_hash"].startswith("sha256:")
            for ev in x["events"]:
                assert {"position", "type", "id", "used"} <= set(ev), f"explain event without its keys: {ev}"
                assert ev["used"] or ev.get("why"), f"an excluded event must say why: {ev}"
        engine.rebuild()
        assert _rows(engine, ids) == rows, "a rebuild from the log gives other rows"
    with Engine.open(tmp / "conformance-stepwise.db", rulesets=everything) as engine:
        for event in _events(examples):
            engine.append([event])
            engine.catch_up()
        assert _rows(engine, ids) == rows, "ingesting event by event gives other rows than one ingest"
