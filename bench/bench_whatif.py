"""What-if at interactive speed (issue 25): the preview the quality office's web page waits for.

    .venv/bin/python bench/bench_whatif.py                 # a year of 60,000 airline responses, 3 runs
    .venv/bin/python bench/bench_whatif.py --responses 20000 --runs 1 --json

A store holds a year of one rule set's questionnaires (airline-1000: 40 departments × 25 rating
units × 5 managers a month, corrections and withdrawals) beside nothing else. Measured, in
process, as the web front calls it: ``Engine.whatif`` of a revision of the grade points adopted
from the first month (every month and roll-up rescored): the first call in the process apart,
then the median of ``--runs`` more (the web front's process is long-lived); and the rebuild of the
same store for scale. Target: under 1 s for the what-if on this 2-core machine.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("CSAT_NO_ENTRY_POINTS", "1")
import synth  # noqa: E402

REVISION = {"grades": {"A": {"points": 1000}, "B": {"points": 850}, "C": {"points": 700}, "D": {"points": 500},
                       "E": {"points": 0}}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--responses", type=int, default=60_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    from csat.engine import Engine

    work = Path(tempfile.mkdtemp(prefix="csat-whatif-bench-"))
    db = str(work / "csat.db")
    events = list(synth.airline(args.responses, raters=25, managers=5))
    with Engine.open(db) as e:
        e.append(events)
        e.catch_up()  # the scores current first, as a running site's are
    responses = [ev["period"] for ev in events if ev["type"] == "response"]
    first, months, count = min(responses), len(set(responses)), len(responses)
    del events, responses  # (half a million objects kept alive would tax every garbage collection)
    with Engine.open(db) as e:  # the store as a site opens it (the ingest's write-ahead log checkpointed)
        times, changed = [], 0
        for _ in range(args.runs + 1):  # the first in a fresh process apart: a running site is warm
            t = time.perf_counter()
            changed = len(e.whatif("airline-1000", REVISION, from_=first))
            times.append(time.perf_counter() - t)
        cold, times = times[0], times[1:]
        t = time.perf_counter()
        e.rebuild()
        rebuild = time.perf_counter() - t
    out = {"responses": count, "months": months, "whatif_first_s": round(cold, 3),
           "whatif_s": round(statistics.median(times), 3), "rows_changed": changed, "rebuild_s": round(rebuild, 3),
           "whatif_over_rebuild": round(statistics.median(times) / rebuild, 2)}
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k:<22}{v:>10}" + (" (target < 1 s)" if k == "whatif_s" else ""))


if __name__ == "__main__":
    main()
