"""Issue 31's items 1–3 played over HTTP against `csat serve` in a process of its own, as a rater
with a browser's tools would: old and new links, a page posted again with other answers, and the
order of what the store keeps. (The same items are tested in depth in-process: test_one_return.py,
test_anonymous.py; the kill drill is test_anonymous_kill.py.)"""
from __future__ import annotations

import re
import subprocess

import bench_web
import httpx

from csat.engine import Engine
from conftest import connect

DEPTS = ["dept-0", "dept-1"]


def _form(c: httpx.Client, token: str, subject: str, value: str) -> dict[str, str]:
    page = c.get(f"/r/{token}").text
    keys = {k: m.group(1) for k in ("csrf", "nonce") if (m := re.search(rf'name="{k}" value="([^"]+)"', page))}
    return {**keys, **{f"{subject}::{i}": value for i in ("attitude", "response", "solution")}}


def _store(db: str) -> None:
    with Engine.open(db) as e:
        e.append([{"type": "unit", "id": f"ws-{i}", "kind": "workshop"} for i in (1, 2)]
                 + [{"type": "unit", "id": d, "kind": "department", "name": f"部门{d[-1]}"} for d in DEPTS])
        e.append([{"type": "round", "id": "r", "ruleset": "plant-50", "period": "2026-03", "due": "2099-03-28",
                   "changes": False, "rule": {"raters": "workshop", "subjects": "department"}},
                  {"type": "round", "id": "anon", "ruleset": "plant-50", "period": "2026-04", "due": "2099-04-28",
                   "anonymous": True, "assignments": [{"rater": "ws-1", "subjects": DEPTS,
                                                       "respondents": [f"人{i:02d}" for i in range(8)]}]}])


def test_links_made_again_and_a_stuffed_anonymous_link_count_once_against_a_running_server(db):
    _store(db)
    with Engine.open(db) as e:
        old = {r["rater"]: r["token"] for r in e.round_links("r")}
        new = {r["rater"]: r["token"] for r in e.round_links("r")}  # made again (a refresh of the page)
        anon = [r["token"] for r in e.round_links("anon")]
    proc, base = bench_web.serve(db, 1, secret="cycle", seconds=30, stderr=subprocess.DEVNULL)
    try:
        with httpx.Client(base_url=base, timeout=30, follow_redirects=False) as c:
            # 1. one rater, one return, whatever the link: the old set opens nothing
            assert c.get(f"/r/{old['ws-1']}").status_code == 404
            posted = c.post(f"/r/{old['ws-1']}", data=_form(c, new["ws-1"], "dept-0", "满意"))
            assert posted.status_code in (403, 404)  # (its form token is the link's: a forged one is 403)
            assert c.post(f"/r/{new['ws-1']}", data=_form(c, new["ws-1"], "dept-0", "满意")).status_code == 200
            # 2. an anonymous link answers each subject once: the same page again, other answers
            token = anon[0]
            first = _form(c, token, "dept-0", "满意")
            assert c.post(f"/r/{token}", data=first).status_code == 200
            stuffed = [c.post(f"/r/{token}", data={**first, **{f"dept-0::{i}": "不满意" for i in
                                                              ("attitude", "response", "solution")}}).status_code
                       for _ in range(4)]
            assert stuffed == [409] * 4
            assert c.post(f"/r/{token}", data=_form(c, token, "dept-1", "一般")).status_code == 200  # not locked
            for other in anon[1:6]:  # five more respondents: a batch is released to the log
                assert c.post(f"/r/{other}", data=_form(c, other, "dept-0", "满意")).status_code == 200
    finally:
        proc.kill()
        proc.wait(10)
    with Engine.open(db) as e:
        e.release_anonymous()
        march = [r for r in e.log(type="response") if r["event"]["period"] == "2026-03"]
        april = [r for r in e.log(type="response") if r["event"]["period"] == "2026-04"]
        assert [r["event"]["rater"] for r in march] == ["ws-1"]
        assert len(april) == 7 and sum(r["event"]["subject"] == "dept-1" for r in april) == 1
        assert all("不满意" not in str(r["event"]["answers"]) for r in april)  # the stuffed answers are nowhere
        assert e.round_status("anon")["overall"]["answered"] == 2  # ws-1's two subjects
        # 3. what the store keeps tells no order: day-level times, no rowid order of the marks
        assert {r["recorded"][11:] for r in april} == {"00:00:00.000000Z"}
    with connect(db) as conn:
        tables = [t for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")] \
            if not db.startswith("postgresql://") else []
        if tables:
            assert "csat_link_returns" not in tables
            sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'csat_anon_marks'").fetchone()[0]
            assert "WITHOUT ROWID" in sql and "time" not in sql.lower()
