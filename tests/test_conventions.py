"""Conventions a user of a command-line tool expects (issue 20.14–20.19): standard input and output
as `-`, a closed pipe is no error, -o on every command that prints, files told apart by their
content, help that offers only what a command does, and the embedding API's reports."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import EXAMPLES, connect, write_jsonl

from csat.engine import Engine, IngestFailed

CSAT = [sys.executable, "-m", "csat.cli.main"]
ENV = {**os.environ, "CSAT_NO_ENTRY_POINTS": "1"}
ISO = EXAMPLES / "iso-100.jsonl"


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*CSAT, *args], input=stdin, capture_output=True, env=ENV, timeout=120)


def test_standard_input_and_output_as_dash(tmp_path):
    db = str(tmp_path / "s.db")
    r = run("--db", db, "ingest", "-", stdin=ISO.read_bytes())
    assert r.returncode == 0 and r.stdout.decode().startswith("5 appended"), r.stderr
    bad = run("--db", db, "ingest", "-", stdin=b'{"type": "response", "id": "z"}\n')
    assert bad.returncode == 1 and bad.stderr.decode().startswith("<stdin>:1: ")
    sheet = "id\truleset\tperiod\tsubject\tquality\tdelivery\tservice\tafter_sales\tprice\n" \
            "t1\tiso-100\t2026-11\tnorth\t20\t15\t10\t15\t10\n"
    assert run("--db", db, "ingest", "-", stdin=sheet.encode("utf-16")).returncode == 0  # a sheet on stdin
    out = run("--db", db, "scores", "--format", "json", "-o", "-")
    assert out.returncode == 0 and json.loads(out.stdout)
    assert run("--db", db, "scores", "--format", "xlsx", "-o", "-").returncode == 2  # a workbook needs a file


def test_a_closed_pipe_is_not_an_error(tmp_path):
    db = str(tmp_path / "p.db")
    assert run("--db", db, "ingest", str(ISO)).returncode == 0
    p = subprocess.run(f"{sys.executable} -m csat.cli.main --db {db} log | head -2", shell=True, env=ENV,
                       capture_output=True, executable="/bin/bash", timeout=120)
    status = subprocess.run(f"{sys.executable} -m csat.cli.main --db {db} log | head -1; "
                            "echo ${PIPESTATUS[0]}", shell=True, env=ENV, capture_output=True, text=True,
                            executable="/bin/bash", timeout=120).stdout.splitlines()[-1]
    assert len(p.stdout.splitlines()) == 2 and b"Traceback" not in p.stderr and status == "0"


@pytest.mark.parametrize("args", [("log",), ("log", "--format", "csv"), ("units", "--as-of", "2026-03"),
                                  ("explain", "-r", "iso-100", "-s", "company", "-p", "2026-11"),
                                  ("whatif", "-r", "iso-100", "--params", "{toml}", "--all")])
def test_every_printing_command_writes_a_file_with_o(cli, tmp_path, args):
    cli("ingest", str(ISO))
    toml = tmp_path / "grades.toml"
    toml.write_text("precision = 1\n", encoding="utf-8")
    args = tuple(a.format(toml=toml) for a in args)
    printed = cli(*args).stdout
    target = tmp_path / ("out.csv" if "csv" in args else "out.txt")
    r = cli(*args, "-o", str(target))
    assert r.stdout == "" and printed
    written = target.read_text(encoding="utf-8-sig")
    assert written == printed
    if "csv" in args:
        assert target.read_bytes().startswith(b"\xef\xbb\xbf")  # Excel reads Chinese right


def test_a_failed_first_ingest_leaves_no_store(tmp_path):
    db = tmp_path / "new.db"
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"type": "response", "id": "x"}])
    r = run("--db", str(db), "ingest", bad)
    assert r.returncode == 1 and not list(tmp_path.glob("new.db*"))


def test_excel_unicode_text_is_a_sheet_whatever_its_name(cli, tmp_path):
    lines = ISO.read_text(encoding="utf-8").splitlines()[:3]
    events = [json.loads(line) for line in lines]
    items = sorted(events[0]["answers"])
    rows = ["\t".join(["id", "ruleset", "period", "subject", "rater", *items])]
    rows += ["\t".join([e["id"], e["ruleset"], e["period"], e["subject"], e["rater"],
                        *(str(e["answers"][i]) for i in items)]) for e in events]
    path = tmp_path / "调查.txt"  # Excel: Save As → Unicode Text
    path.write_bytes(("\r\n".join(rows) + "\r\n").encode("utf-16"))
    assert cli("ingest", str(path)).stdout.startswith("4 appended")  # 3 responses and the implicit adoption
    assert cli.json("log", "--type", "response")[0]["event"]["answers"] == events[0]["answers"]


def test_a_sheet_header_problem_names_the_sheet_and_a_missing_column_says_so(cli, tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    book = openpyxl.Workbook()
    book.active.title = "四月"
    book.active.append(["id", "period", "subject", "q1"])
    book.active.append(["x", "2026-04", "s1", "满意"])
    path = tmp_path / "bad.xlsx"
    book.save(path)
    err = cli("ingest", str(path), expect=1).stderr
    assert err.startswith(f"{path}:1: sheet '四月' header: missing column(s) ruleset"), err
    sheet = tmp_path / "callbacks.csv"
    sheet.write_text("id,ruleset,period,subject,rater,q1,q2,q3,q4\nd1,dealership-cs,2026-03,s1,c1,满意,满意,满意,满意\n",
                     encoding="utf-8")
    err = cli("ingest", str(sheet), expect=1).stderr
    assert "field `form`: missing (a sheet needs a `form` or 表单 column)" in err and "None" not in err


@pytest.mark.parametrize("command", ["explain", "verify", "copy", "rulesets", "units", "scores"])
def test_help_offers_only_the_formats_a_command_has(cli, command):
    text = " ".join(cli(command, "--help").stdout.split())
    offered = text.split("--format [", 1)[1].split("]", 1)[0].split("|")
    said = text.split("Output format:", 1)[1].split("[default", 1)[0]
    assert ("csv" in said) == ("csv" in offered) and ("json" in said) == ("json" in offered), (offered, said)


def test_append_reports_its_implicit_adoption_apart_and_names_events_by_index(db):
    with Engine.open(db) as engine:
        report = engine.append([json.loads(line) for line in ISO.read_text(encoding="utf-8").splitlines()])
        assert report.implicit_adoptions == ["iso-100:default"]
        assert report.events == 4 and report.appended == 5  # the caller's four, and the implicit adoption
        with pytest.raises(IngestFailed) as e:
            engine.append([{"type": "unit", "id": "u1"}, {"type": "unit", "id": "u2", "parent": "u2"},
                           {"type": "response", "id": "r9"}])
        assert e.value.problems[0].startswith("events[1]: field `parent`")
        assert e.value.problems[1].startswith("events[2]: ")
    with connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM stored_events").fetchone()[0] == 5
