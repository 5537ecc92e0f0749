"""A killed server locks no rater out (issue 31, item 17): `csat serve` is killed (SIGKILL) while
the raters of an anonymous round submit at once — right away, after one return accepted, after
three — and started again on the same store each time. Then every link whose submit did not
succeed can still answer (or its return is in the log: it was committed as the connection
dropped), and every return is in the log exactly once. The server's log names no link.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from collections import Counter

import pytest

from csat.engine import Engine

import bench_web

httpx = pytest.importorskip("httpx")

RATERS = 10


def _serve(db: str) -> tuple[subprocess.Popen, str]:
    return bench_web.serve(db, 1, secret="kill-test", seconds=20)


def _submit(base: str, n: int, token: str, done: dict[int, bool]) -> None:
    """Open the page and send it; ``done[n]`` True only for a 200 that says it was sent."""
    try:
        with httpx.Client(timeout=10) as c:
            page = c.get(f"{base}/r/{token}").text
            form = {k: m.group(1) for k in ("csrf", "nonce") if (m := re.search(rf'name="{k}" value="([^"]+)"', page))}
            if "nonce" not in form:
                done[n] = False
                return
            form.update({"dept-0::attitude": "满意", "dept-0::response": "一般", "dept-0::solution": "满意",
                         "dept-0::comment": f"link {n}"})
            r = c.post(f"{base}/r/{token}", data=form)
            done[n] = r.status_code == 200 and "已提交" in r.text
    except httpx.HTTPError:
        done[n] = False


def test_a_killed_server_locks_no_rater_out(db):
    people = [f"p{i}" for i in range(RATERS)]
    with Engine.open(db) as e:
        e.append([{"type": "unit", "id": "ws-1", "kind": "workshop"},
                  {"type": "unit", "id": "dept-0", "kind": "department"}])
        e.append([{"type": "round", "id": "anon", "ruleset": "plant-50", "period": "2026-04", "due": "2099-04-28",
                   "anonymous": True, "assignments": [{"rater": "ws-1", "subjects": ["dept-0"],
                                                       "respondents": people}]}])
        tokens = [l["token"] for l in e.round_links("anon")]
    succeeded: set[int] = set()
    logs = []
    started = time.monotonic()
    for after in (0, 1, 3):  # kill once this many more returns were accepted (0: at once)
        proc, base = _serve(db)
        done: dict[int, bool] = {}
        todo = [n for n in range(RATERS) if n not in succeeded]
        threads = [threading.Thread(target=_submit, args=(base, n, tokens[n], done)) for n in todo]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 10
        while sum(done.values()) < after and len(done) < len(todo) and time.monotonic() < deadline:
            time.sleep(0.002)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        logs.append(proc.stderr.read().decode("utf-8", "replace"))
        for t in threads:
            t.join(15)
        succeeded |= {n for n, ok in done.items() if ok}
    proc, base = _serve(db)  # once more: every link not answered can answer now
    try:
        with httpx.Client(timeout=10) as c:
            for n in range(RATERS):
                if n in succeeded:
                    assert "只能提交一次" in c.get(f"{base}/r/{tokens[n]}").text
                    continue
                done = {}
                _submit(base, n, tokens[n], done)
                page = c.get(f"{base}/r/{tokens[n]}").text
                assert done[n] or "只能提交一次" in page, n  # answered now, or committed as it was killed
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        logs.append(proc.stderr.read().decode("utf-8", "replace"))
    with Engine.open(db) as e:
        e.release_anonymous()
        assert e.verify()["intact"]
        comments = Counter(r["event"]["comment"] for r in e.log(type="response"))
    assert comments == Counter({f"link {n}": 1 for n in range(RATERS)})  # every return, exactly once
    assert not any(t[:12] in "".join(logs) for t in tokens) and "/r/" not in "".join(logs)
    assert time.monotonic() - started < 60
