"""The web front under load: raters submitting at once through `csat serve`'s application.

    .venv/bin/python bench/bench_web.py                       # 200 raters, SQLite
    .venv/bin/python bench/bench_web.py --db postgresql://…   # the same on a PostgreSQL store
    .venv/bin/python bench/bench_web.py --raters 50 --json    # smaller; one JSON line

A round of N raters (workshops) × 2 departments is opened and a link made for each; `csat serve`
runs in a process of its own on a free port (uvicorn, one process). Then all N
raters at once (asyncio + httpx): each opens their questionnaire (a page), submits it (a submit),
and one in ten submits again (a double click). ``--spread S``: the raters arrive
evenly over S seconds instead of at the same instant (200 raters within half a minute is a busy
morning; all at one instant is the worst case). Checked: no 5xx, every response recorded exactly
once (the round's status and the log agree). Figures: p50 / p99 of the page and of the submit,
in milliseconds (targets: p99 < 200 ms for both, on this 2-core machine with 200 raters) — as
the raters' client saw them, and as the application spent them (its ``Server-Timing``: queueing in
the application included, the HTTP parsing and the client's own work not).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def prepare(db: str, raters: int) -> list[str]:
    from csat.engine import Engine
    with Engine.open(db) as e:
        e.append([{"type": "unit", "id": f"ws-{i:03d}", "kind": "workshop"} for i in range(raters)]
                 + [{"type": "unit", "id": f"dept-{i}", "kind": "department", "name": f"部门{i}"} for i in range(2)])
        e.append([{"type": "round", "id": "load", "ruleset": "plant-50", "period": "2026-03", "due": "2099-03-28",
                   "rule": {"raters": "workshop", "subjects": "department"}}])
        return [r["token"] for r in e.round_links("load")]


def free_port() -> int:
    """A port of 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(proc: subprocess.Popen, url: str, seconds: float = 60) -> None:
    """Wait until ``url`` answers 200 (a server process starting); one line, no traceback, when
    ``proc`` ends first or ``seconds`` pass."""
    import httpx
    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            err = proc.stderr.read().decode()[-500:] if proc.stderr and proc.poll() is not None else ""
            raise SystemExit(f"{url}: the server did not start in {seconds:.0f} s {err}".rstrip())
        time.sleep(0.05)


def serve(db: str, workers: int = 1, *args: str, secret: str = "bench", seconds: float = 60,
          stderr: Any = subprocess.PIPE) -> tuple[subprocess.Popen, str]:
    """`csat serve` in a process of its own (the raters' client must not share its interpreter),
    on a free port of 127.0.0.1, with ``args`` after it; returns once it answers."""
    port = free_port()
    env = {**os.environ, "CSAT_SECRET": secret}
    proc = subprocess.Popen([sys.executable, "-m", "csat.cli.main", "--db", db, "serve", "--port", str(port),
                             "--workers", str(workers), *args],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_up(proc, f"{base}/login", seconds)
    except BaseException:
        proc.kill()
        proc.wait(10)
        raise
    return proc, base


def stop(proc: subprocess.Popen, seconds: float = 10) -> None:
    """End a server started by :func:`serve`: asked to stop, then killed if it does not in ``seconds``."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(seconds)


def _spent(r: Any) -> float:
    """The application's own time on a request (its Server-Timing header), in seconds."""
    value = r.headers.get("server-timing", "app;dur=0").partition("dur=")[2]
    return float(value or 0) / 1000


async def rater(client: Any, base: str, token: str, again: bool, pages: list[float], submits: list[float],
                codes: list[int], delay: float = 0.0, server: dict[str, list[float]] | None = None) -> None:
    server = server if server is not None else {"pages": [], "submits": []}
    import re
    await asyncio.sleep(delay)
    t = time.perf_counter()
    r = await client.get(f"{base}/r/{token}")
    pages.append(time.perf_counter() - t)
    codes.append(r.status_code)
    server["pages"].append(_spent(r))
    form = {k: re.search(rf'name="{k}" value="([^"]+)"', r.text).group(1) for k in ("csrf", "nonce")}
    for d in ("dept-0", "dept-1"):
        form.update({f"{d}::attitude": "满意", f"{d}::response": "一般", f"{d}::solution": "满意"})
    for _ in range(2 if again else 1):
        t = time.perf_counter()
        r = await client.post(f"{base}/r/{token}", data=form)
        submits.append(time.perf_counter() - t)
        codes.append(r.status_code)
        server["submits"].append(_spent(r))


async def drill(base: str, tokens: list[str], spread: float = 0.0) -> dict[str, Any]:
    import httpx
    pages: list[float] = []
    submits: list[float] = []
    codes: list[int] = []
    server: dict[str, list[float]] = {"pages": [], "submits": []}
    limits = httpx.Limits(max_connections=len(tokens), max_keepalive_connections=len(tokens))
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        started = time.perf_counter()
        await asyncio.gather(*(rater(client, base, t, i % 10 == 0, pages, submits, codes,
                                     spread * i / len(tokens), server) for i, t in enumerate(tokens)))
        wall = time.perf_counter() - started
    return {"pages": pages, "submits": submits, "codes": codes, "wall_s": wall, "server": server}


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return round(1000 * values[min(len(values) - 1, int(q * len(values)))], 1)


def run(db: str | None, raters: int, spread: float = 0.0, workers: int = 1) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="csat-web-bench-"))
    target = db or str(work / "csat.db")
    tokens = prepare(target, raters)
    proc, base = serve(target, workers)
    try:
        got = asyncio.run(drill(base, tokens, spread))
    finally:
        proc.terminate()
        proc.wait(30)
    from csat.engine import Engine
    with Engine.open(target) as e:
        overall = e.round_status("load")["overall"]
        logged = sum(1 for _ in e.log(type="response"))
    return {"backend": "postgresql" if target.startswith("postgresql") else "sqlite", "raters": raters,
            "spread_s": spread, "workers": workers,
            "page_p50_ms": pct(got["pages"], 0.5), "page_p99_ms": pct(got["pages"], 0.99),
            "submit_p50_ms": pct(got["submits"], 0.5), "submit_p99_ms": pct(got["submits"], 0.99),
            "server_page_p99_ms": pct(got["server"]["pages"], 0.99),
            "server_submit_p99_ms": pct(got["server"]["submits"], 0.99),
            "wall_s": round(got["wall_s"], 2), "5xx": sum(1 for c in got["codes"] if c >= 500),
            "answered": overall["answered"], "expected": 2 * raters, "responses_logged": logged}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", help="a postgresql:// URL of an empty database (default: a new SQLite file)")
    ap.add_argument("--raters", type=int, default=200)
    ap.add_argument("--spread", type=float, default=0.0,
                    help="seconds over which the raters arrive (default 0: all at the same instant)")
    ap.add_argument("--workers", type=int, default=1, help="csat serve's worker processes")
    ap.add_argument("--json", action="store_true", help="one JSON line instead of the table")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    out = run(args.db, args.raters, args.spread, args.workers)
    if args.json:
        print(json.dumps(out))
        return
    for k, v in out.items():
        target = " (target < 200)" if k.endswith("p99_ms") else ""
        print(f"{k:<18}{v:>12}{target}")
    ok = out["5xx"] == 0 and out["answered"] == out["expected"] == out["responses_logged"]
    print("nothing lost, nothing twice, no 5xx" if ok else "FAILED: lost, doubled or 5xx")


if __name__ == "__main__":
    main()
