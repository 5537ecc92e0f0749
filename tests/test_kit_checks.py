"""The conformance kit's checks of issue 32.6, each shown failing a deliberately sloppy rule set
that the kit used to pass, and passing clean ones: published rows that depend on
``PYTHONHASHSEED`` (extras built in set order), and a float meeting a Decimal (weights converted
through ``float``), named by file and line. And explanations shown to people at the rule set's
precision plus four places, not 34-digit artefacts."""
from __future__ import annotations

import decimal
import importlib
import json
import sys
import textwrap
from decimal import Decimal
from types import SimpleNamespace

import pytest

from conftest import ROOT, Cli, write_jsonl

sys.path.insert(0, str(ROOT / "examples" / "csat-callcentre"))
import csat_callcentre.plugin as callcentre  # noqa: E402

from csat.engine import Engine  # noqa: E402
from csat.engine.read.explain import for_people, shown  # noqa: E402
from csat.engine.ruleset import Figure  # noqa: E402
from csat.plugins import hookimpl, installed_rulesets, make_plugin_manager  # noqa: E402
from csat.plugins.testing import check_hash_seeds, check_plugin, check_scoring  # noqa: E402
from wardcare import WardCare  # noqa: E402

EXAMPLE = ROOT / "examples" / "csat-callcentre" / "csat_callcentre" / "examples" / "callcentre-5.jsonl"
BUILT_IN_EXAMPLES = sorted((ROOT / "rulesets" / "examples").glob("*.jsonl"))


def examples_for(tmp_path, ruleset_id: str) -> list[str]:
    """The call-centre example with its responses for ``ruleset_id``."""
    events = [json.loads(line) for line in EXAMPLE.read_text(encoding="utf-8").splitlines()]
    return [write_jsonl(tmp_path / "examples.jsonl",
                        [{**e, "ruleset": ruleset_id} if e["type"] == "response" else e for e in events])]


def plugin_module(tmp_path, monkeypatch, name: str, source: str):
    """A plugin module written to ``tmp_path`` and imported by name, as an installed one is."""
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    return importlib.import_module(name)


def builtins():
    return [i.ruleset for i in installed_rulesets(make_plugin_manager(entry_points=False))]


HEADER = """
    from decimal import Decimal
    from csat.engine.ruleset import Figure
    from csat.plugins import hookimpl
    from csat_callcentre.plugin import CallCentre5
"""

SET_ORDER = HEADER + """
    class Labelled(CallCentre5):
        id = "cc-setorder"

        def score_month(self, month, trace):
            labels = LABELS
            return [Figure(f.metric, f.score, f.responses, extras={**f.extras, "labels": labels}, state=f.state)
                    for f in super().score_month(month, trace)]

    @hookimpl
    def csat_rulesets():
        return [Labelled()]
"""


@pytest.mark.parametrize("built", [
    "list(set(month.params.labels))",                           # a list in set order
    "{label: 1 for label in set(month.params.labels)}",         # a dict filled in set order
])
def test_extras_in_set_order_fail_the_hash_seed_check(tmp_path, monkeypatch, built):
    module = plugin_module(tmp_path, monkeypatch, f"sloppy_setorder_{len(built)}",
                           SET_ORDER.replace("LABELS", built))
    files = examples_for(tmp_path, "cc-setorder")
    (rs,) = module.csat_rulesets()
    check_scoring([rs], files, tmp_path)  # in one process the order is stable: the kit used to pass it
    with pytest.raises(AssertionError, match=r"^rule set cc-setorder: the published rows depend on PYTHONHASHSEED "
                                             r"\(set or dict order\?\): first difference at row cc-setorder "
                                             r"agent-\d\d \d{4}-\d\d rating, labels: .* \(PYTHONHASHSEED=1\) vs "
                                             r".* \(PYTHONHASHSEED=2\): build lists and dicts in a fixed order"):
        check_plugin(module, examples=files, tmp_path=tmp_path)


def test_extras_in_a_fixed_order_pass(tmp_path, monkeypatch):
    module = plugin_module(tmp_path, monkeypatch, "tidy_setorder",
                           SET_ORDER.replace("LABELS", "sorted(set(month.params.labels))"))
    (rs,) = check_plugin(module, examples=examples_for(tmp_path, "cc-setorder"), tmp_path=tmp_path)
    assert rs.id == "cc-setorder"


FLOAT_WEIGHTS = HEADER + """
    class Weighted(CallCentre5):
        id = "cc-floatweights"

        def score_month(self, month, trace):
            weight = Decimal(float(month.params.lowest))  # the weight through a float
            return [Figure(f.metric, f.score * weight, f.responses, extras=f.extras, state=f.state)
                    for f in super().score_month(month, trace)]

    @hookimpl
    def csat_rulesets():
        return [Weighted()]
"""


def test_weights_through_float_fail_naming_the_line(tmp_path, monkeypatch):
    module = plugin_module(tmp_path, monkeypatch, "sloppy_floatweights", FLOAT_WEIGHTS)
    line = next(n for n, text in enumerate(textwrap.dedent(FLOAT_WEIGHTS).splitlines(), 1) if "through a float" in text)
    files = examples_for(tmp_path, "cc-floatweights")
    with Engine.open(tmp_path / "untrapped.db", rulesets=module.csat_rulesets()) as engine:
        engine.ingest(files)  # without the trap nothing fails (the weight is 1): the kit used to pass it
        assert engine.scores() and not engine.warnings()
    with pytest.raises(AssertionError, match=rf"^rule set cc-floatweights: a float met a Decimal at "
                                             rf"\S*sloppy_floatweights\.py:{line} \(weight = Decimal\(float\("
                                             r"month\.params\.lowest\)\) +# the weight through a float\): "
                                             r"convert numbers with Decimal\(str\(x\)\) or csat\.engine\.numbers\.dec"):
        check_plugin(module, examples=files, tmp_path=tmp_path)


class Threshold(callcentre.CallCentre5):
    """Compares the unrounded Decimal score with a float threshold."""

    id = "cc-threshold"

    def score_month(self, month, trace):
        out = []
        for f in super().score_month(month, trace):
            passed = f.score >= 3.5  # FLOAT-MEETS-DECIMAL
            out.append(Figure(f.metric, f.score, f.responses, extras={**f.extras, "passed": passed}, state=f.state))
        return out


def test_a_float_compared_with_a_decimal_is_named_in_the_test_module_too(tmp_path):
    line = next(n for n, text in enumerate(open(__file__, encoding="utf-8"), 1) if "# FLOAT-MEETS-" + "DECIMAL" in text)
    plugin = SimpleNamespace(csat_rulesets=hookimpl(lambda: [Threshold()]))
    with pytest.raises(AssertionError, match=rf"^rule set cc-threshold: a float met a Decimal at "
                                             rf"\S*test_kit_checks\.py:{line} \(passed = f\.score >= 3\.5"):
        check_plugin(plugin, examples=examples_for(tmp_path, "cc-threshold"), tmp_path=tmp_path)
    with decimal.localcontext() as ctx:
        assert not ctx.traps[decimal.FloatOperation]  # the kit's trap ends with the check


def test_a_rule_set_a_fresh_interpreter_cannot_recreate_is_named(tmp_path):
    local = type("Local", (callcentre.CallCentre5,), {"id": "cc-local"})()  # no importable class: no pickle
    with pytest.raises(AssertionError, match=r"^rule set cc-local: the kit cannot re-create it in a fresh "
                                             r"interpreter .*define its class at the top level"):
        check_hash_seeds([local], examples_for(tmp_path, "cc-local"), tmp_path)


def test_ward_care_passes_every_check(tmp_path):
    """An outside rule set registered as an object (no plugin module): re-created by pickling."""
    events = [{"type": "unit", "id": "medicine", "kind": "department", "name": "内科"},
              *({"type": "unit", "id": w, "parent": "medicine", "kind": "ward", "name": w} for w in ("w1", "w2")),
              *({"type": "response", "id": f"r{i}", "ruleset": "ward-care", "period": f"2026-0{1 + i % 2}",
                 "subject": f"w{1 + i % 2}", "rater": f"patient-{i}", "answers": {"care": 61 + 5 * i}}
                for i in range(7)),
              {"type": "complaint", "id": "c1", "subject": "w1", "ruleset": "ward-care", "period": "2026-01",
               "date": "2026-01-10", "severity": "minor", "text": "waited"}]
    plugin = SimpleNamespace(csat_rulesets=hookimpl(lambda: [WardCare()]))
    (rs,) = check_plugin(plugin, examples=[write_jsonl(tmp_path / "wards.jsonl", events)], tmp_path=tmp_path)
    assert rs.id == "ward-care"


def test_the_built_ins_pass_both_checks(tmp_path):
    rulesets = builtins()
    check_hash_seeds(rulesets, BUILT_IN_EXAMPLES, tmp_path)
    for example in BUILT_IN_EXAMPLES:
        if example.name == "plant-50.jsonl":
            continue  # below: its event-by-event ingest names the implicit adoption otherwise (not a float)
        (tmp_path / example.stem).mkdir()
        check_scoring(rulesets, [example], tmp_path / example.stem)
    with decimal.localcontext() as ctx, Engine.open(tmp_path / "plant.db", rulesets=rulesets) as engine:
        ctx.traps[decimal.FloatOperation] = True
        engine.ingest([ROOT / "rulesets" / "examples" / "plant-50.jsonl"])
        rows = engine.scores()
        for r in rows:
            assert engine.explain(r["ruleset"], r["subject"], r["period"], r["metric"])["steps"]
        engine.rebuild()
        assert engine.scores() == rows and not engine.warnings()


def test_a_34_digit_step_is_shown_at_the_precision_plus_four_places(tmp_path):
    assert shown(Decimal("52.541666666666666666666666675"), 6) == Decimal("52.541667")
    assert shown(Decimal("9.375"), 6) == Decimal("9.375") and shown(None, 6) is None
    assert shown(Decimal("0.12345650"), 6) == Decimal("0.123457")  # half-up
    cli = Cli(str(tmp_path / "x.db"))
    cli("ingest", str(ROOT / "rulesets" / "examples" / "airline-1000.jsonl"))
    exact = cli.json("explain", "-r", "airline-1000", "-s", "finance", "-p", "2026")
    assert Decimal("723.3333333333333333333333333333333") in [s["value"] for s in exact["steps"]]  # JSON: exact
    text = cli("explain", "-r", "airline-1000", "-s", "finance", "-p", "2026").stdout
    assert "723.333333 " in text and "723.3333333" not in text  # 723.33 published: 2 + 4 places
    people = for_people(exact)
    assert all(-s["value"].as_tuple().exponent <= 6 for s in people["steps"] if isinstance(s["value"], Decimal))
    assert people["score"] == exact["score"] and people["events"] == exact["events"]
