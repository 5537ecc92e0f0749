"""The weakest items (issue 15): each item pooled over a period's counted responses as
100 × Σ points / Σ possible — corrections applied, withdrawals and N/A left out, a response
credited to several units counted once — through `csat items` and the embedding API, and a
rule set whose item_points is broken failing in one line."""
from __future__ import annotations

import json
import tomllib
from decimal import ROUND_HALF_UP, Decimal

from conftest import EXAMPLES, ROOT, write_jsonl

from csat.engine import Engine
from csat.engine.errors import RuleSetFailed
from csat.rulesets.iso_100 import Iso100

ISO_ITEMS = tomllib.loads((ROOT / "rulesets" / "iso_100.toml").read_text("utf-8"))["items"]


def iso(i: int, answers: dict, month: str = "2026-05", subject: str = "company") -> dict:
    return {"type": "response", "id": f"iso-{month}-{i}", "ruleset": "iso-100", "period": month,
            "subject": subject, "rater": f"c{i}", "answers": answers}


def answers(quality, delivery, service, after_sales, price) -> dict:
    return {"quality": quality, "delivery": delivery, "service": service, "after_sales": after_sales, "price": price}


def expected(final: list[dict]) -> dict[str, tuple[Decimal, int]]:
    """Attainment and responses per item, computed here from the answers that stand."""
    out = {}
    for item, spec in ISO_ITEMS.items():
        got = [Decimal(a[item]) for a in final if a[item] != "N/A"]
        if got:
            share = Decimal(100) * sum(got) / (Decimal(str(spec["max"])) * len(got))
            out[item] = (share.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP), len(got))
    return out


def test_iso_items_pool_the_answers_that_stand(cli, tmp_path):
    first = [answers(28, 18, 14, 18, 13), answers(20, 12, 10, "N/A", 9), answers(25, 16, 6, 15, 12)]
    withdrawn = answers(0, 0, 0, 0, 0)
    corrected = answers(22, 19, 15, 17, 14)
    events = [iso(i, a) for i, a in enumerate([*first, withdrawn], 1)]
    events += [{"type": "withdrawal", "id": "w-4", "response": "iso-2026-05-4", "reason": "duplicate"},
               {"type": "correction", "id": "c-3", "response": "iso-2026-05-3", "answers": corrected,
                "reason": "typed wrong"}]
    cli("ingest", write_jsonl(tmp_path / "may.jsonl", events))
    rows = cli.json("items", "-r", "iso-100", "-p", "2026-05", "--ids")
    want = expected([first[0], first[1], corrected])
    assert {r["item"]: (r["attainment"], r["responses"]) for r in rows} == want
    assert [r["attainment"] for r in rows] == sorted(r["attainment"] for r in rows)  # weakest first
    labels = {r["item"]: r["label"] for r in rows}
    assert labels == {item: spec["label"] for item, spec in ISO_ITEMS.items()}
    after_sales = next(r for r in rows if r["item"] == "after_sales")
    assert after_sales["response_ids"] == ["iso-2026-05-1", "iso-2026-05-3"]  # N/A and withdrawn left out
    table = cli("items", "-r", "iso-100", "-p", "2026-05").stdout
    assert "售后服务" in table and "response_ids" not in table
    # the quarter pools the months' responses (not the mean of monthly shares)
    cli("ingest", write_jsonl(tmp_path / "june.jsonl", [iso(9, answers(30, 20, 15, 20, 15), "2026-06")]))
    quarter = {r["item"]: (r["attainment"], r["responses"]) for r in cli.json("items", "-r", "iso-100", "-p", "2026-Q2")}
    assert quarter == expected([first[0], first[1], corrected, answers(30, 20, 15, 20, 15)])


def test_a_callback_counts_once_however_many_units_it_credits(cli, tmp_path):
    cli("ingest", str(EXAMPLES / "dealership-cs.jsonl"))
    cli("ingest", write_jsonl(tmp_path / "b.jsonl", [
        {"type": "unit", "id": "sales-b", "name": "销售二组", "kind": "team"},
        {"type": "unit", "id": "s3", "name": "赵磊", "kind": "consultant", "parent": "sales-b"},
        {"type": "response", "id": "cb-b-1", "ruleset": "dealership-cs", "form": "sales", "period": "2026-03",
         "subject": "s3", "rater": "customer-9", "answers": {"q1": "很好", "q2": "很好", "q3": "很好", "q4": "satisfied"}}]))
    events = [json.loads(line) for line in (EXAMPLES / "dealership-cs.jsonl").read_text("utf-8").splitlines()]
    completed = {e["id"] for e in events if e["type"] == "response" and e["period"] == "2026-03"
                 and e.get("status", "completed") == "completed" and e["answers"].get("q1", "N/A") != "N/A"}
    everyone = {r["item"]: r for r in cli.json("items", "-r", "dealership-cs", "-p", "2026-03", "--ids")}
    # each callback credits its consultant and the team: pooled once, the refused one not at all
    assert everyone["q1"]["response_ids"] == sorted(completed) + ["cb-b-1"]
    assert everyone["q1"]["responses"] == len(completed) + 1
    team_a = {r["item"]: r for r in cli.json("items", "-r", "dealership-cs", "-p", "2026-03", "--under", "sales-a",
                                             "--ids")}
    assert team_a["q1"]["response_ids"] == sorted(completed)
    assert team_a["q1"]["points"] < everyone["q1"]["points"]


def test_a_rule_set_without_items_lists_none(cli):
    cli("ingest", str(ROOT / "rulesets" / "examples" / "supplier-demo.jsonl"))
    assert cli.json("items", "-r", "supplier-400", "-p", "2026-03") == []
    assert "no item points" in cli("items", "-r", "supplier-400", "-p", "2026-03").stdout
    assert "not installed" in cli("items", "-r", "nope", "-p", "2026-03", expect=1).stderr


class FloatItems(Iso100):
    def item_points(self, response, params):
        return {item: (float(a), float(params.items[item].max)) for item, a in response.answers.items()}


def test_broken_item_points_fail_in_one_line(db, tmp_path):
    path = write_jsonl(tmp_path / "may.jsonl", [iso(1, answers(28, 18, 14, 18, 13))])
    with Engine.open(db, rulesets=[FloatItems()]) as engine:
        engine.ingest([path])
        assert engine.scores(ruleset="iso-100")  # scoring is untouched
        try:
            engine.items("iso-100", "2026-05")
        except RuleSetFailed as e:
            assert "iso-100" in str(e) and "item_points" in str(e) and "\n" not in str(e)
        else:
            raise AssertionError("a float item point was accepted")
