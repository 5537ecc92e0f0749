"""csat benchmark suite: the engine measured against the raw SQLite floor, in one run.

    .venv/bin/python bench/bench.py                          # 100,000 events, 3 runs
    .venv/bin/python bench/bench.py --sizes 100000,1000000   # both sizes, and the linearity check
    .venv/bin/python bench/bench.py --runs 1 --trials 200    # quicker

Data: a synthetic mix over every built-in rule set (bench/synth.py: airline
questionnaires, dealership callbacks with teams and moves, plant forms, ISO
surveys, suppliers with complaints and rectifications).

Figures (medians over --runs):
  floor-insert   plain sqlite3 executemany of the same pre-encoded events into a table shaped like
                 the event store's, one transaction, WAL
  floor-read     plain SELECT of those rows in order + msgspec decode into Structs
  ingest         `csat ingest` of the JSONL file (validated, appended), events/s, peak RSS
  rebuild        `csat rebuild` of every projection (rule-set months scored by --jobs = the machine's
                 cores), events/s, peak RSS of the main process; and `--jobs 1` (one process), run
                 by run after it
  whatif         `csat whatif` of every rule set over the whole store (its months scored by --jobs =
                 the machine's cores), total seconds
  incremental    append one response and read its updated score: p50 / p99 over --trials
  explain        `Engine.explain` of a subject-month with 10,000 responses: the first (computed and
                 stored), a later one (read back; target < 50 ms), and the CLI command (JSON)
  verify         `Engine.verify`: the whole hash chain recomputed and every row decoded, in process
                 like floor-read (target: ≥ 0.5× floor-read)
`--only append,verify` measures a subset (ingest always runs: it makes the store);
`--data airline` uses airline questionnaires only instead of the mix.
  append         the append alone (`Engine.ingest` in a child, no catch-up), events/s
                 (target: ≥ 0.4× floor-insert)
  sealing        the same append with personal fields left unsealed, interleaved run by run; the
                 append's throughput lost to sealing them (target: < 15 %)
Results print as a table and go to bench/results/<timestamp>.json.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import synth  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "CSAT_NO_ENTRY_POINTS": "1"}
WHATIF = {  # one changed parameter per rule set
    "airline-1000": "[grades.B]\npoints = 750\nlabel = \"良好\"\n",
    "plant-50": "[bonus]\npoints = 2\n",
    "iso-100": "[[grades]]\nid = \"A\"\nlabel = \"甲\"\nmin = 92\n[[grades]]\nid = \"D\"\nlabel = \"丁\"\nmin = 0\n",
    "dealership-cs": "[levels.basic]\npoints = 70\n",
    "supplier-400": "[delivery]\nper_late_delivery = 20\n",
}


def csat_command() -> list[str]:
    exe = Path(sys.executable).parent / "csat"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "csat.cli.main"]


GNU_TIME = "/usr/bin/time"


def run_child(cmd: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MiB) and stdout of one child process.

    A child forked from this (large) process starts with this process's pages counted in its
    peak RSS; GNU time, when present, forks the measured process from a small one instead."""
    rss_file = None
    if os.path.exists(GNU_TIME):
        rss_file = tempfile.NamedTemporaryFile(delete=False)
        rss_file.close()
        cmd = [GNU_TIME, "-o", rss_file.name, "-f", "%M", *cmd]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=ENV)
        _, status, usage = os.wait4(proc.pid, 0)
        dt = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode:
            raise SystemExit(f"{' '.join(cmd)} failed: {err.read().decode()[-800:]}")
        rss = usage.ru_maxrss / 1024
        if rss_file is not None:
            rss = int(Path(rss_file.name).read_text().split()[-1]) / 1024
            os.unlink(rss_file.name)
        return dt, rss, out.read().decode()


def remove_db(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.with_suffix(".keys").unlink(missing_ok=True)  # its key store too


def encoded_rows(data: Path) -> list[tuple[str, int, str, bytes]]:
    """The events of the file as the store holds them (originator id, version, topic, state)."""
    from csat.engine.events import decode_line, natural_key, tag_of
    from csat.engine.log.store import Recorded, _STATE_ENCODER
    rows = []
    at = "2026-11-23T00:00:00.000000Z"
    with open(data, "rb") as f:
        for line in f:
            ev = decode_line(line)
            rows.append((natural_key(ev), 1, tag_of(ev), _STATE_ENCODER.encode(Recorded(at, ev))))
    return rows


def floor_insert(rows: list, path: Path) -> float:
    remove_db(path)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE stored_events (originator_id TEXT, originator_version INTEGER, topic TEXT, "
                 "state BLOB, PRIMARY KEY (originator_id, originator_version))")
    t0 = time.perf_counter()
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO stored_events VALUES (?, ?, ?, ?)", rows)
    conn.execute("COMMIT")
    dt = time.perf_counter() - t0
    conn.close()
    return dt


def floor_read(path: Path) -> float:
    from csat.engine.log.store import _STATE_DECODER
    conn = sqlite3.connect(path)
    t0 = time.perf_counter()
    cur = conn.execute("SELECT rowid, originator_id, state FROM stored_events ORDER BY rowid")
    n = 0
    while batch := cur.fetchmany(5000):
        for _, _, state in batch:
            _STATE_DECODER.decode(state)
            n += 1
    dt = time.perf_counter() - t0
    conn.close()
    return dt


def incremental(db: Path, trials: int) -> tuple[float, float]:
    """p50 and p99 (ms) of appending one airline response and reading its updated score."""
    from csat.engine import Engine
    rnd = random.Random(3)
    with Engine.open(db) as engine:
        engine.catch_up()
        keys = engine.store.conn.execute(
            "SELECT DISTINCT subject, period FROM scores WHERE ruleset = 'airline-1000' AND kind = 'month'").fetchall()
        times = []
        for i in range(trials):
            subject, period = rnd.choice(keys)
            t0 = time.perf_counter()
            engine.append([{"type": "response", "id": f"bench-incr-{i}", "ruleset": "airline-1000", "period": period,
                            "subject": subject, "rater": "bench-unit",
                            "answers": {"professionalism": "A", "efficiency": "B", "quality": "B"}}])
            rows = engine.scores(ruleset="airline-1000", period=period, subject=subject)
            times.append((time.perf_counter() - t0) * 1000)
            assert rows
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.99))]


def explain_10k(work: Path, runs: int) -> tuple[float, float, float]:
    """Explaining one airline subject-month of 10,000 questionnaires: seconds for the first
    explanation (computed with the rule set's trace, then stored), for a later one (read back from
    the stored explanation, median) and for the whole `csat explain --format json` command."""
    from csat.engine import Engine
    db = work / "explain.db"
    remove_db(db)
    data = work / "explain.jsonl"
    with open(data, "w", encoding="utf-8") as f:
        synth.write_jsonl(synth.airline(10_000, departments=1, raters=100, managers=100), f)
    with Engine.open(db) as engine:
        engine.ingest([data])
        engine.catch_up()
        (row,) = engine.scores(ruleset="airline-1000", period="2024-01", subject="dept-00")
        assert row["responses"] >= 9_000
        t0 = time.perf_counter()
        first = engine.explain("airline-1000", "dept-00", "2024-01")
        first_s = time.perf_counter() - t0
        times = []
        for _ in range(max(3, runs)):
            t0 = time.perf_counter()
            assert engine.explain("airline-1000", "dept-00", "2024-01") == first
            times.append(time.perf_counter() - t0)
    cli = []
    for _ in range(max(3, runs)):
        t0 = time.perf_counter()
        subprocess.run([*csat_command(), "--db", str(db), "explain", "-r", "airline-1000", "-s", "dept-00",
                        "-p", "2024-01", "--format", "json"], check=True, stdout=subprocess.DEVNULL)
        cli.append(time.perf_counter() - t0)
    return first_s, statistics.median(times), statistics.median(cli)


def verify_time(db: Path, runs: int) -> float:
    """Seconds for one full `verify` of the store, in process (median)."""
    from csat.engine import Engine
    times = []
    with Engine.open(db) as engine:
        for _ in range(runs):
            t0 = time.perf_counter()
            result = engine.verify()
            times.append(time.perf_counter() - t0)
            assert result["intact"], result
    return statistics.median(times)


APPEND = """
import sys
from csat.engine import Engine
with Engine.open(sys.argv[1]) as engine:   # the append alone: validated and chained, no catch-up
    engine.ingest([sys.argv[2]])
"""
#: the same append with personal fields left unsealed (what csat did before it sealed them)
APPEND_UNSEALED = """
import sys
from csat.engine import Engine
from csat.engine.app.privacy import IngestPrivacy
IngestPrivacy.seal = lambda self, ev, target=None, person_unit=False: ev
with Engine.open(sys.argv[1]) as engine:
    engine.ingest([sys.argv[2]])
"""


def measure(size: int, runs: int, trials: int, work: Path, only: set[str] | None = None,
            data_kind: str = "mixed") -> dict:
    def wanted(figure: str) -> bool:
        return only is None or figure in only

    data = work / f"{data_kind}-{size}.jsonl"
    with open(data, "w", encoding="utf-8") as f:
        events = synth.write_jsonl(synth.mixed(size) if data_kind == "mixed" else synth.airline(size), f)
    floors = subprocess.run([sys.executable, __file__, "--floors", str(data), "--runs", str(runs), "--keep", str(work)],
                            capture_output=True, text=True, env=ENV, check=True)
    fi, fr = map(float, floors.stdout.split())
    csat = csat_command()
    ing, ing_rss, reb, reb_rss, app, unsealed, reb1 = [], [], [], [], [], [], []
    db = work / "csat.db"
    for _ in range(runs):
        if wanted("append"):
            remove_db(db)
            app.append(run_child([sys.executable, "-c", APPEND, str(db), str(data)])[0])
            remove_db(db)  # interleaved with the sealed append: the machine's drift hits both alike
            unsealed.append(run_child([sys.executable, "-c", APPEND_UNSEALED, str(db), str(data)])[0])
        remove_db(db)
        dt, rss, _ = run_child([*csat, "--db", str(db), "ingest", str(data)])
        ing.append(dt)
        ing_rss.append(rss)
        if wanted("rebuild"):
            dt, rss, _ = run_child([*csat, "--db", str(db), "rebuild"])
            reb.append(dt)
            reb_rss.append(rss)
            reb1.append(run_child([*csat, "--db", str(db), "rebuild", "--jobs", "1"])[0])  # interleaved
    logged = sqlite3.connect(db).execute("SELECT MAX(rowid) FROM stored_events").fetchone()[0]
    out = {
        "size": size, "events": events, "logged": logged, "runs": runs,
        "floor_insert_eps": round(events / fi), "floor_read_eps": round(events / fr),
        "ingest_eps": round(events / statistics.median(ing)), "ingest_s": round(statistics.median(ing), 2),
        "ingest_peak_rss_mib": round(max(ing_rss), 1),
    }
    out["ingest_vs_floor_insert"] = round(out["ingest_eps"] / out["floor_insert_eps"], 3)
    if app:
        out["append_eps"] = round(events / statistics.median(app))
        out["append_vs_floor_insert"] = round(out["append_eps"] / out["floor_insert_eps"], 3)
        out["append_unsealed_eps"] = round(events / statistics.median(unsealed))
        out["sealing_cost_pct"] = round(100 * (1 - out["append_eps"] / out["append_unsealed_eps"]), 1)
    if wanted("rebuild"):
        out["rebuild_eps"] = round(logged / statistics.median(reb))
        out["rebuild_s"] = round(statistics.median(reb), 2)
        out["rebuild_peak_rss_mib"] = round(max(reb_rss), 1)
        out["rebuild_1_process_s"] = round(statistics.median(reb1), 2)
        out["rebuild_vs_floor_read"] = round(out["rebuild_eps"] / out["floor_read_eps"], 3)
    if wanted("verify"):
        vt = verify_time(db, runs)
        out["verify_eps"] = round(logged / vt)
        out["verify_vs_floor_read"] = round(out["verify_eps"] / out["floor_read_eps"], 3)
    if wanted("whatif"):
        whatif_s = 0.0
        for ruleset, toml in WHATIF.items():
            p = work / f"{ruleset}.toml"
            p.write_text(toml, encoding="utf-8")
            whatif_s += run_child([*csat, "--db", str(db), "whatif", "-r", ruleset, "--params", str(p)])[0]
        out["whatif_all_rulesets_s"] = round(whatif_s, 2)
        out["whatif_eps"] = round(logged / whatif_s)
    if wanted("incremental"):
        p50, p99 = incremental(db, trials)
        out["incremental_p50_ms"], out["incremental_p99_ms"] = round(p50, 2), round(p99, 2)
    if wanted("explain"):
        first, stored, cli = explain_10k(work, runs)
        out["explain_10k_first_ms"] = round(first * 1000, 1)
        out["explain_10k_ms"] = round(stored * 1000, 1)
        out["explain_10k_cli_ms"] = round(cli * 1000, 1)
    return out


TARGETS = {
    "ingest_vs_floor_insert": (">=", 0.4), "rebuild_vs_floor_read": (">=", 0.3), "incremental_p99_ms": ("<", 20),
    "explain_10k_ms": ("<", 50), "ingest_peak_rss_mib": ("<", 300), "rebuild_peak_rss_mib": ("<", 300),
    "verify_vs_floor_read": (">=", 0.5), "append_vs_floor_insert": (">=", 0.4),
    "sealing_cost_pct": ("<", 15),
}


def report(results: list[dict]) -> str:
    keys = [k for k in results[0] if k not in ("size",)]
    lines = [f"{'figure':<26}" + "".join(f"{r['size']:>14,}" for r in results) + "   target"]
    for k in keys:
        target = TARGETS.get(k)
        cells = "".join(f"{r[k]:>14,}" if isinstance(r[k], (int, float)) else f"{r[k]:>14}" for r in results)
        mark = ""
        if target:
            op, bound = target
            ok = all((r[k] >= bound) if op == ">=" else (r[k] < bound) for r in results)
            mark = f"   {op} {bound} {'met' if ok else 'NOT MET'}"
        lines.append(f"{k:<26}{cells}{mark}")
    if len(results) == 2:
        small, big = results
        for k in [k for k in ("ingest_s", "rebuild_s") if k in small]:
            factor = big[k] / small[k] if small[k] else 0
            scale = big["size"] / small["size"]
            lines.append(f"{'linear ' + k:<26}{factor:>14.2f}× for {scale:.0f}× the events   "
                         f"≤ {1.1 * scale:.0f}× {'met' if factor <= 1.1 * scale else 'NOT MET'}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100000", help="comma-separated event counts (default 100000)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--trials", type=int, default=1000, help="incremental trials")
    ap.add_argument("--keep", help="work folder to keep")
    ap.add_argument("--only", help="comma-separated figures: append, rebuild, verify, whatif, incremental, explain")
    ap.add_argument("--data", choices=("mixed", "airline"), default="mixed",
                    help="every built-in rule set (default), or airline questionnaires only")
    ap.add_argument("--floors", help=argparse.SUPPRESS)  # internal: measure the floors of a file in a child
    args = ap.parse_args()
    if args.floors:
        rows = encoded_rows(Path(args.floors))
        floor_db = Path(args.keep) / "floor.db"
        fi = statistics.median(floor_insert(rows, floor_db) for _ in range(args.runs))
        fr = statistics.median(floor_read(floor_db) for _ in range(args.runs))
        print(fi, fr)
        return
    work = Path(args.keep or tempfile.mkdtemp(prefix="csat-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    results = []
    for size in (int(s) for s in args.sizes.split(",")):
        print(f"measuring {size:,} events ...", file=sys.stderr, flush=True)
        results.append(measure(size, args.runs, args.trials, work,
                               set(args.only.split(",")) if args.only else None, args.data))
    text = report(results)
    print(text)
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (out_dir / f"{stamp}.json").write_text(json.dumps({"when": stamp, "python": sys.version.split()[0],
                                                       "data": args.data, "results": results}, indent=1))
    if not args.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
