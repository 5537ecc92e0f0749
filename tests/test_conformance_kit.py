"""The conformance kit (csat.plugins.testing) catches each kind of broken rule set with an
AssertionError that names the rule set (or plugin) and what is wrong — and passes a good one."""
from __future__ import annotations

import itertools
import sys
from decimal import Decimal
from types import SimpleNamespace

import pytest

from conftest import ROOT, write_jsonl

sys.path.insert(0, str(ROOT / "examples" / "csat-callcentre"))
import csat_callcentre.plugin as callcentre  # noqa: E402

from csat.engine.ruleset import Credit, Figure, module_file  # noqa: E402
from csat.plugins import hookimpl  # noqa: E402
from csat.plugins.testing import check_plugin  # noqa: E402

EXAMPLE = ROOT / "examples" / "csat-callcentre" / "csat_callcentre" / "examples" / "callcentre-5.jsonl"


def plugin_of(*rulesets):
    return SimpleNamespace(csat_rulesets=hookimpl(lambda: list(rulesets)))


def variant(name: str, **attrs):
    """A callcentre-5 rule set changed by ``attrs`` (methods or class attributes), id ``bad-<name>``."""
    return type(f"Bad{name.title()}", (callcentre.CallCentre5,), {"id": f"cc-{name}", **attrs})()


def examples_for(tmp_path, ruleset_id: str, extra: list[dict] = ()) -> list[str]:
    lines = []
    import json
    for line in EXAMPLE.read_text(encoding="utf-8").splitlines():
        e = json.loads(line)
        if e["type"] == "response":
            e["ruleset"] = ruleset_id
        lines.append(e)
    return [write_jsonl(tmp_path / "examples.jsonl", [*extra, *lines])]


def test_the_example_plugin_passes(tmp_path):
    (rs,) = check_plugin(callcentre, examples=[EXAMPLE], tmp_path=tmp_path)
    assert rs.id == "callcentre-5"


def test_a_hook_with_the_wrong_signature(tmp_path):
    plugin = SimpleNamespace(csat_rulesets=hookimpl(lambda config: [callcentre.CallCentre5()]))
    with pytest.raises(AssertionError, match=r"^bad-plugin: does not match csat's hooks: .*config"):
        check_plugin(plugin, examples=[EXAMPLE], tmp_path=tmp_path, name="bad-plugin")


@pytest.mark.parametrize("name, toml, why", [
    ("params", "lowest = 'one'\nhighest = 5", "lowest"),                  # does not decode
    ("check", "lowest = 5\nhighest = 1", "expected less than"),           # fails the rule set's checks
])
def test_shipped_parameters_that_do_not_pass(tmp_path, name, toml, why):
    path = tmp_path / "bad.toml"
    path.write_text(f"precision = 2\n{toml}\n", encoding="utf-8")
    rs = variant(name, defaults_path=str(path))
    with pytest.raises(AssertionError, match=rf"^cc-{name}: the shipped parameters do not pass: .*{why}"):
        check_plugin(plugin_of(rs), examples=examples_for(tmp_path, rs.id), tmp_path=tmp_path)


def test_a_float_score(tmp_path):
    def score_month(self, month, trace):
        return [Figure("rating", 4.5, len(month.counted))] if month.counted else []
    rs = variant("float", score_month=score_month,
                 roll_up=lambda self, period, metric, months, params, trace: None)
    with pytest.raises(AssertionError, match=r"cc-float: scoring agent-\d+ 2026-\d\d: figure rating: score: "
                                             r"expected a Decimal or None, got float 4.5"):
        check_plugin(plugin_of(rs), examples=examples_for(tmp_path, rs.id), tmp_path=tmp_path)


def test_unit_events_without_uses_org(tmp_path):
    rs = variant("units")
    files = examples_for(tmp_path, rs.id, [{"type": "unit", "id": "agent-07", "parent": "team-a"}])
    with pytest.raises(AssertionError, match=r"^cc-units: the examples declare units .* uses_org = True"):
        check_plugin(plugin_of(rs), examples=files, tmp_path=tmp_path)


def test_credits_up_the_org_chart_without_uses_org(tmp_path):
    def credits(self, response, params, chain):
        return [Credit(response.subject)] + [Credit(u, "team", response.subject)
                                             for u in chain(response.subject, response.period)]
    rs = variant("chain", credits=credits)
    with pytest.raises(AssertionError, match=r"^cc-chain: credits\(\) follows the org chart .* uses_org = True"):
        check_plugin(plugin_of(rs), examples=examples_for(tmp_path, rs.id), tmp_path=tmp_path)
    rs = variant("other", credits=lambda self, response, params, chain: [Credit("head-office")])
    with pytest.raises(AssertionError, match=r"^cc-other: response \S+ is credited to 'head-office'"):
        check_plugin(plugin_of(rs), examples=examples_for(tmp_path, rs.id), tmp_path=tmp_path)


def test_examples_that_do_not_ingest(tmp_path):
    rs = variant("ingest")
    files = examples_for(tmp_path, rs.id, [{"type": "response", "id": "x", "ruleset": rs.id, "period": "2026-04",
                                            "subject": "agent-07", "answers": {"rating": 9}}])
    with pytest.raises(AssertionError, match=r"^cc-ingest: the examples do not ingest: .*:1: field `answers.rating`"):
        check_plugin(plugin_of(rs), examples=files, tmp_path=tmp_path)


def test_a_rebuild_that_differs_from_the_incremental_result(tmp_path):
    calls = itertools.count()

    def score_month(self, month, trace):  # depends on how often it was called, not on the log
        figs = callcentre.CallCentre5.score_month(self, month, trace)
        return [Figure(f.metric, f.score + Decimal(next(calls) % 2), f.responses, extras=f.extras, state=f.state)
                for f in figs]
    rs = variant("drift", score_month=score_month)
    with pytest.raises(AssertionError, match=r"^cc-drift: (a rebuild|ingesting event by event|explain disagrees)"):
        check_plugin(plugin_of(rs), examples=examples_for(tmp_path, rs.id), tmp_path=tmp_path)


def test_module_file_is_beside_the_module():
    assert module_file(callcentre.__file__, "callcentre_5.toml").endswith("csat_callcentre/callcentre_5.toml")


def test_complaints_in_the_examples_without_uses_cases(tmp_path):
    rs = variant("cases")   # callcentre-5 does not use cases: these would be ignored, the figure unchanged
    files = examples_for(tmp_path, rs.id, [
        {"type": "complaint", "id": "rude-1", "subject": "agent-07", "period": "2026-04", "date": "2026-04-03",
         "text": "rude"}])
    with pytest.raises(AssertionError, match=r"^cc-cases: the examples hold complaints or rectifications for it "
                                             r"\(rude-1\) but the rule set does not set uses_cases = True"):
        check_plugin(plugin_of(rs), examples=files, tmp_path=tmp_path)


def misspelt(self, month, trace):
    return [Figure("ratng", f.score, f.responses, extras=f.extras, state=f.state)
            for f in callcentre.CallCentre5.score_month(self, month, trace)]


def test_a_figure_under_a_metric_the_rule_set_does_not_declare(tmp_path):
    rs = variant("metric", score_month=misspelt)
    with pytest.raises(AssertionError, match=r"rule set cc-metric: scoring agent-\d+ 2026-\d\d: figure metric 'ratng' "
                                             r"is not one the rule set declares \(rating\): fix the name"):
        check_plugin(plugin_of(rs), examples=examples_for(tmp_path, rs.id), tmp_path=tmp_path)


def test_an_undeclared_metric_is_refused_at_run_time_too(tmp_path):
    from csat.engine import Engine
    rs = variant("metric", score_month=misspelt)
    with Engine.open(tmp_path / "m.db", rulesets=[rs]) as engine:
        engine.ingest(examples_for(tmp_path, rs.id))
        assert engine.scores() == []   # nothing published under the misspelt name
        (line, *_) = engine.warnings()
        assert line.startswith("rule set cc-metric: scoring agent-") and "'ratng' is not one the rule set" in line


def test_every_built_in_questionnaire_passes_the_kit():
    """Answers built from each built-in's questionnaire pass check_response; a required reason left
    out fails (issue 20.16, the questionnaire of issue 22)."""
    from csat.plugins import installed_rulesets, make_plugin_manager
    from csat.plugins.testing import check_questionnaire
    checked = [i.ruleset.id for i in installed_rulesets(make_plugin_manager(entry_points=False))]
    for i in installed_rulesets(make_plugin_manager(entry_points=False)):
        check_questionnaire(i.ruleset)
    assert checked == ["airline-1000", "dealership-cs", "iso-100", "plant-50", "supplier-400"]
    check_questionnaire(callcentre.CallCentre5())


def test_a_questionnaire_that_promises_a_reason_check_response_does_not_ask_for(tmp_path):
    from csat.engine.ruleset import Questionnaire, QuestionItem
    from csat.plugins.testing import check_questionnaire

    def questionnaire(self, params):
        q = callcentre.CallCentre5.questionnaire(self, params)
        return Questionnaire((QuestionItem("rating", "评分", choices=q.items[0].choices, reason_for=("很不满意",)),))
    rs = variant("reason", questionnaire=questionnaire)
    with pytest.raises(AssertionError, match=r"^cc-reason: item rating answered '很不满意' without a reason passes"):
        check_questionnaire(rs)
    rs = variant("choices", questionnaire=lambda self, params: Questionnaire((QuestionItem("rating", "评分",
                                                                                        choices=()),)))
    with pytest.raises(AssertionError, match=r"^cc-choices: item rating: a choice item needs choices"):
        check_questionnaire(rs)
