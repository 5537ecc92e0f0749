"""A company's rule set from outside the repository: the example plugin package, installed with pip
into a fresh virtual environment, is found, scores its data, explains, and passes the conformance kit."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal

from conftest import ROOT

PLUGIN = ROOT / "examples" / "csat-callcentre"


def run(*cmd, **kw):
    env = {k: v for k, v in os.environ.items() if k != "CSAT_NO_ENTRY_POINTS"}
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env, **kw)
    assert r.returncode == 0, (cmd, r.stdout[-2000:], r.stderr[-2000:])
    return r


def test_example_plugin_in_a_fresh_virtualenv(tmp_path):
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv)
    bin_ = venv / "bin"
    run(bin_ / "pip", "install", "--quiet", "--disable-pip-version-check", ROOT, f"{PLUGIN}[test]")
    listed = {r["id"]: r for r in json.loads(run(bin_ / "csat", "rulesets", "--format", "json").stdout)}
    assert listed["callcentre-5"]["source"] == "csat-callcentre 0.1.0"
    assert "csat_rulesets" in listed["callcentre-5"]["hooks"]
    db = tmp_path / "cc.db"
    example = PLUGIN / "csat_callcentre" / "examples" / "callcentre-5.jsonl"
    run(bin_ / "csat", "--db", db, "ingest", example)
    rows = json.loads(run(bin_ / "csat", "--db", db, "scores", "--ruleset", "callcentre-5", "--format", "json").stdout,
                      parse_float=Decimal)
    assert {(r["period"], r["subject"]): r["score"] for r in rows}[("2026-04", "agent-07")] == Decimal("4.50")
    x = json.loads(run(bin_ / "csat", "--db", db, "explain", "-r", "callcentre-5", "-s", "agent-07", "-p", "2026-04",
                       "--format", "json").stdout)
    assert x["steps"] and {e["id"]: e["used"] for e in x["events"]}["ob-agent-07-2"] is False
    # a plain install (no extras) makes the monthly report and its workbooks (issue 20.17)
    run(bin_ / "csat", "--db", db, "report", "-p", "2026-04", "-o", tmp_path / "april.html")
    assert "agent-07" in (tmp_path / "april.html").read_text(encoding="utf-8")
    run(bin_ / "csat", "--db", db, "scores", "--format", "xlsx", "-o", tmp_path / "april.xlsx")
    assert (tmp_path / "april.xlsx").read_bytes().startswith(b"PK")
    described = json.loads(run(bin_ / "csat", "rulesets", "callcentre-5", "--format", "json").stdout)
    assert described["questionnaire"]["items"][0]["id"] == "rating"  # the outside rule set's questionnaire
    # the entry point can be switched off
    env_off = dict(os.environ, CSAT_NO_ENTRY_POINTS="1")
    off = subprocess.run([bin_ / "csat", "rulesets", "--format", "json"], capture_output=True, text=True, env=env_off)
    assert "callcentre-5" not in {r["id"] for r in json.loads(off.stdout)}
    # the plugin's own tests, with csat's conformance kit, pass in that environment
    run(bin_ / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider", PLUGIN / "tests", cwd=tmp_path)
