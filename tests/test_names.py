"""Scores as people read them (issue 15): subjects by name as of the period, a part of the org
chart (--under), one period against another (--vs)."""
from __future__ import annotations

from decimal import Decimal

from conftest import EXAMPLES, write_jsonl

APRIL = [
    {"type": "unit", "id": "s2", "name": "李娜（组长）", "parent": "sales-a", "from": "2026-04"},  # renamed from April
    {"type": "unit", "id": "sales-b", "name": "销售二组", "kind": "team"},
    {"type": "unit", "id": "s3", "name": "赵磊", "kind": "consultant", "parent": "sales-b"},
    *[{"type": "response", "id": f"cb-2026-04-{i}", "ruleset": "dealership-cs", "form": "sales", "period": "2026-04",
       "subject": subject, "rater": f"customer-{10 + i}",
       "answers": {"q1": grade, "q2": "很好", "q3": "比较满意", "q4": "satisfied"}}
      for i, (subject, grade) in enumerate([("s1", "基本满意"), ("s2", "非常满意"), ("s3", "很好")])],
]


def ingest_two_months(cli, tmp_path):
    cli("ingest", str(EXAMPLES / "dealership-cs.jsonl"))
    cli("ingest", write_jsonl(tmp_path / "april.jsonl", APRIL))


def test_subjects_carry_their_name_as_of_the_period(cli, tmp_path):
    ingest_two_months(cli, tmp_path)
    names = {(r["period"], r["subject"]): r["subject_name"] for r in cli.json("scores")}
    assert names[("2026-03", "s2")] == "李娜" and names[("2026-04", "s2")] == "李娜（组长）"
    assert names[("2026-04", "sales-b")] == "销售二组" and names[("2026-03", "sales-a")] == "销售一组"
    table = cli("scores", "--period", "2026-04").stdout
    assert "李娜（组长）" in table and "subject_name" in table
    csv_header = cli("scores", "--format", "csv").stdout.splitlines()[0].split(",")
    assert csv_header[:4] == ["ruleset", "period", "subject", "subject_name"]


def test_under_keeps_a_unit_and_everything_below_it(cli, tmp_path):
    ingest_two_months(cli, tmp_path)
    everything = cli.json("scores", "--period", "2026-04")
    under_a = cli.json("scores", "--period", "2026-04", "--under", "sales-a")
    assert {r["subject"] for r in under_a} == {"sales-a", "s1", "s2"}
    assert under_a == [r for r in everything if r["subject"] in {"sales-a", "s1", "s2"}]
    assert {r["subject"] for r in cli.json("scores", "--under", "s3")} == {"s3"}
    assert "no unit 'nobody'" in cli("scores", "--under", "nobody", expect=1).stderr
    cli("ingest", str(EXAMPLES / "airline-1000.jsonl"))  # finance: a subject no unit event declares
    assert {r["subject"] for r in cli.json("scores", "--under", "finance")} == {"finance"}
    assert cli.json("scores", "--under", "finance", "--period", "2019") == []


def test_vs_adds_before_and_delta(cli, tmp_path):
    ingest_two_months(cli, tmp_path)
    march = {(r["subject"], r["metric"]): r["score"] for r in cli.json("scores", "--period", "2026-03")}
    rows = cli.json("scores", "--period", "2026-04", "--vs", "2026-03")
    assert rows and all("before" in r and "delta" in r for r in rows)
    for r in rows:
        before = march.get((r["subject"], r["metric"]))
        assert r["before"] == before
        assert r["delta"] == (None if before is None else Decimal(str(r["score"])) - Decimal(str(before)))
    assert any(r["delta"] is not None for r in rows) and any(r["before"] is None for r in rows)  # s3 is new
    assert "delta" in cli("scores", "--period", "2026-04", "--vs", "2026-03").stdout
    assert "--vs compares with --period" in cli("scores", "--vs", "2026-03", expect=2).stderr


def test_under_selects_complaints_and_rectifications_too(cli, tmp_path):
    ingest_two_months(cli, tmp_path)
    cases = [{"type": "complaint", "id": f"c-{s}", "subject": s, "period": "2026-04", "ruleset": "dealership-cs",
              "text": f"about {s}"} for s in ("s1", "s3", "sales-b")]
    fixes = [{"type": "rectification", "id": f"r-{s}", "subject": s, "period": "2026-04", "issue": "callback",
              "due": "2026-04-30"} for s in ("s2", "s3")]
    cli("ingest", write_jsonl(tmp_path / "cases.jsonl", cases + fixes))
    april = ("--period", "2026-04")
    assert [c["id"] for c in cli.json("complaints", *april, "--under", "sales-a")] == ["c-s1"]
    assert {c["id"] for c in cli.json("complaints", *april, "--under", "sales-b")} == {"c-s3", "c-sales-b"}
    assert len(cli.json("complaints", *april)) == 3
    remedies = {c["id"] for c in cli.json("complaints") if c["kind"] == "remedy"}
    assert remedies and remedies <= {c["id"] for c in cli.json("complaints", "--under", "sales-a")}
    assert [r["id"] for r in cli.json("rectifications", "--under", "sales-b", "--as-of", "2026-05-01")] == ["r-s3"]
    assert "no unit 'nobody'" in cli("rectifications", "--under", "nobody", expect=1).stderr
