"""A conformance kit for rule-set plugins: import it in your own tests.

::

    from csat.plugins.testing import check_plugin
    import my_company_csat.plugin as plugin

    def test_my_rule_set_conforms(tmp_path):
        check_plugin(plugin, examples=["tests/example.jsonl"], tmp_path=tmp_path)

:func:`check_plugin` runs every check below; each raises ``AssertionError``
with a message that names the rule set (or the plugin) and says what is wrong. The checks use the real engine on a
real SQLite file, with the built-in rule sets installed beside yours.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pluggy

from csat.engine import Engine, IngestFailed, InvalidParams, RuleSetFailed
from csat.engine.events import ResponseRecorded
from csat.engine.ruleset import Questionnaire, QuestionItem, ResponseState, RuleSet

from .manager import installed_rulesets, load_rulesets, make_plugin_manager


def check_plugin(plugin: object, examples: Sequence[str | os.PathLike[str]], tmp_path: str | os.PathLike[str],
                 name: str = "plugin-under-test") -> list[RuleSet]:
    """Every check: hooks, parameters, examples, scoring, explanations, rebuild and incremental equality.

    :param plugin: the plugin object or module (what your entry point names).
    :param examples: JSON Lines files with events for your rule sets.
    :param tmp_path: a folder for the test databases.
    :returns: the rule sets the plugin provides.
    """
    rulesets = check_hooks(plugin, name)
    for rs in rulesets:
        check_parameters(rs)
        check_questionnaire(rs)
    check_examples(rulesets, examples)
    check_scoring(rulesets, examples, tmp_path)
    return rulesets


def check_hooks(plugin: object, name: str = "plugin-under-test") -> list[RuleSet]:
    """The plugin registers (hook signatures match their specifications), implements only known
    hooks, and provides well-formed rule sets."""
    pm = make_plugin_manager(builtins=True, entry_points=False, plugins={name: plugin})
    infos, broken = load_rulesets(pm)
    for b in broken:
        if b.plugin == name:
            raise AssertionError(f"{name}: {b.reason}")
    try:
        pm.check_pending()  # an @hookimpl whose name is no csat hook (a typo) fails here
    except pluggy.PluginValidationError as e:
        raise AssertionError(f"{name}: {e}") from None
    mine = [i.ruleset for i in infos if i.plugin == name]
    assert mine, f"{name}: csat_rulesets returned no rule set"
    for rs in mine:
        assert rs.version and rs.title, f"{rs.id}: set version and title"
        assert rs.params_type.__struct_config__.forbid_unknown_fields, (
            f"{rs.id}: params_type needs forbid_unknown_fields=True so a misspelt TOML key is an error")
        assert os.path.isfile(rs.defaults_path), f"{rs.id}: defaults_path {rs.defaults_path} is not a file"
    return mine


def check_parameters(rs: RuleSet) -> None:
    """The shipped TOML decodes, passes the rule set's checks and survives the log's round trip."""
    try:
        defaults = rs.default_params()
        stored = rs.complete_params({}, rs.defaults_path)
        again = rs.complete_params(stored)
    except InvalidParams as e:
        raise AssertionError(f"{rs.id}: the shipped parameters do not pass: " + "; ".join(e.problems)) from None
    except Exception as e:  # noqa: BLE001 — say which rule set, whatever its code raised
        raise AssertionError(f"{rs.id}: reading the shipped parameters {rs.defaults_path} raised "
                             f"{type(e).__name__}: {e}") from None
    assert again == stored, f"{rs.id}: parameters change on a round trip through the log"
    assert json.loads(json.dumps(stored)) == stored, f"{rs.id}: stored parameters must be plain JSON"
    try:
        rs.decode_params({**defaults, "no_such_key_in_any_rule_set": 1})
    except InvalidParams as e:
        assert "no_such_key_in_any_rule_set" in str(e), f"{rs.id}: the error must name the unknown key: {e}"
    else:
        raise AssertionError(f"{rs.id}: an unknown parameter key was accepted")


def _first_answer(item: QuestionItem) -> Any:
    if item.kind == "choice":
        return item.choices[0].value
    if item.kind == "yesno":
        return "yes"
    low = item.minimum if item.minimum is not None else Decimal(0)
    return int(low) if low == low.to_integral_value() else float(low)


def check_questionnaire(rs: RuleSet) -> None:
    """The questionnaire (where the rule set publishes one) is well-formed; answers built from it
    pass ``check_response`` under the shipped parameters (the first choice, or the minimum, of
    every item; a reason where that answer needs one); and an answer that needs a reason, given
    without it, fails naming ``reasons.<item>``."""
    params = rs.decode_params(rs.complete_params({}))
    q = rs.questionnaire(params)
    if q is None:
        return
    assert isinstance(q, Questionnaire), f"{rs.id}: questionnaire() must return a Questionnaire or None, got {q!r:.60}"
    assert q.items, f"{rs.id}: the questionnaire of the shipped parameters has no items"
    for item in q.items:
        assert isinstance(item, QuestionItem) and item.id and item.label, f"{rs.id}: a questionnaire item needs an id and a label: {item!r:.80}"
        assert item.kind in ("choice", "number", "yesno"), f"{rs.id}: item {item.id}: unknown kind {item.kind!r}"
        assert item.kind != "choice" or item.choices, f"{rs.id}: item {item.id}: a choice item needs choices"
        assert (item.form is None) == (not q.forms), f"{rs.id}: item {item.id}: name its form exactly when there are forms"
    for form in q.forms or (None,):
        items = [i for i in q.items if i.form == form]
        answers = {i.id: _first_answer(i) for i in items}
        base = {"type": "response", "id": "kit-1", "ruleset": rs.id, "period": "2026-01", "subject": "kit-subject",
                "rater": "kit-rater", "form": form}
        reasons = {i.id: "kit reason" for i in items if str(answers[i.id]) in i.reason_for}
        problems = rs.check_response(_response({**base, "answers": answers, "reasons": reasons}), params)
        assert not problems, (f"{rs.id}: answers built from its questionnaire{f' (form {form})' if form else ''} do "
                              f"not pass check_response: {'; '.join(f'{p.field}: {p.message}' for p in problems)}")
        for item in items:
            for needs in item.reason_for:
                answered = {**answers, item.id: needs}
                missing = {k: v for k, v in reasons.items() if k != item.id}
                problems = rs.check_response(_response({**base, "answers": answered, "reasons": missing}), params)
                assert any(p.field == f"reasons.{item.id}" for p in problems), (
                    f"{rs.id}: item {item.id} answered {needs!r} without a reason passes check_response, but the "
                    "questionnaire says that answer needs one (reason_for)")


def _response(data: dict[str, Any]) -> ResponseRecorded:
    return msgspec.convert({k: v for k, v in data.items() if v is not None}, ResponseRecorded)


def _events(examples: Iterable[str | os.PathLike[str]]) -> list[dict[str, Any]]:
    out = []
    for path in examples:
        for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except ValueError as e:
                    raise AssertionError(f"{path}:{number}: not JSON: {e}") from None
    return out


def check_examples(rulesets: list[RuleSet], examples: Sequence[str | os.PathLike[str]]) -> None:
    """Adoptions in the examples written for an older parameter version (``params_version``)
    decode after the rule set's ``upgrade_params``.

    A rule set whose results depend on the org chart says so (``uses_org``): otherwise a
    ``unit`` event would leave its published scores stale. Checked on the examples: they may
    declare units, and the rule set may credit a response to another subject than its own
    (or its ``roles`` units), only with ``uses_org = True``."""
    events = _events(examples)
    ids = {rs.id: rs for rs in rulesets}
    for e in events:  # adoptions written for an older parameter version must still be readable
        rs = ids.get(e.get("ruleset")) if e.get("type") == "adoption" else None
        version = e.get("params_version") or rs.params_version if rs is not None else None
        if rs is not None and version < rs.params_version:
            try:
                upgraded = rs.upgrade_params(dict(e.get("params", {})), version)
                rs.decode_params(upgraded, f"adoption {e.get('id')}")
            except Exception as x:  # noqa: BLE001 — say which adoption and why
                raise AssertionError(f"{rs.id}: adoption {e.get('id')!r} of version {version} does not decode after "
                                     f"upgrade_params: {x}") from None
    used = {e.get("ruleset") for e in events if e.get("type") == "response"} & ids.keys()
    units = [e.get("id") for e in events if e.get("type") == "unit"]
    for rid in sorted(used):
        _check_cases_used(ids[rid], events)
        rs = ids[rid]
        if rs.uses_org:
            continue
        assert not units, (f"{rid}: the examples declare units ({', '.join(map(str, units[:3]))}…) but the rule set "
                           "does not set uses_org = True: scores would not move when the org chart changes")
        params = rs.decode_params(rs.complete_params({}))
        chain_calls: list[str] = []

        def chain(unit: str, month: str) -> list[str]:
            chain_calls.append(unit)
            return []

        for e in events:
            if e.get("type") != "response" or e.get("ruleset") != rid:
                continue
            state = ResponseState(id=e["id"], position=0, ruleset=rid, period=e["period"], subject=e["subject"],
                                  answers=e.get("answers", {}), form=e.get("form"), roles=e.get("roles", {}))
            allowed = {state.subject} | {u for us in state.roles.values() for u in us}
            for c in rs.credits(state, params, chain):
                assert c.subject in allowed, (
                    f"{rid}: response {state.id} is credited to {c.subject!r}, which is neither its subject nor one "
                    "of its roles, but the rule set does not set uses_org = True")
            assert not chain_calls, (f"{rid}: credits() follows the org chart (chain) but the rule set does not set "
                                     "uses_org = True")


def _check_cases_used(rs: RuleSet, events: list[dict[str, Any]]) -> None:
    """Complaints or rectifications in the examples that concern the rule set (filed for it, or
    for every rule set against a subject it scores) need ``uses_cases``: without it they are
    silently ignored (``MonthInput.cases`` stays empty)."""
    if rs.uses_cases:
        return
    subjects = {e.get("subject") for e in events if e.get("type") == "response" and e.get("ruleset") == rs.id}
    cases = [str(e.get("id")) for e in events if e.get("type") in ("complaint", "rectification")
             and (e.get("ruleset") == rs.id or (e.get("ruleset") is None and e.get("subject") in subjects))]
    assert not cases, (f"{rs.id}: the examples hold complaints or rectifications for it ({', '.join(cases[:3])}"
                       f"{'…' if len(cases) > 3 else ''}) but the rule set does not set uses_cases = True, so they "
                       "would be ignored: set uses_cases = True and score them (MonthInput.cases), or leave them "
                       "out of the examples")


def _rows(engine: Engine, ids: set[str]) -> list[dict[str, Any]]:
    rows = [r for r in engine.scores() if r["ruleset"] in ids]
    failures = [f for f in engine.projection.failures if any(f.startswith(f"rule set {i}:") for i in ids)]
    assert not failures, "scoring failed: " + "; ".join(failures)
    return rows


def check_scoring(rulesets: list[RuleSet], examples: Sequence[str | os.PathLike[str]],
                  tmp_path: str | os.PathLike[str]) -> None:
    """The examples ingest and score (scores are Decimal, figures well-formed); every row explains
    to itself; item points (where the rule set gives them) are well-formed; a rebuild (in one process and
    in several) and an event-by-event ingest give the same rows as one ingest."""
    builtins = [i.ruleset for i in installed_rulesets(make_plugin_manager(entry_points=False))]
    everything = builtins + [rs for rs in rulesets if rs.id not in {b.id for b in builtins}]
    ids = {rs.id for rs in rulesets}
    named = ", ".join(sorted(ids))
    tmp = Path(tmp_path)
    with Engine.open(tmp / "conformance-once.db", rulesets=everything) as engine:
        try:
            engine.ingest(list(examples))
        except IngestFailed as e:
            raise AssertionError(f"{named}: the examples do not ingest: " + "; ".join(e.problems)) from None
        rows = _rows(engine, ids)
        assert rows, f"the examples produced no score for {named}"
        for row in rows:
            try:
                x = engine.explain(row["ruleset"], row["subject"], row["period"], row["metric"])
            except RuleSetFailed as e:
                raise AssertionError(str(e)) from None
            assert {k: x[k] for k in row} == row, f"{row['ruleset']}: explain disagrees with the published row {row}"
            assert x["steps"], f"explain of {row['ruleset']} {row['subject']} {row['period']} has no steps"
            assert x["params_hash"].startswith("sha256:")
            for ev in x["events"]:
                assert {"position", "type", "id", "used"} <= set(ev), f"explain event without its keys: {ev}"
                assert ev["used"] or ev.get("why"), f"an excluded event must say why: {ev}"
        for rid, period in sorted({(r["ruleset"], r["period"]) for r in rows}):
            try:  # item_points, where the rule set has it, well-formed on every example response
                items = engine.items(rid, period)
            except RuleSetFailed as e:
                raise AssertionError(str(e)) from None
            for item in items:
                assert 0 <= item["attainment"] <= 100 and item["responses"] > 0, f"{rid} {period}: {item}"
        engine.rebuild()
        assert _rows(engine, ids) == rows, f"{named}: a rebuild from the log gives other rows than the incremental path"
        engine.rebuild(jobs=2)  # months scored in forked processes, as `csat rebuild` does by default
        assert _rows(engine, ids) == rows, (f"{named}: a rebuild scoring months in several processes gives other "
                                            "rows (does a result depend on state kept from an earlier call?)")
    with Engine.open(tmp / "conformance-stepwise.db", rulesets=everything) as engine:
        for event in _events(examples):
            engine.append([event])
            engine.catch_up()
        assert _rows(engine, ids) == rows, f"{named}: ingesting event by event gives other rows than one ingest"
