"""Drills (events.md §6): several real `csat` processes on one store at once — a SQLite file and a
PostgreSQL database on a real server (the ``db`` fixture) — and processes killed with SIGKILL at
random moments. Every command must succeed or fail in one line, never print a traceback, and the
store must end exactly as if the commands had run one after another; the scores must be those a
single ingest into SQLite publishes.

Bounded: a few thousand events, a handful of processes, a few seconds per drill; one drill of
four sites × 50,000 events at once (about half a minute per backend).
"""
from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import synth
from conftest import write_jsonl, connect
from csat.engine.log.postgres import is_postgres

CSAT = [sys.executable, "-m", "csat.cli.main"]
ENV = {**os.environ, "CSAT_NO_ENTRY_POINTS": "1", "PYTHONWARNINGS": "ignore"}


def start(db: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([*CSAT, "--db", str(db), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=ENV)


def finish(procs: list[subprocess.Popen], timeout: float = 120) -> list[tuple[int, str, str]]:
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=timeout)
        out.append((p.returncode, stdout, stderr))
    for code, _, stderr in out:
        assert "Traceback" not in stderr, stderr
    return out


def run(db: str, *args: str) -> tuple[int, str, str]:
    return finish([start(db, *args)])[0]


def scores(db: str) -> list[dict]:
    code, stdout, stderr = run(db, "scores", "--format", "json")
    assert code == 0, stderr
    return json.loads(stdout)


def verified(db: str) -> int:
    code, stdout, stderr = run(db, "verify", "--format", "json")
    result = json.loads(stdout)
    assert code == 0 and result["intact"], (stdout, stderr)
    return result["events"]


def log_size(db: str) -> int:
    with connect(db) as conn:
        return conn.execute("SELECT COUNT(*) FROM stored_events").fetchone()[0]


def iso_events(n: int, seed: int = 5) -> list[dict]:
    return list(synth.iso(n, subjects=12, per_month=max(1, n // 24), seed=seed))


def split(events: list[dict], parts: int) -> list[list[dict]]:
    """Round-robin parts: each spans every month, so every ingest order records the same implicit adoption."""
    return [events[i::parts] for i in range(parts)]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, list[dict], Path, float]:
    """A file of events, the scores a single ingest of it publishes, its store and how long the
    ingest took. Responses only (no cross-references), so any split of the file ingests in any
    order — as files from different sites would."""
    folder = tmp_path_factory.mktemp("reference")
    airline = [e for e in synth.airline(4000, departments=8, raters=6, managers=2) if e["type"] == "response"]
    events = iso_events(8000) + airline
    path = Path(write_jsonl(folder / "all.jsonl", events))
    db = folder / "ref.db"
    t0 = time.monotonic()
    code, _, stderr = run(db, "ingest", str(path))
    took = time.monotonic() - t0
    assert code == 0, stderr
    return path, scores(db), db, took


def test_readers_racing_to_catch_up_all_answer_the_same(reference, db):
    path, expected, _, _ = reference
    from csat.engine import Engine
    with Engine.open(db) as e:  # append without catching up: the readers find the views behind
        e.ingest([path])
    procs = [start(db, "scores", "--format", "json") for _ in range(4)]
    results = finish(procs)
    assert [code for code, _, _ in results] == [0] * 4, [err for _, _, err in results]
    for _, out, err in results:  # the one that caught up answers the scores; one that found it busy did
        if json.loads(out) != expected:  # not wait: it answered what was published, and said so in a line
            assert json.loads(out) == [] and err.count("\n") == 1, err
            # it found the events not applied yet, or applied and their subject-months being rescored
            assert ("logged events are not scored yet" in err or "subject-months are being rescored" in err) \
                and "another process holds the write lock" in err, err
    assert any(json.loads(out) == expected for _, out, _ in results)
    assert scores(db) == expected


def test_ingest_leaves_the_scores_current(reference, db):
    path, _, _, _ = reference
    assert run(db, "ingest", str(path))[0] == 0
    with connect(db) as conn:
        tracked = conn.execute("SELECT notification_id FROM tracking WHERE application_name = 'csat-views'").fetchone()
        assert tracked[0] == conn.execute("SELECT MAX(rowid) FROM stored_events").fetchone()[0]
        assert conn.execute("SELECT COUNT(*) FROM rm_dirty").fetchone()[0] == 0
        assert conn.execute("SELECT COUNT(*) FROM scores").fetchone()[0] > 0


def test_four_ingests_of_different_files_into_a_fresh_store(reference, db, tmp_path):
    path, expected, ref, _ = reference
    events = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    files = [write_jsonl(tmp_path / f"part{i}.jsonl", part) for i, part in enumerate(split(events, 4))]
    results = finish([start(db, "ingest", f) for f in files])
    assert [code for code, _, _ in results] == [0] * 4, [err for _, _, err in results]
    appended = sum(int(out.split()[0]) for _, out, _ in results)
    assert appended == log_size(db) == log_size(ref)  # the events and the implicit adoptions, once each
    assert scores(db) == expected
    assert verified(db) == log_size(db)  # concurrent appends form one hash chain


def test_the_same_file_four_times_at_once_is_appended_once(reference, db):
    path, expected, _, _ = reference
    results = finish([start(db, "ingest", str(path)) for _ in range(4)])
    assert [code for code, _, _ in results] == [0] * 4, [err for _, _, err in results]
    counts = sorted(int(out.split()[0]) for _, out, _ in results)
    assert counts[:3] == [0, 0, 0] and counts[3] == log_size(db)
    assert scores(db) == expected


def test_ingests_and_readers_and_a_rebuild_together(reference, db, tmp_path):
    path, expected, _, _ = reference
    events = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    first, second = split(events, 2)
    assert run(db, "ingest", write_jsonl(tmp_path / "a.jsonl", first))[0] == 0
    procs = [start(db, "ingest", write_jsonl(tmp_path / "b.jsonl", second)), start(db, "rebuild"),
             start(db, "scores"), start(db, "log", "--tail", "3"), start(db, "scores", "--as-of", "100")]
    results = finish(procs)
    assert [code for code, _, _ in results] == [0] * len(procs), [err for _, _, err in results]
    assert scores(db) == expected


@pytest.fixture(scope="module")
def sites(tmp_path_factory) -> tuple[list[str], list[dict], int]:
    """Four sites' files of 50,000 responses each (every month in each, so any arrival order
    records the same implicit adoptions), and the scores one ingest of all of them publishes."""
    folder = tmp_path_factory.mktemp("sites")
    airline = [e for e in synth.airline(100_000, departments=16, raters=8, managers=4, seed=3)
               if e["type"] == "response"]
    events = list(synth.iso(100_000, subjects=20, per_month=4000, seed=9)) + airline[:100_000]
    files = [write_jsonl(folder / f"site{i}.jsonl", part) for i, part in enumerate(split(events, 4))]
    ref = str(folder / "ref.db")
    code, _, stderr = run(ref, "ingest", *files)
    assert code == 0, stderr
    return files, scores(ref), log_size(ref)


def test_four_sites_of_50k_events_each_at_once(sites, db):
    files, expected, total = sites
    results = finish([start(db, "ingest", f) for f in files], timeout=600)
    assert [code for code, _, _ in results] == [0] * 4, [err for _, _, err in results]
    appended = sum(int(out.split()[0]) for _, out, _ in results)
    assert appended == log_size(db) == total  # nothing lost, nothing twice
    with connect(db) as conn:  # one gapless ordered log
        assert conn.execute("SELECT MIN(rowid), MAX(rowid) FROM stored_events").fetchone() == (1, total)
    assert verified(db) == total  # one hash chain over the four writers' commits
    assert scores(db) == expected


def _kill_at_random(db: str, args: list[str], rng: random.Random, window: float) -> bool:
    """Start a command, SIGKILL it after a random moment; True when it was killed before finishing."""
    p = start(db, *args)
    time.sleep(rng.uniform(0.1, 0.9) * window)
    killed = p.poll() is None
    if killed:
        p.send_signal(signal.SIGKILL)
    p.communicate(timeout=60)
    return killed


def test_kill_9_of_an_ingest_leaves_all_or_nothing(reference, fresh_db):
    path, expected, ref, took = reference
    total = log_size(ref)
    rng = random.Random(20261124)
    kills = 0
    for attempt in range(4):
        db = fresh_db(f"k{attempt}")
        kills += _kill_at_random(db, ["ingest", str(path)], rng, took)
        if _has_log(db):
            assert log_size(db) in (0, total)
        code, out, err = run(db, "ingest", str(path))  # the rerun completes what was lost, appends nothing twice
        assert code == 0, err
        assert log_size(db) == total
        assert scores(db) == expected
        assert verified(db) == total
    assert kills >= 2, "the drill never interrupted an ingest; widen its window"


def _has_log(db: str) -> bool:
    if is_postgres(db):
        with connect(db) as conn:
            return conn.execute("SELECT to_regclass('stored_events')").fetchone()[0] is not None
    if not os.path.exists(db):
        return False
    with connect(db) as conn:
        return conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'stored_events'").fetchone() is not None


def test_kill_9_of_a_rebuild_changes_no_published_score(reference, db):
    path, expected, _, _ = reference
    assert run(db, "ingest", str(path))[0] == 0
    t0 = time.monotonic()
    assert run(db, "rebuild")[0] == 0
    took = time.monotonic() - t0
    rng = random.Random(7)
    kills = 0
    for _ in range(4):
        kills += _kill_at_random(db, ["rebuild"], rng, took)
        with connect(db) as conn:  # what another process reads right now: the old, complete scores
            assert conn.execute("SELECT COUNT(*) FROM scores").fetchone()[0] == len(expected)
        assert scores(db) == expected
    assert kills >= 2, "the drill never interrupted a rebuild; widen its window"


@contextlib.contextmanager
def own_server(durable: bool = False) -> Iterator[Any]:
    """A PostgreSQL server of the drill's own (it crashes it); skipped where none can start,
    outside CI."""
    from pgserver import Server
    try:
        server = Server(durable=durable)
    except Exception as e:  # noqa: BLE001
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no PostgreSQL server could be started here: {e}")
    try:
        yield server
    finally:
        server.stop()


def test_the_server_going_away_after_the_append_says_what_was_kept(reference, tmp_path):
    """PostgreSQL: the server stops while `csat ingest` brings the scores up to date, after its
    append committed: one line says the events were appended and committed and the read models
    are not current yet; the next read brings them up to date. The moment is exact: the ingest
    stops at its test seam once the commit has returned (``$CSAT_TEST_PAUSE_AFTER_COMMIT``;
    watching for the rows raced the commit's acknowledgement, and the line was decided by which
    statement met the lost server first)."""
    path, expected, ref, _ = reference
    total = log_size(ref)
    with own_server(durable=True) as server:  # a commit survives the crash, as on a production server
        db = server.database()
        go = tmp_path / "go"
        p = subprocess.Popen([*CSAT, "--db", db, "ingest", str(path)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env={**ENV, "CSAT_TEST_PAUSE_AFTER_COMMIT": str(go)})
        deadline = time.monotonic() + 120
        while not Path(f"{go}.reached").exists():
            assert p.poll() is None and time.monotonic() < deadline, "the append never committed"
            time.sleep(0.01)
        server.crash()
        go.touch()
        code, out, err = finish([p])[0]
        *notes, line = err.strip().splitlines()
        assert code == 1 and all(n.startswith("recorded implicit adoption") for n in notes), (code, err)
        assert line.startswith(f"csat: {total:,} events appended and committed (log position {total:,}); the read "
                               f"models were not brought up to date (lost the PostgreSQL store {db} (") and line.endswith(
            "): the next command does it"), err
        server.start()
        assert log_size(db) == total
        assert scores(db) == expected  # the next read caught up


def test_the_server_going_away_mid_ingest_writes_nothing(reference):
    """PostgreSQL: the server stops at once (a crash, a failover) while an ingest holds the write
    lock. The ingest fails in one line; the log holds all of it or none (the server rolled the
    open transaction back); after a restart, the rerun completes it."""
    import psycopg
    path, expected, ref, _ = reference
    total = log_size(ref)
    with own_server() as server:  # its own server: this drill crashes it
        db = server.database()
        p = start(db, "ingest", str(path))
        with psycopg.connect(server.url(), autocommit=True) as watcher:
            deadline = time.monotonic() + 60
            while not watcher.execute("SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted").fetchone():
                assert p.poll() is None and time.monotonic() < deadline, "the ingest never took the write lock"
                time.sleep(0.01)
        time.sleep(0.2)
        server.crash()
        code, out, err = finish([p])[0]
        assert code == 1 and len(err.strip().splitlines()) == 1, (code, err)
        assert "lost the PostgreSQL store" in err, err
        server.start()
        kept = log_size(db) if _has_log(db) else 0  # (a crash as the store was made: no log yet)
        assert kept in (0, total)
        if kept:  # the crash came after the append committed: the line says what was kept
            assert f"{total:,} events appended and committed (log position {total:,}); the read models were not " \
                   "brought up to date" in err, err
        else:
            assert "nothing appended (the server rolled the transaction back): run it again" in err \
                or "nothing of this command's unfinished work was written: run it again" in err, err
        code, out, err = run(db, "ingest", str(path))
        assert code == 0, err
        assert log_size(db) == total
        assert scores(db) == expected
        assert verified(db) == total


def test_a_reader_never_waits_for_a_writer(db, tmp_path):
    """Another process holds the write lock (an ingest, a catch-up): a read answers at once from
    the read models last committed, and says how many logged events they do not reflect yet
    (issue 20.20); once the lock is free, the next read catches up."""
    from csat.engine import Engine
    from conftest import EXAMPLES
    with Engine.open(db) as first:
        first.ingest([EXAMPLES / "iso-100.jsonl"])
        published = first.scores()
    more = [{"type": "response", "id": f"late-{i}", "ruleset": "iso-100", "period": "2026-11", "subject": "company",
             "rater": f"late-{i}", "answers": {"quality": 10, "delivery": 10, "service": 8, "after_sales": 10,
                                               "price": 8}} for i in range(3)]
    with Engine.open(db) as writer, Engine.open(db) as holder, Engine.open(db) as reader:
        writer.append(more)  # logged, not yet scored
        assert holder.store.try_begin_write()  # another process's ingest holds the lock
        try:
            t0 = time.monotonic()
            rows = reader.scores()
            waited = time.monotonic() - t0
            assert waited < 2 and rows == published and rows.unscored == (3, 0)
            assert any(w.startswith("3 logged events are not scored yet: another process holds the write lock")
                       for w in reader.warnings())
            assert reader.explain("iso-100", "company", "2026-11")["responses"] == published[0]["responses"]
        finally:
            holder.store.rollback()
        rows = reader.scores()
        assert rows.unscored == (0, 0) and rows != published and not reader.warnings()
    code, out, err = run(db, "scores", "--format", "json")
    assert code == 0 and err == ""


def test_a_reader_leaves_the_catch_up_to_the_ingest_that_said_it_makes_it(db, tmp_path):
    """`csat ingest` says, in its append's transaction, that it catches up right after: a reader in
    another process meanwhile answers at once instead of doing the ingest's work (issue 20.20)."""
    from csat.engine import Engine
    from conftest import EXAMPLES
    with Engine.open(db) as writer, Engine.open(db) as reader:
        writer.ingest([EXAMPLES / "iso-100.jsonl"], catching_up=True)  # appended; catching up next
        rows = reader.scores()
        assert rows == [] and rows.unscored[0] == 5  # not its work: answered at once, and said so
        writer.catch_up()
        writer.caught_up_done()
        rows = reader.scores()
        assert rows and rows.unscored == (0, 0)
        writer.ingest([EXAMPLES / "plant-50.jsonl"], catching_up=True)
        writer.caught_up_done()  # the writer gave up (a lost server): readers catch up themselves
        assert reader.scores(ruleset="plant-50") and reader.unscored == (0, 0)
    # a writer killed between its append and its catch-up: its word dies with it
    killed = subprocess.run([sys.executable, "-c", (
        "import os, sys; from csat.engine import Engine; e = Engine.open(sys.argv[1]); "
        "e.ingest([sys.argv[2]], catching_up=True); os._exit(0)"), db, str(EXAMPLES / "airline-1000.jsonl")],
        env=ENV, capture_output=True, text=True)
    assert killed.returncode == 0, killed.stderr
    with Engine.open(db) as reader:
        deadline = time.monotonic() + 10  # the server notices the closed connection within moments
        while not reader.scores(ruleset="airline-1000") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert reader.scores(ruleset="airline-1000") and reader.unscored == (0, 0)
