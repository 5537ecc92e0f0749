"""csat on PostgreSQL measured against the raw PostgreSQL floors, in one run on one server.

    .venv/bin/python bench/bench_postgres.py                          # 100,000 events, 3 runs
    .venv/bin/python bench/bench_postgres.py --sizes 100000,1000000 --runs 1
    .venv/bin/python bench/bench_postgres.py --url postgresql://me@host/db   # a server of your own
                                                                      # (its tables are dropped!)

Without --url a server is started for the run (tests/pgserver.py: Debian's
server binaries, a temporary folder, a Unix socket; fsync off as in the tests
— so the figures measure csat's work and the server's, not the disk's).

Figures (medians over --runs), each database made afresh:
  floor-copy     psycopg COPY of the pre-encoded events into a table shaped like eventsourcing's
                 stored_events (bigserial notification id, primary key), one transaction
  floor-unnest   the same rows as one INSERT … SELECT FROM unnest(arrays) per 1,000 rows
  floor-read     SELECT of those rows in order (server-side cursor) + msgspec decode into Structs
  append         `Engine.ingest` alone (validated, appended, chained; no catch-up), events/s
                 (target: ≥ 0.4× floor-copy)
  ingest         `csat ingest` until the scores are current, events/s, peak RSS
  rebuild        `csat rebuild`, events/s (target: ≥ 0.3× floor-read), peak RSS
Results print as a table and go to bench/results/pg-<timestamp>.json.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
import synth  # noqa: E402
from bench import APPEND, csat_command, encoded_rows, run_child  # noqa: E402

TABLE = ("CREATE TABLE stored_events (originator_id text NOT NULL, originator_version bigint NOT NULL, "
         "topic text NOT NULL, state bytea, notification_id bigserial, "
         "PRIMARY KEY (originator_id, originator_version))")


class Databases:
    """Fresh databases on a server: one started here, or the one at ``url``."""

    def __init__(self, url: str | None):
        self.server = None
        self.url = url
        if url is None:
            from pgserver import Server
            self.server = Server()

    def fresh(self) -> str:
        if self.server is not None:
            return self.server.database()
        import psycopg
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute("DROP SCHEMA public CASCADE")
            conn.execute("CREATE SCHEMA public")
        return self.url

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


def floor_copy(rows: list, url: str) -> float:
    import psycopg
    with psycopg.connect(url) as conn:
        conn.execute(TABLE)
        conn.commit()
        t0 = time.perf_counter()
        with conn.cursor() as cur, cur.copy("COPY stored_events (originator_id, originator_version, topic, state) "
                                             "FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        conn.commit()
        return time.perf_counter() - t0


def floor_unnest(rows: list, url: str) -> float:
    import psycopg
    with psycopg.connect(url) as conn:
        conn.execute(TABLE)
        conn.commit()
        t0 = time.perf_counter()
        with conn.cursor() as cur:
            for i in range(0, len(rows), 1000):
                cols = [list(c) for c in zip(*rows[i:i + 1000])]
                cur.execute("INSERT INTO stored_events (originator_id, originator_version, topic, state) "
                            "SELECT * FROM unnest(%b::text[], %b::bigint[], %b::text[], %b::bytea[])", cols)
        conn.commit()
        return time.perf_counter() - t0


def floor_read(url: str) -> float:
    import psycopg
    from csat.engine.log.store import _STATE_DECODER
    with psycopg.connect(url) as conn:
        t0 = time.perf_counter()
        with conn.cursor(name="floor") as cur:
            cur.itersize = 5000
            cur.execute("SELECT notification_id, originator_id, state FROM stored_events ORDER BY notification_id")
            for _, _, state in cur:
                _STATE_DECODER.decode(state)
        conn.commit()
        return time.perf_counter() - t0


def measure(size: int, runs: int, dbs: Databases, work: Path, data_kind: str) -> dict:
    data = work / f"{data_kind}-{size}.jsonl"
    with open(data, "w", encoding="utf-8") as f:
        events = synth.write_jsonl(synth.mixed(size) if data_kind == "mixed" else synth.airline(size), f)
    rows = encoded_rows(data)
    fc, fu, fr = [], [], []
    for _ in range(runs):
        fc.append(floor_copy(rows, url := dbs.fresh()))
        fr.append(floor_read(url))
        fu.append(floor_unnest(rows, dbs.fresh()))
    del rows
    csat = csat_command()
    app, ing, ing_rss, reb, reb_rss = [], [], [], [], []
    for _ in range(runs):
        app.append(run_child([sys.executable, "-c", APPEND, dbs.fresh(), str(data)])[0])
        url = dbs.fresh()
        dt, rss, _ = run_child([*csat, "--db", url, "ingest", str(data)])
        ing.append(dt)
        ing_rss.append(rss)
        dt, rss, _ = run_child([*csat, "--db", url, "rebuild"])
        reb.append(dt)
        reb_rss.append(rss)
    eps = lambda seconds: round(events / statistics.median(seconds))  # noqa: E731
    out = {"size": size, "events": events, "runs": runs,
           "floor_copy_eps": eps(fc), "floor_unnest_eps": eps(fu), "floor_read_eps": eps(fr),
           "append_eps": eps(app), "ingest_eps": eps(ing), "ingest_s": round(statistics.median(ing), 2),
           "ingest_peak_rss_mib": round(max(ing_rss), 1),
           "rebuild_eps": eps(reb), "rebuild_s": round(statistics.median(reb), 2),
           "rebuild_peak_rss_mib": round(max(reb_rss), 1)}
    out["append_vs_floor_copy"] = round(out["append_eps"] / out["floor_copy_eps"], 3)
    out["ingest_vs_floor_copy"] = round(out["ingest_eps"] / out["floor_copy_eps"], 3)
    out["rebuild_vs_floor_read"] = round(out["rebuild_eps"] / out["floor_read_eps"], 3)
    return out


TARGETS = {"append_vs_floor_copy": (">=", 0.4), "rebuild_vs_floor_read": (">=", 0.3),
           "ingest_peak_rss_mib": ("<", 300), "rebuild_peak_rss_mib": ("<", 300)}


def report(results: list[dict]) -> str:
    lines = [f"{'figure (PostgreSQL)':<26}" + "".join(f"{r['size']:>14,}" for r in results) + "   target"]
    for k in [k for k in results[0] if k != "size"]:
        cells = "".join(f"{r[k]:>14,}" for r in results)
        mark = ""
        if k in TARGETS:
            op, bound = TARGETS[k]
            ok = all((r[k] >= bound) if op == ">=" else (r[k] < bound) for r in results)
            mark = f"   {op} {bound} {'met' if ok else 'NOT MET'}"
        lines.append(f"{k:<26}{cells}{mark}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100000", help="comma-separated event counts (default 100000)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--url", help="a PostgreSQL database to use (emptied for each measurement!)")
    ap.add_argument("--data", choices=("mixed", "airline"), default="mixed")
    args = ap.parse_args()
    dbs = Databases(args.url)
    results = []
    try:
        with tempfile.TemporaryDirectory(prefix="csat-pg-bench-") as work:
            for size in (int(s) for s in args.sizes.split(",")):
                print(f"measuring {size:,} events on PostgreSQL ...", file=sys.stderr, flush=True)
                results.append(measure(size, args.runs, dbs, Path(work), args.data))
    finally:
        dbs.stop()
    print(report(results))
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (out_dir / f"pg-{stamp}.json").write_text(json.dumps({"when": stamp, "python": sys.version.split()[0],
                                                          "data": args.data, "results": results}, indent=1))


if __name__ == "__main__":
    main()
