"""Benchmark: ingest and rebuild of synthetic airline-1000 responses through the real `csat` CLI.

    .venv/bin/python bench/bench.py                     # 100,000 responses
    .venv/bin/python bench/bench.py --responses 1000000

Each phase runs as its own `csat` process (so its peak RSS is its own);
figures are the median of --runs runs. Results print as a table and are
written to bench/results/<timestamp>.json.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import synth  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def csat_command() -> list[str]:
    exe = shutil.which("csat", path=str(Path(sys.executable).parent)) or shutil.which("csat")
    return [exe] if exe else [sys.executable, "-m", "csat.cli.main"]


def run_child(cmd: list[str]) -> tuple[float, float, str]:
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "CSAT_NO_ENTRY_POINTS": "1"})
    _, status, usage = os.wait4(proc.pid, 0)
    dt = time.perf_counter() - t0
    out = proc.stdout.read().decode()
    err = proc.stderr.read().decode()
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"{' '.join(cmd)} failed: {err[-500:]}")
    return dt, usage.ru_maxrss / 1024, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--responses", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--keep", help="keep the work folder here")
    args = ap.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="csat-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    data = work / "airline.jsonl"
    with open(data, "w", encoding="utf-8") as f:
        events = synth.write_jsonl(synth.airline(args.responses), f)
    csat = csat_command()
    results: dict[str, list[float]] = {"ingest_s": [], "ingest_rss_mib": [], "rebuild_s": [], "rebuild_rss_mib": []}
    for i in range(args.runs):
        db = work / f"run{i}.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        dt, rss, out = run_child([*csat, "--db", str(db), "ingest", str(data)])
        results["ingest_s"].append(dt)
        results["ingest_rss_mib"].append(rss)
        dt, rss, out = run_child([*csat, "--db", str(db), "rebuild"])
        results["rebuild_s"].append(dt)
        results["rebuild_rss_mib"].append(rss)
        logged = int(subprocess.run([sys.executable, "-c", "import sqlite3,sys; print(sqlite3.connect(sys.argv[1])"
                                     ".execute('select max(rowid) from stored_events').fetchone()[0])", str(db)],
                                    capture_output=True, text=True).stdout)
    med = {k: statistics.median(v) for k, v in results.items()}
    summary = {
        "responses": args.responses, "events_in_file": events, "events_in_log": logged, "runs": args.runs,
        "ingest_events_per_s": round(events / med["ingest_s"]), "ingest_s": round(med["ingest_s"], 2),
        "ingest_peak_rss_mib": round(med["ingest_rss_mib"], 1),
        "rebuild_events_per_s": round(logged / med["rebuild_s"]), "rebuild_s": round(med["rebuild_s"], 2),
        "rebuild_peak_rss_mib": round(med["rebuild_rss_mib"], 1),
        "python": sys.version.split()[0], "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    width = max(map(len, summary))
    for k, v in summary.items():
        print(f"{k:<{width}}  {v:>12,}" if isinstance(v, (int, float)) else f"{k:<{width}}  {v:>12}")
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / f"{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(json.dumps(summary, indent=1))
    if not args.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
