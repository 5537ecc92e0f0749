"""Confidential raters (issue 15, 考核数据保密): `log --redact` and `explain --redact` name no rater
or respondent, and give each the same pseudonym throughout one output."""
from __future__ import annotations

import json

from conftest import EXAMPLES


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
