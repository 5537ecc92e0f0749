"""Confidential raters (issue 15, 考核数据保密): `log --redact` and `explain --redact` name no rater
or respondent, and give each the same pseudonym throughout one output."""
from __future__ import annotations

import json
import random
import re

import pytest

from conftest import EXAMPLES, Cli, write_jsonl


def raters_of(cli) -> set[str]:
    events = [json.loads(line) for line in (EXAMPLES / "airline-1000.jsonl").read_text(encoding="utf-8").splitlines()]
    return {e[k] for e in events for k in ("rater", "respondent") if e.get(k)}


def test_log_redact_names_nobody_and_keeps_who_is_who(cli):
    cli("ingest", str(EXAMPLES / "airline-1000.jsonl"))
    plain = cli.json("log", "--type", "response")
    redacted = cli.json("log", "--type", "response", "--redact")
    names = raters_of(cli)
    assert names and not any(n in json.dumps(redacted, ensure_ascii=False, default=str) for n in names)
    pairs = {(p["event"]["rater"], r["event"]["rater"]) for p, r in zip(plain, redacted)}
    assert len(pairs) == len({a for a, _ in pairs}) == len({b for _, b in pairs})  # one-to-one, stable
    assert {b for _, b in pairs} == {f"rater-{i}" for i in range(1, len(pairs) + 1)}
    assert {r["event"]["respondent"] for r in redacted} <= {f"respondent-{i}" for i in range(1, 99)}
    for p, r in zip(plain, redacted):  # nothing else changes
        assert {k: v for k, v in p["event"].items() if k not in ("rater", "respondent")} == \
            {k: v for k, v in r["event"].items() if k not in ("rater", "respondent")}


def test_explain_redact_keeps_the_figures_and_drops_the_names(cli):
    cli("ingest", str(EXAMPLES / "airline-1000.jsonl"))
    args = ("explain", "-r", "airline-1000", "-s", "finance", "-p", "2026-03")
    plain, redacted = cli.json(*args), cli.json(*args, "--redact")
    names = {n for n in raters_of(cli) if any(n in s["label"] for s in plain["steps"])}
    assert names  # the plain explanation names the rating units ...
    text = json.dumps(redacted["steps"], ensure_ascii=False, default=str)
    assert not any(n in text for n in names) and "rater-1" in text  # ... the redacted one does not
    assert [s["value"] for s in redacted["steps"]] == [s["value"] for s in plain["steps"]]
    assert {k: v for k, v in redacted.items() if k != "steps"} == {k: v for k, v in plain.items() if k != "steps"}
    assert "rater-1" in cli(*args, "--redact").stdout


# -- every string of a redacted output (issue 20.4) ---------------------------------------------------



def confidential(events: list[dict]) -> set[str]:
    return {e[k] for e in events for k in ("rater", "respondent") if e.get(k)}


def leaks(text: str, names: set[str]) -> list[str]:
    """The names found in ``text``: anywhere in it, or (a name of two ASCII characters, ``c1``) as
    a token — a sha256 in the output may hold ``c1`` among its hex digits."""
    return sorted(n for n in names
                  if (re.search(rf"(?<![A-Za-z0-9]){re.escape(n)}(?![A-Za-z0-9])", text)
                      if len(n) <= 2 and n.isascii() else n in text))


def randomized(seed: int = 7) -> list[dict]:
    """iso-100 surveys whose raters and respondents are named in ids, reasons, comments and
    complaint texts, before and after their own responses."""
    r = random.Random(seed)
    raters = [f"{r.choice(['林', '王', '陈'])}{r.choice(['海燕', '建国', '丽'])}-{i}" for i in range(6)]
    people = [f"resp-{r.choice(['zhang', 'li', 'wu'])}-{i:02d}" for i in range(6)]
    events = [{"type": "complaint", "id": f"cmp-{people[0]}", "subject": "acme", "period": "2026-01",
               "date": "2026-01-05", "text": f"{people[0]} and {raters[1]} were kept waiting"}]
    for i in range(60):
        rater, person = r.choice(raters), r.choice(people)
        month, subject = f"2026-0{1 + i % 3}", r.choice(["acme", "globex", "initech"])
        answers = {"quality": r.randint(15, 30), "delivery": r.randint(10, 20), "service": r.randint(8, 15),
                   "after_sales": r.randint(10, 20), "price": r.randint(8, 15)}
        e = {"type": "response", "id": f"iso-{month}-{subject}-{rater}-{i}", "ruleset": "iso-100", "period": month,
             "subject": subject, "rater": rater, "respondent": person, "answers": answers,
             "comment": f"as {r.choice(raters)} told {r.choice(people)}: slow"}
        events.append(e)
    events.append({"type": "correction", "id": f"fix-by-{raters[2]}", "response": events[3]["id"],
                   "answers": events[3]["answers"], "reason": f"{people[3]} asked for it"})
    return events


@pytest.mark.parametrize("name", ["airline-1000", "dealership-cs", "iso-100", "plant-50", "randomized"])
def test_no_rater_or_respondent_is_named_anywhere_in_a_redacted_output(tmp_path, name):
    events = randomized() if name == "randomized" else [
        json.loads(line) for line in (EXAMPLES / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()]
    names = confidential(events)
    cli = Cli(str(tmp_path / "r.db"))
    cli("ingest", write_jsonl(tmp_path / "in.jsonl", events))
    plain = cli("log", "--format", "json").stdout
    assert leaks(plain, names)  # the plain listing names them ...
    outputs = {f"log {fmt}": cli("log", "--redact", "--format", fmt).stdout for fmt in ("table", "json", "csv")}
    for row in cli.json("scores", "--period", "2026")[:6] + [r for r in cli.json("scores") if "-" in r["period"]][:6]:
        args = ("explain", "-r", row["ruleset"], "-s", row["subject"], "-p", row["period"], "-m", row["metric"],
                "--redact")
        outputs[" ".join(args)] = cli(*args).stdout + cli(*args, "--format", "json").stdout
    for what, text in outputs.items():  # ... no redacted output names anyone, in any field or format
        assert not leaks(text, names), (what, leaks(text, names))
    assert "rater-1" in outputs["log json"]


def test_a_pseudonym_never_holds_a_name_it_hides():
    from csat.engine.app.redact import Pseudonyms
    names = Pseudonyms([("rater", "rater-1"), ("rater", "ops"), ("respondent", "ops/gm")])
    out = names.text("ops/gm and rater-1 and ops and opsroom")
    assert out == "respondent-1 and rater-2 and rater-3 and rater-3room"
