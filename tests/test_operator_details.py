"""The small things operators trip over: progress that tells the truth, a log that streams and
filters, views that do not show the future, and reading commands that never create a store."""
from __future__ import annotations

import io
import json
import os
import shlex
import subprocess
import sys

import pytest

from conftest import EXAMPLES, ROOT, write_jsonl, connect

from csat.cli.output import render_stream
from csat.cli.progress import ProgressLine
from csat.engine import Engine

SUPPLIER = ROOT / "rulesets" / "examples" / "supplier-demo.jsonl"


def test_ingest_progress_counts_lines_then_events_and_scores(tmp_path):
    path = EXAMPLES / "airline-1000.jsonl"
    lines = sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    out = io.StringIO()
    show = ProgressLine("ingest", lines_total=lines, file=out, force=True, every=0)
    with Engine.open(tmp_path / "p.db") as engine:
        engine.ingest([path], progress=show)
        assert show.lines == lines
        show.label, show.events_total = "scores", engine.store.max_position()
        engine.catch_up(progress=show)
        assert show.events == engine.store.max_position() and show.scored > 0
    show.done()
    final = out.getvalue().rsplit("\r", 1)[-1]
    assert f"{lines}/{lines} lines checked" in final
    assert f"{show.events}/{show.events} events applied (100%)" in final and "subject-months scored" in final


def test_rebuild_progress_reaches_every_event(tmp_path):
    out = io.StringIO()
    with Engine.open(tmp_path / "p.db") as engine:
        engine.ingest([EXAMPLES / "plant-50.jsonl"])
        show = ProgressLine("rebuild", events_total=engine.store.max_position(), file=out, force=True, every=0)
        n = engine.rebuild(progress=show)
    assert show.events == n and f"{n}/{n} events applied (100%)" in out.getvalue()


def test_an_old_style_progress_callable_still_works(tmp_path):
    seen = []
    with Engine.open(tmp_path / "p.db") as engine:
        engine.ingest([EXAMPLES / "plant-50.jsonl"])
        engine.rebuild(progress=seen.append)
    assert sum(seen) > 0


@pytest.fixture
def logged(cli):
    cli("ingest", str(EXAMPLES / "airline-1000.jsonl"), str(EXAMPLES / "iso-100.jsonl"))
    return cli


def test_log_filters_limit_and_tail(logged):
    everything = logged.json("log")
    assert [r["position"] for r in everything] == sorted(r["position"] for r in everything)
    assert [r["position"] for r in logged.json("log", "--limit", "3")] == [r["position"] for r in everything[:3]]
    assert [r["position"] for r in logged.json("log", "--tail", "2")] == [r["position"] for r in everything[-2:]]
    finance = logged.json("log", "--subject", "finance")
    assert finance and all(r["event"]["subject"] == "finance" for r in finance)
    assert finance == [r for r in everything if r["event"].get("subject") == "finance"]
    iso = logged.json("log", "--ruleset", "iso-100", "--tail", "1")
    assert iso == [[r for r in everything if r["event"].get("ruleset") == "iso-100"][-1]]
    q1 = logged.json("log", "--period", "2026-Q1")
    assert q1 == [r for r in everything if r["event"].get("period") in ("2026-01", "2026-02", "2026-03")]
    assert logged("log", "--period", "2026-13", expect=2).stderr.startswith("csat: log: ")
    table = logged("log", "--limit", "2").stdout.splitlines()
    assert table[0].split() == ["position", "recorded", "type", "id", "event"] and len(table) == 4
    assert logged("log", "--format", "csv", "--tail", "1").stdout.count("\n") == 2


def test_render_stream_writes_before_the_rows_run_out():
    emitted: list[str] = []

    def rows():
        for i in range(250):
            yield {"position": i, "id": f"e{i}"}
        raise RuntimeError("the rest of the log never needed reading")

    with pytest.raises(RuntimeError):
        render_stream(rows(), "table", emitted.append, columns=("position", "id"), chunk=100)
    assert len(emitted) == 2 + 200  # header, rule, and the two full chunks were out before the end
    json_out: list[str] = []
    render_stream(iter([{"a": 1}, {"a": 2}]), "json", json_out.append, columns=("a",))
    assert json.loads("".join(json_out)) == [{"a": 1}, {"a": 2}]


def test_log_through_a_pipe_that_closes_early(logged, tmp_path):
    env = {**os.environ, "CSAT_NO_ENTRY_POINTS": "1"}
    r = subprocess.run(f"{sys.executable} -m csat.cli.main --db {shlex.quote(logged.db)} log | head -3", shell=True,
                       capture_output=True, text=True, env=env, timeout=60)
    assert len(r.stdout.splitlines()) == 3 and "Traceback" not in r.stderr


def test_rectifications_as_of_hide_what_was_raised_later(cli):
    cli("ingest", str(SUPPLIER))
    everything = {r["id"]: r for r in cli.json("rectifications", "--as-of", "2026-12-31")}
    assert {"rect-pcb-02", "rect-aux-03", "rect-aux-04"} <= set(everything)
    january = {r["id"] for r in cli.json("rectifications", "--as-of", "2026-01-15")}
    assert january == {i for i, r in everything.items() if r["period"] <= "2026-01"}
    march = {r["id"] for r in cli.json("rectifications", "--as-of", "2026-03-31")}
    assert "rect-aux-03" in march and "rect-aux-04" not in march


@pytest.mark.parametrize("command", [
    ["scores"], ["explain", "-r", "iso-100", "-s", "x", "-p", "2026-01"], ["log"], ["complaints"],
    ["rectifications"], ["units"], ["rebuild"], ["whatif", "-r", "iso-100", "--params", "p.toml"]])
def test_a_reading_command_never_creates_a_store(cli, tmp_path, command):
    missing = tmp_path / "typo.db"
    cli.db = str(missing)
    (tmp_path / "p.toml").write_text("precision = 2\n", encoding="utf-8")
    args = [a if a != "p.toml" else str(tmp_path / "p.toml") for a in command]
    r = cli(*args, expect=1)
    assert r.stderr == f"csat: no csat store at {missing} (csat ingest creates one; --db or $CSAT_DB chooses another)\n"
    assert not missing.exists()


def test_a_file_that_is_not_a_store(cli, tmp_path):
    junk = tmp_path / "notes.txt"
    junk.write_text("meeting notes", encoding="utf-8")
    cli.db = str(junk)
    assert cli("scores", expect=1).stderr == f"csat: {junk} is not a csat store (not a SQLite database)\n"
    other = tmp_path / "other.db"
    with connect(str(other)) as conn:
        conn.execute("CREATE TABLE t (x)")
    cli.db = str(other)
    assert "is not a csat store (a SQLite database without a csat log)" in cli("log", expect=1).stderr


def test_rulesets_needs_no_store(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cli.db = str(tmp_path / "never.db")
    assert {r["id"] for r in cli.json("rulesets")} >= {"airline-1000", "iso-100"}
    assert not (tmp_path / "never.db").exists() and not (tmp_path / "csat.db").exists()


def test_a_busy_store_is_one_line(tmp_path, monkeypatch):
    db = tmp_path / "b.db"
    path = write_jsonl(tmp_path / "u.jsonl", [{"type": "unit", "id": "u1"}])
    with Engine.open(db) as holder:
        holder.store.conn.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        env = {**os.environ, "CSAT_NO_ENTRY_POINTS": "1", "CSAT_BUSY_TIMEOUT": "0.2"}
        r = subprocess.run([sys.executable, "-m", "csat.cli.main", "--db", str(db), "ingest", path],
                           capture_output=True, text=True, env=env, timeout=60)
        holder.store.conn.execute("ROLLBACK")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith(f"csat: the store {db} is busy: another csat process has held its write lock")
    assert r.stderr.count("\n") == 1
