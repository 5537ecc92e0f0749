"""The command line: help with examples, exit codes, one renderer, aligned Chinese tables."""
from __future__ import annotations

import csv
import io
import json
import os
import subprocess
from decimal import Decimal
import sys

import pytest
from click.testing import CliRunner

from conftest import EXAMPLES

from csat.cli.main import cli as group
from csat.cli.output import width

AIR = str(EXAMPLES / "airline-1000.jsonl")
COMMANDS = sorted(group.commands)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(cli, command):
    out = cli(command, "--help").stdout
    assert "Example" in out, out


def test_usage_error_exits_2(cli):
    r = cli("scores", "--format", "xml", expect=2)
    assert "Invalid value for '--format'" in r.stderr and r.stderr.count("\n") == 1
    cli("explain", "--ruleset", "airline-1000", expect=2)  # missing --subject / --period


@pytest.mark.parametrize("args, words", [
    (("rectifications", "--as-of", "2026-02-30"), "expected a real date YYYY-MM-DD, got '2026-02-30'"),
    (("units", "--as-of", "2026-13"), "expected a real month YYYY-MM (01-12), got '2026-13'"),
    (("scores", "--period", "2026-13"), "expected a month YYYY-MM (01-12), a quarter YYYY-Qn or a year YYYY"),
    (("log", "--period", "2026-Q5"), "a quarter YYYY-Qn"),
    (("adopt", "x.toml", "-r", "plant-50", "--from", "2026-3"), "expected a month YYYY-MM, got '2026-3'"),
    (("whatif", "-r", "plant-50", "--params", "x.toml", "--from", "2026-3"), "expected a month YYYY-MM"),
    (("scores", "--vs", "2026-02"), "--vs compares with --period: give both"),
    (("report", "-p", "2026-00", "-o", "r.html"), "expected a month YYYY-MM (01-12)"),
])
def test_parameter_checks_are_usage_errors_in_one_line(cli, args, words):
    """The README promises exit 2 for usage: click's parameter types check every period, month and
    date once, before the command runs (issue 20.12)."""
    r = cli(*args, expect=2)
    assert words in r.stderr and r.stderr.count("\n") == 1 and r.stderr.startswith("csat: "), r.stderr
    assert f"(see cli {args[0]} --help)" in r.stderr


def test_every_command_takes_db_and_the_environment(cli, tmp_path, monkeypatch):
    """`csat scores --db csat-demo.db` after `csat demo` (issue 20.13), and $CSAT_DB."""
    cli("ingest", AIR)
    runner = CliRunner()
    out = runner.invoke(group, ["scores", "--db", cli.db, "--format", "json"]).stdout
    assert json.loads(out, parse_float=Decimal) == cli.json("scores")
    monkeypatch.setenv("CSAT_DB", cli.db)
    assert runner.invoke(group, ["scores", "--format", "json"]).stdout == out
    other = str(tmp_path / "other.db")
    r = runner.invoke(group, ["--db", other, "scores", "--db", cli.db, "--format", "json"])  # the command's wins
    assert r.stdout == out and not os.path.exists(other)
    for name, command in group.commands.items():
        assert name == "copy" or any(p.name == "db" for p in command.params), name
    assert "env var: CSAT_DB" in runner.invoke(group, ["--help"]).stdout
    assert runner.invoke(group, ["--version"], prog_name="csat").stdout.startswith("csat, version ")


def test_errors_are_one_line_exit_1(cli):
    cli("ingest", AIR)
    r = cli("scores", "--ruleset", "nope", expect=1)
    assert r.stderr == "csat: rule set 'nope' is not installed (installed: airline-1000, dealership-cs, iso-100, plant-50, supplier-400)\n"
    r = cli("explain", "-r", "airline-1000", "-s", "nobody", "-p", "2026-03", expect=1)
    assert r.stderr == "csat: no responses of airline-1000 for 'nobody' in 2026-03\n"


def test_scores_filters_and_formats(cli):
    cli("ingest", AIR)
    rows = cli.json("scores", "--period", "2026-Q1")
    assert [(r["period"], r["score"]) for r in rows] == [("2026-Q1", Decimal("723.33"))]
    assert all(r["period"] == "2026-02" for r in cli.json("scores", "-p", "2026-02"))
    text = cli("scores", "--format", "csv").stdout
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert parsed[1]["period"] == "2026-01" and parsed[1]["score"] == "700.00" and parsed[1]["final"] == "105.00"
    assert cli("--db", cli.db, "scores", "--subject", "nobody").stdout.splitlines()[0] == "(no scores)"


def test_json_numbers_keep_their_published_digits(cli):
    cli("ingest", AIR)
    out = cli("scores", "--period", "2026-01", "--format", "json").stdout
    assert '"score": 700.00' in out and '"weight": 0.15' in out


def test_table_aligns_chinese_labels(cli, tmp_path):
    cli("ingest", AIR)
    x = cli("explain", "-r", "airline-1000", "-s", "finance", "-p", "2026-03").stdout
    lines = [line for line in x.splitlines() if "初始得分" in line or "rating unit" in line]
    ends = {width(line[: line.rindex("mean")]) for line in lines}
    assert len(ends) == 1, lines  # the formula column starts at the same display column


def test_explain_text_and_json(cli):
    cli("ingest", AIR)
    text = cli("explain", "-r", "airline-1000", "-s", "finance", "-p", "2026-03").stdout
    assert "adoption airline-policy-2026" in text and "sha256:" in text and "air-2026-03-3" in text
    x = cli.json("explain", "-r", "airline-1000", "-s", "finance", "-p", "2026-Q1")
    assert {"params_hash", "steps", "events", "score", "adoption"} <= set(x)
    assert any("mean of the monthly scores" in s["formula"] for s in x["steps"])
    assert len([e for e in x["events"] if e["type"] == "response"]) == 7


def test_db_from_environment(tmp_path, monkeypatch):
    from click.testing import CliRunner
    target = tmp_path / "env.db"
    monkeypatch.setenv("CSAT_DB", str(target))
    r = CliRunner().invoke(group, ["ingest", AIR])
    assert r.exit_code == 0 and target.exists()


def test_log_lists_events_with_position_and_time(cli):
    cli("ingest", AIR)
    rows = cli.json("log", "--type", "response")
    assert [r["position"] for r in rows] == list(range(2, 9))
    assert all(r["recorded"].endswith("Z") for r in rows)
    assert cli.json("log", "--id", "air-2026-03-3")[0]["event"]["reasons"]


def test_console_script_runs_without_traceback(tmp_path):
    r = subprocess.run([sys.executable, "-m", "csat.cli.main", "--db", str(tmp_path / "x.db"), "scores",
                        "--period", "bad"], capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr and r.stderr.startswith("csat: scores: ")


def test_demo_builds_a_fresh_database_and_leaves_real_stores_alone(tmp_path, monkeypatch):
    from click.testing import CliRunner
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    r = runner.invoke(group, ["demo"])
    assert r.exit_code == 0, r.output
    assert "723.33" in r.stdout and "explain --ruleset airline-1000" in r.stdout
    assert (tmp_path / "csat-demo.db").exists()
    assert runner.invoke(group, ["demo"]).exit_code == 0  # a previous demo is replaced
    runner.invoke(group, ["--db", "real.db", "ingest", AIR])
    r = runner.invoke(group, ["--db", "real.db", "demo"])
    assert r.exit_code == 1 and "is not a demo database" in r.stderr


def test_rebuild_reports_events_per_second_and_keeps_the_scores(cli):
    cli("ingest", AIR)
    before = cli.json("scores")
    out = cli("rebuild").stdout
    assert out.startswith("rebuilt from 8 events in ") and out.rstrip().endswith("events/s)")
    assert cli.json("scores") == before


def test_an_unusable_store_is_one_line(tmp_path):
    from click.testing import CliRunner
    missing = tmp_path / "no" / "such" / "dir" / "x.db"
    r = CliRunner().invoke(group, ["--db", str(missing), "scores"])
    assert r.exit_code == 1 and r.stderr.startswith("csat: no csat store at ") and r.stderr.count("\n") == 1
    assert not missing.parent.exists()
    r = CliRunner().invoke(group, ["--db", str(missing), "ingest", str(tmp_path / "none.jsonl")])
    assert r.exit_code == 1 and r.stderr.startswith("csat: cannot open ") and r.stderr.count("\n") == 1
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database" * 100)
    r = CliRunner().invoke(group, ["--db", str(junk), "scores"])
    assert r.exit_code == 1 and r.stderr.startswith("csat: ") and r.stderr.count("\n") == 1, r.stderr
