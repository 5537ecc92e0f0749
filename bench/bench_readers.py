"""Readers while writers ingest: how long a read takes when other processes hold the write lock.

    .venv/bin/python bench/bench_readers.py                      # SQLite and PostgreSQL (a server started here)
    .venv/bin/python bench/bench_readers.py --backends sqlite --writers 4 --events 50000

A store is seeded with a month of iso-100 surveys. Then ``--writers`` processes each run
``csat ingest`` of ``--events`` new responses at once, while in this process one reader loops
``Engine.scores()`` and, beside it, a second reader loops the ``csat scores`` command. Every read
is timed while any writer is still running. A reader never waits for a writer: it answers from
the read models last committed (and says how many logged events they do not reflect yet).

Targets (issue 20): read p99 < 200 ms in-process, and < start-up + 200 ms from the CLI. Start-up
is the wall time of ``csat rulesets`` measured idle, and — the fair comparison — of a child that
starts as ``csat`` does and opens the store (on PostgreSQL: imports the driver and connects) but
reads nothing, alternating with the ``csat scores`` reads under the same load (2 cores shared with
the writers). Results print as a table and go
to bench/results/readers-<timestamp>.json.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
import synth  # noqa: E402
from bench import csat_command  # noqa: E402

ENV = {**os.environ, "CSAT_NO_ENTRY_POINTS": "1"}


def _pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))] if values else float("nan")


def _files(folder: Path, writers: int, events: int) -> tuple[str, list[str]]:
    seed = folder / "seed.jsonl"
    synth.write_jsonl(synth.iso(2_000, subjects=20, per_month=100, seed=1), seed.open("w", encoding="utf-8"))
    out = []
    for w in range(writers):
        path = folder / f"site-{w}.jsonl"
        rows = ({**e, "id": f"w{w}-{e['id']}"} if e.get("type") == "response" else e
                for e in synth.iso(events, subjects=20, per_month=500, seed=100 + w))
        synth.write_jsonl((e for e in rows if e.get("type") == "response"), path.open("w", encoding="utf-8"))
        out.append(str(path))
    return str(seed), out


#: a child that starts as `csat` does and opens the store (its driver imported, connected), reading
#: nothing: the start-up of any command on that store
OPEN_ONLY = ("import sys; from csat.cli.main import cli; from csat.engine.log.store import Store; "
             "Store(sys.argv[1], create=False).close()")


def startup() -> float:
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        subprocess.run([*csat_command(), "rulesets"], env=ENV, capture_output=True, check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(db: str, seed: str, sites: list[str]) -> dict[str, object]:
    from csat.engine import Engine
    run = [*csat_command(), "--db", db]
    subprocess.run([*run, "ingest", seed], env=ENV, capture_output=True, check=True)
    writers = [subprocess.Popen([*run, "ingest", s], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
               for s in sites]
    busy = lambda: any(w.poll() is None for w in writers)  # noqa: E731
    cli_times: list[float] = []
    loaded_startup: list[float] = []
    behind_seen = [0]

    def cli_reader() -> None:  # `csat scores`, and `csat rulesets` (start-up alone) under the same load
        while busy():
            t0 = time.perf_counter()
            done = subprocess.run([*run, "scores", "--period", "2024-01", "--format", "json"], env=ENV,
                                  capture_output=True, text=True)
            if busy():
                cli_times.append(time.perf_counter() - t0)
            if "not scored yet" in done.stderr:
                behind_seen[0] += 1
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", OPEN_ONLY, db], env=ENV, capture_output=True)
            if busy():
                loaded_startup.append(time.perf_counter() - t0)

    thread = threading.Thread(target=cli_reader)
    thread.start()
    api_times: list[float] = []
    behind: list[int] = []
    with Engine.open(db) as engine:
        while busy():
            t0 = time.perf_counter()
            rows = engine.scores(period="2024-01")
            took = time.perf_counter() - t0
            if busy():
                api_times.append(took)
                behind.append(rows.unscored[0])
            time.sleep(0.01)
    thread.join()
    codes = [w.wait() for w in writers]
    assert codes == [0] * len(writers), [w.stderr.read() for w in writers if w.stderr]  # type: ignore[union-attr]
    return {"api_reads": len(api_times), "api_p50_ms": _pct(api_times, 50) * 1000,
            "api_p99_ms": _pct(api_times, 99) * 1000, "cli_reads": len(cli_times),
            "cli_p50_ms": _pct(cli_times, 50) * 1000, "cli_p99_ms": _pct(cli_times, 99) * 1000,
            "loaded_startup_p50_ms": _pct(loaded_startup, 50) * 1000,
            "loaded_startup_p99_ms": _pct(loaded_startup, 99) * 1000,
            "max_unscored_seen": max(behind, default=0), "cli_reads_saying_behind": behind_seen[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--writers", type=int, default=4)
    ap.add_argument("--events", type=int, default=50_000, help="responses each writer ingests")
    args = ap.parse_args()
    results: dict[str, object] = {"writers": args.writers, "events_each": args.events}
    base = startup()
    results["cli_startup_ms"] = base * 1000
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        seed, sites = _files(folder, args.writers, args.events)
        for backend in args.backends.split(","):
            server = None
            if backend == "sqlite":
                db = str(folder / "readers.db")
            else:
                from pgserver import Server
                server = Server()
                db = server.database()
            try:
                results[backend] = measure(db, seed, sites)
            finally:
                if server is not None:
                    server.stop()
    print(f"{args.writers} writers × {args.events:,} events; CLI start-up {base * 1000:.0f} ms")
    print(f"{'backend':<11} {'reads':>6} {'p50 ms':>8} {'p99 ms':>8} {'CLI reads':>10} {'CLI p50':>8} {'CLI p99':>8}"
          f" {'start-up p50/p99 under load':>28}   targets: p99 < 200; CLI p99 < start-up + 200")
    for backend in args.backends.split(","):
        r = results[backend]
        assert isinstance(r, dict)
        print(f"{backend:<11} {r['api_reads']:>6} {r['api_p50_ms']:>8.1f} {r['api_p99_ms']:>8.1f} {r['cli_reads']:>10} "
              f"{r['cli_p50_ms']:>8.1f} {r['cli_p99_ms']:>8.1f} "
              f"{r['loaded_startup_p50_ms']:>14.1f} / {r['loaded_startup_p99_ms']:.1f}")
    out = HERE / "results" / f"readers-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=1), encoding="utf-8")
    print(f"results: {out}")


if __name__ == "__main__":
    main()
