"""What a respondent's erasure takes and keeps (issue 31.16, docs/events.md §7): their name, and
the reasons and comments they gave as a private person; never a rated unit's statement (a
workshop's reasons, filled in by one of its people: the evidence a department must rectify
against), a complaint or a rectification. Before it asks, `csat erase` says what will become
unreadable. On both backends, through the real CLI."""
from __future__ import annotations

import pytest

from conftest import Cli, write_jsonl

AIRLINE = {"ruleset": "airline-1000", "period": "2026-03"}
ISO = {"ruleset": "iso-100", "period": "2026-03", "answers": {"quality": 5, "delivery": 13, "service": 11,
                                                              "after_sales": 13, "price": 12}}


def events() -> list[dict]:
    return [
        {"type": "unit", "id": "ws-3", "kind": "workshop", "name": "三车间"},
        {"type": "unit", "id": "cust-9", "kind": "person", "name": "赵先生"},
        # the workshop's return, filled in by 王建国 (its reasons are the workshop's)
        {"type": "response", "id": "r-ws", **AIRLINE, "subject": "finance", "rater": "ws-3", "respondent": "王建国",
         "answers": {"quality": "D", "efficiency": "B"}, "reasons": {"quality": "报销单退回三次"},
         "comment": "财务科答复慢"},
        # a customer answering as a private person: no rater unit
        {"type": "response", "id": "r-cust", **ISO, "subject": "line-1", "respondent": "李女士",
         "reasons": {"quality": "电话没人接"}, "comment": "住在三号楼"},
        # a rater unit that is a person
        {"type": "response", "id": "r-p", **AIRLINE, "subject": "hr", "rater": "cust-9",
         "answers": {"quality": "D", "efficiency": "B"}, "reasons": {"quality": "态度差"}},
        {"type": "rectification", "id": "rect-ws", "subject": "finance", "period": "2026-03",
         "issue": "报销流程整改", "due": "2026-04-30", "response": "r-ws"},
        {"type": "complaint", "id": "c-1", "subject": "line-1", "period": "2026-03", "text": "客户投诉：接听",
         "response": "r-cust"},
    ]


@pytest.fixture
def cli(db, tmp_path) -> Cli:
    c = Cli(db)
    c("ingest", write_jsonl(tmp_path / "march.jsonl", events()))
    return c


def logged(cli: Cli, id_: str) -> dict:
    (row,) = cli.json("log", "--id", id_)
    return row["event"]


def test_a_units_reasons_survive_the_erasure_of_the_person_who_filled_in_its_return(cli):
    out = cli("erase", "--respondent", "王建国", "--yes").stdout
    assert out.startswith("erased p-") and out.endswith(": 1 sealed fields made unreadable\n")
    ev = logged(cli, "r-ws")
    assert ev["respondent"] == "[erased]"
    assert (ev["reasons"], ev["comment"]) == ({"quality": "报销单退回三次"}, "财务科答复慢")  # the unit's evidence
    (rect,) = [r for r in cli.json("rectifications") if r["id"] == "rect-ws"]
    assert rect["issue"] == "报销流程整改"
    assert "王建国" not in cli("log").stdout


def test_a_private_persons_texts_go_with_them(cli):
    cli("erase", "--respondent", "李女士", "--yes")
    ev = logged(cli, "r-cust")
    assert (ev["respondent"], ev["reasons"]["quality"], ev["comment"]) == ("[erased]",) * 3
    assert [c["text"] for c in cli.json("complaints")] == ["客户投诉：接听"]  # the complaint is the case's own
    cli("erase", "--respondent", "cust-9", "--yes")  # a rater of kind person answered as themselves
    assert logged(cli, "r-p")["reasons"]["quality"] == "[erased]"
    assert logged(cli, "cust-9")["name"] == "[erased]"
    assert logged(cli, "r-ws")["reasons"]["quality"] == "报销单退回三次"


def test_erase_says_what_will_become_unreadable_before_it_asks(cli, tmp_path):
    r = cli.runner.invoke(cli.group, ["--db", cli.db, "erase", "--respondent", "李女士"], input="n\n")
    assert r.exit_code == 1 and r.stderr.endswith("csat: aborted\n"), r.output
    first = r.stderr.splitlines()[0]
    assert first.startswith("'李女士' is p-") and first.endswith(
        ": 1 name, 1 reason, 1 comment sealed under their key will read [erased] (2 of those texts cited by an "
        "open complaint or rectification); what a unit said, complaints and rectifications stay"), first
    assert logged(cli, "r-cust")["comment"] == "住在三号楼"  # answered no: nothing erased
    cli("ingest", write_jsonl(tmp_path / "closed.jsonl", [
        {"type": "complaint_closed", "id": "c-1-closed", "complaint": "c-1", "date": "2026-04-02"}]))
    r = cli.runner.invoke(cli.group, ["--db", cli.db, "erase", "--respondent", "李女士"], input="n\n")
    assert "(0 of those texts cited by an open complaint or rectification)" in r.stderr, r.stderr
    r = cli.runner.invoke(cli.group, ["--db", cli.db, "erase", "--respondent", "王建国"], input="y\n")
    assert r.exit_code == 0 and r.stderr.startswith("'王建国' is p-") and (
        ": 1 name, 0 reasons, 0 comments sealed under their key will read [erased]; " in r.stderr), r.stderr
