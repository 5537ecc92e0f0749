"""A FastAPI service embedding the engine, under 50 clients at once (docs/api.md, "Embedding in a
web service").

    .venv/bin/python bench/bench_embed.py                       # 50 clients, SQLite, pool and shared
    .venv/bin/python bench/bench_embed.py --db postgresql://…   # the same on a PostgreSQL store
    .venv/bin/python bench/bench_embed.py --clients 20 --json   # smaller; one JSON line

The service is the documented pattern: `def` endpoints (FastAPI runs them on its thread pool) on
an ``EnginePool`` (``--mode pool``, each request an engine of its own) or on one ``Engine`` shared by
every thread (``--mode shared``: its calls take turns). It runs under uvicorn in a process of its
own on a free port. A store of a year of plant-50 responses (12 months × 8 departments × 20
workshops) is made first. Then every client at once (asyncio + httpx) makes ``--requests``
requests: four in five read a month's scores (``GET /scores/plant-50/2026-MM``), one in five
appends a response (``POST /events``). Checked: no 5xx, every appended response scored, the chain
intact. Figures: requests per second, p50 / p99 of reads and of appends in milliseconds.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from collections.abc import Iterator
from typing import Any

DEPTS = [f"dept-{i}" for i in range(8)]
ANSWERS = {"attitude": "满意", "response": "满意", "solution": "满意"}


def app(db: str, mode: str) -> Any:
    """The service (as docs/embedding/web-service.md writes it)."""
    from fastapi import FastAPI, HTTPException
    from fastapi.responses import Response

    from csat.engine import CsatError, Engine, EnginePool, IngestFailed, to_json

    service = FastAPI()
    if mode == "pool":
        pool = EnginePool(db, size=8)
        engine = pool.borrow  # borrowed in the endpoint: a yield dependency can deadlock (docs)
    else:
        shared = Engine.open(db)

        @contextlib.contextmanager
        def engine() -> Iterator[Engine]:
            yield shared

    @service.get("/scores/{ruleset}/{period}")
    def scores(ruleset: str, period: str) -> Response:
        try:
            with engine() as e:
                return Response(to_json(e.scores(ruleset=ruleset, period=period)), media_type="application/json")
        except CsatError as e:
            raise HTTPException(400, str(e)) from None

    @service.post("/events")
    def append(events: list[dict]) -> Response:
        try:
            with engine() as e:
                report = e.append(events)
        except IngestFailed as e:
            return Response(to_json({"problems": e.problems}), 422, media_type="application/json")
        return Response(to_json({"appended": report.appended}), media_type="application/json")

    return service


def prepare(db: str) -> None:
    from csat.engine import Engine
    events: list[dict[str, Any]] = [{"type": "unit", "id": d, "kind": "department"} for d in DEPTS]
    for m in range(1, 13):
        for d in DEPTS:
            for w in range(20):
                events.append({"type": "response", "id": f"r-{m}-{d}-{w}", "ruleset": "plant-50",
                               "period": f"2026-{m:02d}", "subject": d, "rater": f"ws-{w}", "answers": ANSWERS})
    with Engine.open(db) as e:
        e.append(events)


def serve(db: str, mode: str) -> tuple[subprocess.Popen, str]:
    from bench_web import free_port, wait_up
    port = free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--serve", mode, "--db", db, "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    wait_up(proc, f"{base}/scores/plant-50/2026-01")
    return proc, base


async def load(base: str, clients: int, requests: int, writes_share: float = 0.2) -> dict[str, Any]:
    import httpx
    reads: list[float] = []
    writes: list[float] = []
    errors: list[str] = []
    appended: list[str] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as client:
        async def one(c: int) -> None:
            rnd = random.Random(c)
            for i in range(requests):
                t0 = time.perf_counter()
                if rnd.random() < writes_share:
                    rid = f"load-{c}-{i}"
                    r = await client.post("/events", json=[{
                        "type": "response", "id": rid, "ruleset": "plant-50", "period": "2026-12",
                        "subject": rnd.choice(DEPTS), "rater": f"client-{c}-{i}", "answers": ANSWERS}])
                    writes.append(time.perf_counter() - t0)
                    if r.status_code == 200:
                        appended.append(rid)
                else:
                    r = await client.get(f"/scores/plant-50/2026-{rnd.randint(1, 12):02d}")
                    reads.append(time.perf_counter() - t0)
                if r.status_code >= 400:
                    errors.append(f"{r.status_code} {r.text[:100]}")

        t0 = time.perf_counter()
        await asyncio.gather(*(one(c) for c in range(clients)))
        elapsed = time.perf_counter() - t0

    def pct(xs: list[float], p: float) -> float:
        xs = sorted(xs)
        return round(1000 * xs[min(len(xs) - 1, int(p * len(xs)))], 1) if xs else 0.0

    return {"requests": len(reads) + len(writes), "seconds": round(elapsed, 2),
            "per_second": round((len(reads) + len(writes)) / elapsed, 1),
            "read_p50_ms": pct(reads, 0.5), "read_p99_ms": pct(reads, 0.99),
            "append_p50_ms": pct(writes, 0.5), "append_p99_ms": pct(writes, 0.99),
            "errors": errors[:5], "error_count": len(errors), "appended": len(appended)}


def check(db: str, appended: int) -> dict[str, Any]:
    from csat.engine import Engine
    with Engine.open(db) as e:
        rows = e.scores(ruleset="plant-50", period="2026-12")
        metric = rows[0]["metric"]
        counted = sum(r["responses"] for r in rows if r["metric"] == metric)
        return {"intact": e.verify()["intact"], "scored": counted - 20 * len(DEPTS) == appended}


def main() -> None:
    from bench_web import stop
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", help="a PostgreSQL URL (default: a SQLite file in a temporary folder)")
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--requests", type=int, default=40, help="requests per client")
    ap.add_argument("--writes", type=float, default=0.2, help="the share of requests that append (default 0.2)")
    ap.add_argument("--mode", choices=("pool", "shared", "both"), default="both")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--serve", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        import uvicorn
        uvicorn.run(app(args.db, args.serve), host="127.0.0.1", port=args.port, log_level="warning")
        return
    out = []
    for mode in (("pool", "shared") if args.mode == "both" else (args.mode,)):
        with tempfile.TemporaryDirectory() as folder:
            db = args.db or str(Path(folder) / "csat.db")
            if args.db and mode != "pool":  # a PostgreSQL store is used once: the second mode needs its own
                raise SystemExit("with --db, give --mode pool or --mode shared")
            prepare(db)
            proc, base = serve(db, mode)
            try:
                result = asyncio.run(load(base, args.clients, args.requests, args.writes))
            finally:
                stop(proc)
            result.update(check(db, result["appended"]), mode=mode, clients=args.clients,
                          backend="postgresql" if db.startswith("postgresql://") else "sqlite")
            out.append(result)
            if not args.json:
                print(f"{mode:6s} {result['backend']}: {result['requests']} requests from {args.clients} clients in "
                      f"{result['seconds']} s = {result['per_second']}/s · read p50 {result['read_p50_ms']} / p99 "
                      f"{result['read_p99_ms']} ms · append p50 {result['append_p50_ms']} / p99 "
                      f"{result['append_p99_ms']} ms · errors {result['error_count']} · chain "
                      f"{'intact' if result['intact'] else 'BROKEN'} · every append scored: {result['scored']}")
    if args.json:
        print(json.dumps(out))


if __name__ == "__main__":
    os.environ.setdefault("CSAT_NO_ENTRY_POINTS", "1")
    main()
