"""Ctrl-C and a lost PostgreSQL server during `csat ingest` (issue 31.15): the command ends in one
line that says exactly what was kept — nothing before the append's commit (and a store it created
is not left behind), the events after it (the read models not yet: the next command brings them
up to date) — with exit status 130 for Ctrl-C, as shells expect.

The moment is the real one: the real CLI in a subprocess stops at a test seam
(``$CSAT_TEST_PAUSE_BEFORE_COMMIT`` / ``…_AFTER_COMMIT``, cli/app.py ``pause_for_test``) and the
test sends SIGINT or stops the server (``pg_ctl stop -m immediate``) exactly then.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import synth
from conftest import connect, write_jsonl
from csat.engine.log.keys import key_store_path
from csat.engine.log.postgres import is_postgres

CSAT = [sys.executable, "-m", "csat.cli.main"]
ENV = {**os.environ, "CSAT_NO_ENTRY_POINTS": "1", "PYTHONWARNINGS": "ignore"}


def start(db: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen([*CSAT, "--db", str(db), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**ENV, **(env or {})})


def finish(p: subprocess.Popen) -> tuple[int, str, str]:
    out, err = p.communicate(timeout=120)
    assert "Traceback" not in err, err
    return p.returncode, out, err


def at_moment(db: str, moment: str, tmp_path: Path, act, *args: str) -> tuple[int, str, str]:
    """Run ``csat ingest ARGS`` until it reaches ``moment``, ``act(process)`` there, let it go on."""
    go = tmp_path / f"{moment.lower()}-{time.monotonic_ns()}"
    p = start(db, "ingest", *args, env={f"CSAT_TEST_PAUSE_{moment}": str(go)})
    deadline = time.monotonic() + 90
    while not Path(f"{go}.reached").exists():
        assert p.poll() is None and time.monotonic() < deadline, ("never reached", moment, p.communicate())
        time.sleep(0.01)
    act(p)
    go.touch()
    return finish(p)


def log_size(db: str) -> int:
    with connect(db) as conn:
        if is_postgres(db) and conn.execute("SELECT to_regclass('stored_events')").fetchone()[0] is None:
            return 0
        return conn.execute("SELECT COUNT(*) FROM stored_events").fetchone()[0]


def scores(db: str) -> list[dict]:
    code, out, err = finish(start(db, "scores", "--format", "json"))
    assert code == 0, err
    return json.loads(out)


@pytest.fixture(scope="module")
def events(tmp_path_factory) -> tuple[str, int, list[dict]]:
    """A file of events (some of them with personal data: a key file is made), how many events a
    clean ingest of it appends, and the scores it publishes."""
    folder = tmp_path_factory.mktemp("interrupts")
    evs = list(synth.iso(600, subjects=6, per_month=25, seed=3))
    for i, e in enumerate(evs[:20]):
        e["respondent"], e["comment"] = f"张{i}", "服务一般"
    path = write_jsonl(folder / "all.jsonl", evs)
    ref = str(folder / "ref.db")
    code, _, err = finish(start(ref, "ingest", path))
    assert code == 0, err
    return path, log_size(ref), scores(ref)


def sigint(p: subprocess.Popen) -> None:
    p.send_signal(signal.SIGINT)


def test_ctrl_c_before_the_commit_appends_nothing_and_leaves_no_store(events, db, tmp_path):
    path, _, _ = events
    code, out, err = at_moment(db, "BEFORE_COMMIT", tmp_path, sigint, path)
    assert (code, out, err) == (130, "", "csat: interrupted: nothing appended\n")
    if is_postgres(db):
        assert log_size(db) == 0
    else:  # neither the store it created nor its key file (the names of the keys' owners)
        assert not os.path.exists(db) and not os.path.exists(key_store_path(db))


def test_ctrl_c_after_the_commit_says_what_was_kept(events, db, tmp_path):
    path, total, expected = events
    code, out, err = at_moment(db, "AFTER_COMMIT", tmp_path, sigint, path)
    assert (code, out) == (130, "")
    assert err == (f"csat: {total:,} events appended and committed (log position {total:,}); the read models were "
                   "not brought up to date (interrupted): the next command does it\n")
    assert log_size(db) == total
    assert scores(db) == expected  # the next command caught up


def test_ctrl_c_into_an_existing_store_keeps_it(events, db, tmp_path):
    path, total, _ = events
    unit = write_jsonl(tmp_path / "unit.jsonl", [{"type": "unit", "id": "line-x", "name": "X线"}])
    assert finish(start(db, "ingest", unit))[0] == 0
    code, _, err = at_moment(db, "BEFORE_COMMIT", tmp_path, sigint, path)
    assert (code, err) == (130, "csat: interrupted: nothing appended\n")
    assert log_size(db) == 1


@pytest.mark.sqlite_only("a new store file appearing is the moment")
def test_ctrl_c_as_the_new_store_is_made_leaves_none_behind(events, db):
    path, _, _ = events
    p = start(db, "ingest", path)
    while not os.path.exists(db) and p.poll() is None:
        time.sleep(0.0005)
    sigint(p)
    code, _, err = finish(p)
    assert (code, err) == (130, "csat: interrupted: nothing appended\n")
    assert not os.path.exists(db) and not os.path.exists(key_store_path(db))


def test_ctrl_c_at_a_question_exits_130(cli, db, tmp_path):
    """Ctrl-C anywhere in the CLI exits 130 (a question answered no stays "aborted", 1)."""
    cli("ingest", write_jsonl(tmp_path / "a.jsonl", [{
        "type": "response", "id": "r1", "ruleset": "iso-100", "period": "2026-03", "subject": "line-0",
        "respondent": "李四", "answers": {"quality": 5, "delivery": 13, "service": 11, "after_sales": 13, "price": 12}}]))
    p = subprocess.Popen([*CSAT, "--db", db, "erase", "--respondent", "李四"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    seen = b""
    while b"[y/N]" not in seen:
        chunk = os.read(p.stderr.fileno(), 4096)
        assert chunk, seen
        seen += chunk
    sigint(p)
    out, rest = p.communicate(timeout=60)
    err = (seen + rest).decode()
    assert p.returncode == 130 and err.rstrip().endswith("csat: interrupted"), err
    assert "Traceback" not in err
    assert "李四" in cli("log", "--format", "json").stdout  # nothing erased


@pytest.fixture(scope="module")
def server():
    """A PostgreSQL server of this module's own (its tests stop it), durable: a commit survives."""
    from pgserver import Server
    try:
        s = Server(durable=True)
    except Exception as e:  # noqa: BLE001
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no PostgreSQL server could be started here: {e}")
    yield s
    s.stop()


def test_the_server_lost_before_the_commit_appends_nothing(events, server, tmp_path):
    path, total, expected = events
    db = server.database()
    try:
        code, out, err = at_moment(db, "BEFORE_COMMIT", tmp_path, lambda p: server.crash(), path)
    finally:
        server.start()
    assert code == 1 and len(err.splitlines()) == 1, err
    assert err.startswith(f"csat: lost the PostgreSQL store {db} (") and err.endswith(
        "; nothing appended (the server rolled the transaction back): run it again\n"), err
    assert log_size(db) == 0
    assert finish(start(db, "ingest", path))[0] == 0
    assert log_size(db) == total and scores(db) == expected
