"""Every built-in scores a month to the same digits however it got there (issue 25: "the two paths
must agree to the last digit"): a rule set that has already scored other months — its memo of
answer patterns and its per-parameters tables warm, as in a long rebuild or a worker of the pool —
gives a month exactly the figures a fresh rule set gives it with nothing remembered.

Months are randomized (hypothesis) from each rule set's own questionnaire: its choices, N/A, and
numbers given as whole numbers and as decimals of the same value (90 and 90.0 are equal in Python,
and hash alike, but not to the last digit)."""
from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from csat.engine.events import NA, ResponseRecorded
from csat.engine.ruleset import Adoption, Counted, Credit, MonthInput, ResponseState, RuleSet
from csat.engine.read.settle import exclusion
from csat.plugins.manager import load_rulesets, make_plugin_manager

RULESETS: dict[str, RuleSet] = {info.ruleset.id: info.ruleset
                                 for info in load_rulesets(make_plugin_manager(entry_points=False))[0]}
ENCODE = msgspec.json.Encoder(decimal_format="string").encode


def fresh(ruleset: str) -> RuleSet:
    return type(RULESETS[ruleset])()


def answers_for(rs: RuleSet, params) -> st.SearchStrategy:
    """A response's form and answers, item by item from the questionnaire (plus numbers)."""
    q = rs.questionnaire(params)
    forms = q.forms or (None,)

    def value(item) -> st.SearchStrategy:
        options = [st.sampled_from([c.value for c in item.choices])] if item.choices else []
        numbers = st.integers(0, 100) if item.kind != "number" else st.integers(0, 40)
        options.append(numbers.flatmap(lambda n: st.sampled_from([n, float(n), n + 0.5])))
        if item.na:
            options.append(st.just(NA))
        return st.one_of(options)

    def of_form(form):
        items = [i for i in q.items if i.form == form]
        return st.fixed_dictionaries({i.id: value(i) for i in items}).map(lambda a: (form, a))

    return st.sampled_from(forms).flatmap(of_form)


def retyped(response: tuple[str | None, dict]) -> tuple[str | None, dict]:
    """The same answers, whole numbers given as decimals and decimals of whole value as whole numbers."""
    form, answers = response
    return form, {k: (float(v) if type(v) is int else int(v) if type(v) is float and v == int(v) else v)
                  for k, v in answers.items()}


def month_input(rs: RuleSet, params, month: str, responses: list[tuple[str | None, dict]]) -> MonthInput:
    adoption = Adoption(rs.id, "default", "2026-01", 1, "sha256:x", params)
    counted = []
    for n, (form, answers) in enumerate(responses):
        event = ResponseRecorded(id=f"{month}-{n}", ruleset=rs.id, period=month, subject="s1", answers=answers,
                                 form=form, rater=f"rater-{n % 3}", roles={"workshop": ["w1"]})
        state = ResponseState.of(event, n + 1)
        if rs.check_response(event, params) or exclusion(state):
            continue  # what ingest refuses, or the engine excludes (all N/A), is never counted
        counted.append(Counted(state, Credit("s1")))
    return MonthInput(rs.id, "s1", month, adoption, counted, [], "unit")


def figures(rs: RuleSet, inp: MonthInput) -> bytes:
    return ENCODE([msgspec.structs.asdict(f) for f in rs.score_month(inp, None)])


@pytest.mark.parametrize("ruleset", sorted(RULESETS))
def test_a_month_scores_the_same_warm_or_fresh(ruleset):
    rs = RULESETS[ruleset]
    params = rs.decode_params(rs.default_params())
    month = st.lists(answers_for(rs, params), min_size=1, max_size=12)

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(before=st.lists(month, max_size=3), this=month, twins=st.integers(0, 4))
    def check(before, this, twins):
        # answered as an earlier month's response, its numbers given the other way (90 ↔ 90.0)
        this = this + [retyped(r) for earlier in before for r in earlier][:twins]
        warm = fresh(ruleset)
        for i, earlier in enumerate(before):  # other months first: whatever they leave remembered
            warm.score_month(month_input(warm, params, f"2026-0{i + 1}", earlier), None)
        inp = month_input(warm, params, "2026-09", this)
        cold = fresh(ruleset)
        cold.remembered = lambda name, params, key, compute: compute()  # nothing kept: every pattern afresh
        assert figures(warm, inp) == figures(cold, inp)

    check()


def test_the_strategy_reaches_numbers_of_both_kinds():
    """The months above do hold 90 beside 90.0 (a test that cannot fail is no test)."""
    rs = RULESETS["dealership-cs"]
    params = rs.decode_params(rs.default_params())
    seen: set[type] = set()

    @settings(max_examples=80, deadline=None)
    @given(answers_for(rs, params))
    def collect(response):
        seen.update(type(v) for v in response[1].values() if v != NA and not isinstance(v, str))

    collect()
    assert seen == {int, float}
    assert Decimal("90") == Decimal("90.0") and str(Decimal("90")) != str(Decimal("90.0"))
