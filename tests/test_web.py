"""The web front (issue 24, first part): every route × every role, as specified — and no session,
a stale session, a forged cookie, another unit's manager, a rater's link on another assignment, a
closed round's link, CSRF missing or wrong; the rater's questionnaire (a reason left out is refused
in the page, a double submit records one response, a change before the due date a correction,
"no dealings", an anonymous round); bad input → a clear 4xx and nothing written. On both backends,
through the real ASGI application (Starlette's test client)."""
from __future__ import annotations

import re
import warnings

import pytest

from csat.engine import Engine

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from csat.web import create_app

PASSWORD = "correct horse battery"
SECRET = "test-secret-not-for-production"


#: a plant of two divisions, two workshops and four departments (dept-0, dept-1 under div-a)
ORG_CHART = ([{"type": "unit", "id": "plant", "kind": "plant"},
              {"type": "unit", "id": "div-a", "kind": "division", "parent": "plant"},
              {"type": "unit", "id": "div-b", "kind": "division", "parent": "plant"}]
             + [{"type": "unit", "id": f"ws-{i}", "kind": "workshop"} for i in (1, 2)]
             + [{"type": "unit", "id": f"dept-{i}", "kind": "department", "name": f"部门{i}",
                 "parent": "div-a" if i < 2 else "div-b"} for i in range(4)])


@pytest.fixture
def site(db):
    with Engine.open(db) as e:
        e.append(ORG_CHART)
        e.append([{"type": "round", "id": "r1", "ruleset": "plant-50", "period": "2026-03", "due": "2099-03-28",
                   "rule": {"raters": "workshop", "subjects": "department"}},
                  {"type": "round", "id": "old", "ruleset": "plant-50", "period": "2026-02", "due": "2026-02-28",
                   "rule": {"raters": "workshop", "subjects": "department"}}])
        for name, role, unit in (("qo", "office", None), ("ma", "manager", "div-a"), ("mb", "manager", "div-b"),
                                 ("au", "auditor", None)):
            e.accounts.add(name, role, PASSWORD, unit)
        links = {(r["rater"]): r["token"] for r in e.round_links("r1")}
        old = {(r["rater"]): r["token"] for r in e.round_links("old")}
        e.append([{"type": "round_closed", "id": "close-old", "round": "old", "date": "2026-03-01"}])
    app = create_app(db, secret=SECRET, engines=2)
    yield app, db, links, old


def client(app, who: str | None = None) -> TestClient:
    c = TestClient(app, follow_redirects=False)
    if who:
        r = c.post("/login", data={"name": who, "password": PASSWORD})
        assert r.status_code == 303, r.text
    return c


def csrf_of(c: TestClient) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', c.get("/scores").text).group(1)


def rater_form(c: TestClient, token: str) -> dict[str, str]:
    page = c.get(f"/r/{token}").text
    return {k: re.search(rf'name="{k}" value="([^"]+)"', page).group(1) for k in ("csrf", "nonce")}


def answers(subjects, response="满意", reason=None) -> dict[str, str]:
    out = {}
    for d in subjects:
        out.update({f"{d}::attitude": "满意", f"{d}::response": response, f"{d}::solution": "满意"})
        if reason:
            out[f"{d}::response::reason"] = reason
    return out


def log_size(db: str) -> int:
    with Engine.open(db) as e:
        return e.store.max_position()


def answer_all(site, response: str = "满意") -> None:
    app, _, links, _ = site
    c = client(app)
    for rater, token in links.items():
        assert c.post(f"/r/{token}", data={**rater_form(c, token), **answers(
            [f"dept-{i}" for i in range(4)], response=response)}).status_code == 200


# -- who may see what -------------------------------------------------------------------------

PAGES = [  # path, who may (others get 404; no session: to the sign-in page)
    ("/scores?period=2026-03", {"qo", "ma", "mb", "au"}),
    ("/explain/plant-50/dept-0/2026-03", {"qo", "ma", "au"}),
    ("/explain/plant-50/dept-3/2026-03", {"qo", "mb", "au"}),
    ("/explain/plant-50/nowhere/2026-03", set()),  # does not exist: the same 404 as not yours
    ("/rounds", {"qo", "au"}),
    ("/rounds/r1", {"qo", "au"}),
    ("/rounds/nope", set()),
    ("/cases", {"qo", "ma", "mb", "au"}),
    ("/office", {"qo", "au"}),
    ("/trend/plant-50/dept-0", {"qo", "ma", "au"}),
    ("/trend/plant-50/dept-3", {"qo", "mb", "au"}),
    ("/api/scores?period=2026-03", {"qo", "ma", "mb", "au"}),
    ("/api/explain/plant-50/dept-0/2026-03", {"qo", "ma", "au"}),
    ("/api/rounds", {"qo", "au"}),
    ("/api/rounds/r1", {"qo", "au"}),
    ("/office/report?period=2026-03", {"qo", "au"}),
    ("/rounds/r1/forms", {"qo"}),
    ("/rounds/r1/forms/ws-1", {"qo"}),
    ("/rounds/r1/forms/dept-0", set()),  # no such assignment: the same 404
    ("/rounds/nope/forms", set()),
]


def test_every_page_for_every_role(site):
    app, db, _, _ = site
    answer_all(site)
    clients = {who: client(app, who) for who in ("qo", "ma", "mb", "au")}
    anonymous = client(app)
    for path, allowed in PAGES:
        for who, c in clients.items():
            r = c.get(path)
            expected = 200 if who in allowed else 404
            assert r.status_code == expected, (path, who, r.status_code)
            if expected == 404:
                assert "dept-" not in r.text and "部门" not in r.text  # the refusal tells nothing
        r = anonymous.get(path)
        assert r.status_code == (401 if path.startswith("/api/") else 303), (path, r.status_code)
    ma = clients["ma"].get("/api/scores?period=2026-03").json()
    assert {r["subject"] for r in ma} == {"dept-0", "dept-1"}  # their unit and below it, nothing else
    assert {r["subject"] for r in clients["mb"].get("/api/scores?period=2026-03&under=div-a").json()} == \
        {"dept-2", "dept-3"}  # asking for another unit gives one's own
    x = clients["ma"].get("/api/explain/plant-50/dept-0/2026-03").json()
    assert not {e["id"] for e in x["events"]} & {"ws-1", "ws-2"} and "ws-1" not in str(x)  # raters redacted
    assert "ws-1" in str(clients["au"].get("/api/explain/plant-50/dept-0/2026-03").json())


def test_sessions_cookies_and_tokens(site):
    app, db, _, _ = site
    c = client(app, "ma")
    cookie = c.cookies.get("csat_session")
    r = TestClient(app, follow_redirects=False).post("/login", data={"name": "ma", "password": PASSWORD})
    set_cookie = r.headers["set-cookie"].lower()
    assert "httponly" in set_cookie and "samesite=strict" in set_cookie
    forged = TestClient(app, follow_redirects=False)
    forged.cookies.set("csat_session", cookie[:-4] + ("AAAA" if not cookie.endswith("AAAA") else "BBBB"))
    assert forged.get("/scores").status_code == 303  # a forged cookie is no session
    with Engine.open(db) as e:
        e.accounts.set_role("ma", "manager", "div-b")
    assert c.get("/explain/plant-50/dept-0/2026-03").status_code == 303  # stale: the role changed
    c = client(app, "au")
    with Engine.open(db) as e:
        e.accounts.set_disabled("au")
    assert c.get("/scores").status_code == 303
    with Engine.open(db) as e:
        token = e.accounts.new_token("qo")
    api = TestClient(app)
    assert api.get("/api/rounds", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert api.get("/api/rounds", headers={"Authorization": "Bearer csat_nope"}).status_code == 401
    spec = api.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.") and "/api/scores" in spec["paths"]


def test_logins_are_limited(site):
    app, _, _, _ = site
    c = client(app)
    codes = [c.post("/login", data={"name": "qo", "password": "wrong password!"}).status_code for _ in range(6)]
    assert codes == [401] * 5 + [429]
    assert c.post("/login", data={"name": "qo", "password": PASSWORD}).status_code == 429  # until the window passes


def test_every_change_needs_its_csrf_token(site):
    app, db, links, _ = site
    c = client(app, "qo")
    before = log_size(db)
    for data in ({"csrf": ""}, {"csrf": "forged"}, {"other": "1"}):
        assert c.post("/office/rounds/r1/close", data={**data, "confirm": "yes"}).status_code == 403
        assert c.post("/logout", data=data).status_code == 403
    rater = client(app)
    token = links["ws-1"]
    assert rater.post(f"/r/{token}", data={"csrf": "x", **answers(["dept-0"])}).status_code == 403
    other = rater_form(rater, links["ws-2"])["csrf"]  # another link's token does not do
    assert rater.post(f"/r/{token}", data={"csrf": other, **answers(["dept-0"])}).status_code == 403
    assert log_size(db) == before
    assert client(app, "au").post("/office/rounds/r1/close", data={"csrf": "x", "confirm": "yes"}).status_code == 404
    assert c.post("/office/rounds/r1/close", data={"csrf": csrf_of(c), "confirm": "yes"}).status_code == 303
    with Engine.open(db) as e:
        (closed,) = [r for r in e.log(type="round_closed") if r["event"]["round"] == "r1"]
        assert closed["by"] == "qo"  # who did it is in the log


# -- raters -------------------------------------------------------------------------------------

def test_a_rater_answers_changes_and_declines(site):
    app, db, links, old = site
    c = client(app)
    token = links["ws-1"]
    page = c.get(f"/r/{token}")
    assert page.status_code == 200 and "部门0" in page.text and "服务态度" in page.text and "不知道/不适用" in page.text
    form = rater_form(c, token)
    before = log_size(db)
    r = c.post(f"/r/{token}", data={**form, **answers(["dept-0"], response="不满意")})
    assert r.status_code == 422 and "a reason is required for 不满意" in r.text and log_size(db) == before
    assert 'value="不满意" selected' in r.text  # what was entered is kept
    sent = {**form, **answers(["dept-0", "dept-1"], response="不满意", reason="三天才到"),
            "dept-2::none": "yes"}
    assert "已提交" in c.post(f"/r/{token}", data=sent).text
    after = log_size(db)
    assert c.post(f"/r/{token}", data=sent).status_code == 200 and log_size(db) == after  # a double submit: once
    changed = {**sent, "dept-0::response": "满意", "dept-0::response::reason": ""}
    assert "已提交" in c.post(f"/r/{token}", data=changed).text
    with Engine.open(db) as e:
        status = {(a["rater"], a["subject"]): a["status"] for a in e.round_status("r1")["assignments"]}
        assert (status[("ws-1", "dept-0")], status[("ws-1", "dept-2")], status[("ws-2", "dept-0")]) == \
            ("answered", "declined", "missing")
        (fix,) = list(e.log(type="correction"))
        assert fix["event"]["answers"]["response"] == "满意" and fix["by"].startswith("rater-link:")
    assert c.post(f"/r/{token}", data={**form, "dept-9::attitude": "满意"}).status_code == 400  # not theirs: ignored
    assert c.get(f"/r/{old['ws-1']}").status_code == 404  # a closed round's link
    assert c.get("/r/not-a-token").status_code == 404


def test_an_anonymous_round_through_the_web(site):
    app, db, _, _ = site
    with Engine.open(db) as e:
        e.append([{"type": "round", "id": "anon", "ruleset": "plant-50", "period": "2026-04", "due": "2099-04-28",
                   "anonymous": True, "assignments": [{"rater": "ws-1", "subjects": ["dept-0"],
                                                       "respondents": ["张三丰"]}]}])
        (link,) = e.round_links("anon")
    c = client(app)
    url = f"/r/{link['token']}"
    first = rater_form(c, link["token"])
    assert "匿名" in c.get(url).text
    refused = c.post(url, data={**first, **answers(["dept-0"], response="不满意")})  # its reason left out
    assert refused.status_code == 422 and 'id="questionnaire"' in refused.text  # refused: may send again
    assert "已提交" in c.post(url, data={**first, **answers(["dept-0"])}).text
    assert c.post(url, data={**first, **answers(["dept-0"])}).status_code == 200  # a retry of that page
    again = rater_form(c, link["token"]) if 'name="nonce"' in c.get(url).text else None
    assert again is None and "只能提交一次" in c.get(url).text  # a fresh page offers no form
    second = c.post(url, data={**first, "nonce": "another-page", **answers(["dept-0"], response="一般")})
    assert second.status_code == 409 and "只能提交一次" in second.text
    with Engine.open(db) as e:
        e.release_anonymous()  # (held until a batch is full, the day ends or the round closes)
        (r,) = [r for r in e.log(type="response") if r["event"]["period"] == "2026-04"]
        assert e.anonymous_returned(link["token"]) == [("dept-0", None)]
        marks = [m for (m,) in e.store.conn.execute("SELECT mark FROM csat_anon_marks").fetchall()]
    assert "respondent" not in r["event"] and "by" not in r and link["token"][:8] not in r["id"]
    assert r["event"]["answers"]["response"] == "满意"  # one response, the first page's
    assert marks and not any(m in r["id"] or r["id"].split("-")[-1] in m for m in marks)


# -- bad input ----------------------------------------------------------------------------------

def test_bad_input_is_a_clear_4xx_and_writes_nothing(site):
    app, db, links, _ = site
    c = client(app, "qo")
    before = log_size(db)
    token = links["ws-1"]
    big = c.post(f"/r/{token}", content=b"x" * (2 << 20), headers={"content-type": "application/x-www-form-urlencoded"})
    assert big.status_code == 413
    assert c.post(f"/r/{token}", content=b'{"a": 1}', headers={"content-type": "application/json"}).status_code == 415
    assert c.post("/login", content=b"%%%\xff\xfe", headers={"content-type": "application/x-www-form-urlencoded"}) \
        .status_code in (400, 401)
    assert c.get("/static/../../engine/app/accounts.py").status_code == 404
    assert c.get("/static/%2e%2e/%2e%2e/pyproject.toml").status_code == 404
    assert log_size(db) == before
    r = c.get("/scores")
    for header in ("content-security-policy", "x-frame-options", "x-content-type-options", "referrer-policy"):
        assert header in r.headers
    assert "unsafe-inline" not in r.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]


def test_the_readme_s_web_command_serves_the_demo(tmp_path):
    """`csat serve --demo` (the README's command): the demo store, an office account whose
    password is printed once, raters' links that open their questionnaires."""
    import os
    import socket
    import subprocess
    import sys
    import time

    import httpx
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "csat.cli.main", "serve", "--demo", "--port", str(port)],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "CSAT_DB": ""})
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 60
        while not any(line.startswith("rater workshop-4:") for line in lines):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            lines.append(proc.stdout.readline().strip())
        password = next(line for line in lines if line.startswith("sign in as: office / ")).split()[5]
        link = next(line for line in lines if line.startswith("rater workshop-1:")).split()[2]
        base = f"http://127.0.0.1:{port}"
        while True:
            try:
                httpx.get(f"{base}/login", timeout=1)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        with httpx.Client(base_url=base) as c:
            assert c.post("/login", data={"name": "office", "password": password}).status_code == 303
            assert "demo-round" in c.get("/rounds").text
        page = httpx.get(link)
        assert page.status_code == 200 and "服务态度" in page.text and "finance" in page.text
        assert (tmp_path / "csat-demo.db").exists() and (tmp_path / "csat-demo.keys").exists()
    finally:
        proc.terminate()
        proc.wait(30)


def test_a_manager_records_a_rectification_s_progress_in_their_unit_only(site):
    app, db, _, _ = site
    with Engine.open(db) as e:
        e.append([{"type": "complaint", "id": f"c-{d}", "subject": d, "period": "2026-03", "text": f"{d} 态度差"}
                  for d in ("dept-0", "dept-3")]
                 + [{"type": "rectification", "id": f"rect-{d}", "subject": d, "period": "2026-03", "issue": "回复慢",
                     "due": "2026-04-15", "complaint": f"c-{d}"} for d in ("dept-0", "dept-3")])
    ma = client(app, "ma")
    page = ma.get("/cases").text
    assert "rect-dept-0" in page and "rect-dept-3" not in page and "dept-0 态度差" in page
    nonce = re.search(r'name="nonce" value="([^"]+)"', page).group(1)
    form = {"csrf": csrf_of(ma), "nonce": nonce, "status": "completed", "date": "2026-04-10", "note": "已改进"}
    assert ma.post("/cases/rect-dept-0/progress", data=form).status_code == 303
    assert ma.post("/cases/rect-dept-0/progress", data=form).status_code == 303  # a double submit: once
    assert ma.post("/cases/rect-dept-3/progress", data={**form, "nonce": "x"}).status_code == 404  # not theirs
    bad = ma.post("/cases/rect-dept-0/progress", data={**form, "nonce": "y", "status": "completed"})
    assert bad.status_code == 422 and "completed" in bad.text  # the life cycle is the engine's: shown, not written
    assert client(app, "au").post("/cases/rect-dept-0/progress", data=form).status_code == 404
    with Engine.open(db) as e:
        (row,) = [r for r in e.rectifications(as_of="2026-04-30") if r["id"] == "rect-dept-0"]
        updates = list(e.log(type="rectification_update"))
    assert row["status"] == "completed" and len(updates) == 1 and updates[0]["by"] == "ma"


def test_the_old_unconfirmed_routes_are_gone(site):
    """Issue 31, items 13/14: closing a round, making and revoking links, and a rectification's
    progress are the office's desk's (`/office/rounds/…`, `/cases/…/progress`) only — the old
    routes, which closed without confirming, credited "api" in the audit trail and let a manager
    verify their own rectification, answer nothing, and write nothing."""
    app, db, links, _ = site
    with Engine.open(db) as e:
        e.append([{"type": "rectification", "id": "rect-0", "subject": "dept-0", "period": "2026-03",
                   "issue": "回复慢", "due": "2026-04-15"}])
        trail = len(e.accounts.audit())
    qo, ma = client(app, "qo"), client(app, "ma")
    before = log_size(db)
    for action in ("close", "links", "revoke"):
        r = qo.post(f"/rounds/r1/{action}", data={"csrf": csrf_of(qo), "confirm": "yes", "rater": "ws-1"})
        assert r.status_code in (404, 405), (action, r.status_code)
    for who, c in (("qo", qo), ("ma", ma)):
        r = c.post("/rectifications/rect-0/progress", data={"csrf": csrf_of(c), "nonce": "old", "status": "verified",
                                                            "date": "2026-04-10"})
        assert r.status_code in (404, 405), (who, r.status_code)
    r = ma.post("/cases/rect-0/progress", data={"csrf": csrf_of(ma), "nonce": "v", "status": "verified",
                                                "date": "2026-04-10"})
    assert r.status_code == 422 and "marked verified by the quality office" in r.text
    assert log_size(db) == before
    assert client(app).get(f"/r/{links['ws-1']}").status_code == 200  # its link still opens
    with Engine.open(db) as e:
        assert e.round_status("r1")["closed"] is None
        assert not [a for a in e.accounts.audit()[trail:] if a["action"].startswith("links.")]
        assert not list(e.log(type="rectification_update"))


def test_the_office_verifies_announces_previews_and_adopts(site):
    app, db, _, _ = site
    answer_all(site, response="一般")  # 44.44: a figure that one decimal moves
    qo, au = client(app, "qo"), client(app, "au")
    r = au.post("/office/verify", data={"csrf": csrf_of(au)})
    assert r.status_code == 200 and "完整 intact" in r.text  # the auditor may check, and change nothing:
    for path, data in (("/office/announce", {"ruleset": "plant-50", "period": "2026-03", "date": "2026-04-03"}),
                       ("/office/whatif", {"ruleset": "plant-50", "from": "2026-03", "toml": "[bonus]\npoints = 2\n"}),
                       ("/office/adopt", {"ruleset": "plant-50", "from": "2026-03", "toml": "[bonus]\npoints = 2\n"})):
        assert au.post(path, data={"csrf": csrf_of(au), **data}).status_code == 404
    before = {r["subject"]: r["score"] for r in qo.get("/api/scores?period=2026-03").json()}
    r = qo.post("/office/announce", data={"csrf": csrf_of(qo), "ruleset": "plant-50", "period": "2026-03",
                                          "date": "2026-04-03", "confirm": "yes"})
    assert "公示 plant-50 2026-03 recorded" in r.text
    bad = qo.post("/office/whatif", data={"csrf": csrf_of(qo), "ruleset": "plant-50", "from": "2026-03",
                                          "toml": "points = = 2"})
    assert bad.status_code == 422 and "TOML" in bad.text
    revision = "precision = 1\n"  # figures to one decimal from March
    preview = qo.post("/office/whatif", data={"csrf": csrf_of(qo), "ruleset": "plant-50", "from": "2026-03",
                                              "toml": revision})
    assert preview.status_code == 200 and 'id="whatif"' in preview.text and "确认采用" in preview.text
    assert {r["subject"]: r["score"] for r in qo.get("/api/scores?period=2026-03").json()} == before  # a preview
    r = qo.post("/office/adopt", data={"csrf": csrf_of(qo), "ruleset": "plant-50", "from": "2026-03",
                                       "toml": revision})
    assert r.status_code == 303
    with Engine.open(db) as e:
        (adoption,) = [a for a in e.log(type="adoption") if a.get("by") == "qo"]
        (announced,) = list(e.log(type="announcement"))
    assert adoption["event"]["from"] == "2026-03" and announced["by"] == "qo"
    after = {r["subject"]: r for r in qo.get("/api/scores?period=2026-03").json()}
    moved = [s for s, r in after.items() if r["score"] != before[s]]
    assert moved and all(after[s]["announced"] == before[s] and after[s]["announced_on"] == "2026-04-03"
                         for s in moved)  # what moved shows beside what was announced


def test_a_manager_sees_each_figure_against_the_month_before(site):
    app, db, _, _ = site
    with Engine.open(db) as e:
        e.append([{"type": "response", "id": f"{m}-{d}", "ruleset": "plant-50", "period": m, "subject": d,
                   "rater": "ws-1", "answers": {"attitude": "一般" if m == "2026-03" else "满意",
                                                "response": "一般" if m == "2026-03" else "满意", "solution": "满意"}}
                  for m in ("2026-02", "2026-03") for d in ("dept-0", "dept-2")])
        assert e.months() == ["2026-02", "2026-03"] and e.months("airline-1000") == []
    ma = client(app, "ma")
    assert "得分 Scores 2026-03" in ma.get("/scores").text  # the latest month by default
    page = ma.get("/scores?period=2026-03").text
    assert "较2026-02" in page and "-5.56" in page and "部门2" not in page  # 44.44 against 50.00; theirs only
    trend = ma.get("/trend/plant-50/dept-0").text  # the month by month chart, drawn on the server
    assert trend.count("<circle") == 2 and "2026-02: 50.0" in trend and "2026-03: 44.44" in trend


def test_the_office_opens_a_round_and_manages_accounts_from_the_web(site):
    app, db, _, _ = site
    qo = client(app, "qo")
    spec = ('id = "r-apr"\nruleset = "plant-50"\nperiod = "2026-04"\ndue = "2026-04-28"\n'
            '[rule]\nraters = "workshop"\nsubjects = "department"\n')
    bad = qo.post("/office/rounds", data={"csrf": csrf_of(qo), "toml": spec.replace("2026-04-28", "2026-04-31")})
    assert bad.status_code == 422 and "due" in bad.text
    assert qo.post("/office/rounds", data={"csrf": csrf_of(qo), "toml": spec}).status_code == 303
    assert "r-apr" in qo.get("/rounds").text
    r = qo.post("/office/accounts/add", data={"csrf": csrf_of(qo), "name": "mc", "role": "manager", "unit": "div-b",
                                              "password": PASSWORD})
    assert r.status_code == 200 and "mc: add done" in r.text
    assert {r["subject"] for r in client(app, "mc").get("/api/scores").json()} <= {"dept-2", "dept-3"}
    short = qo.post("/office/accounts/add", data={"csrf": csrf_of(qo), "name": "md", "role": "auditor",
                                                  "password": "short"})
    assert short.status_code == 422 and "at least 10 characters" in short.text
    assert qo.post("/office/accounts/disable", data={"csrf": csrf_of(qo), "name": "mc"}).status_code == 200
    assert TestClient(app, follow_redirects=False).post("/login", data={"name": "mc", "password": PASSWORD}) \
        .status_code == 401
    assert client(app, "au").post("/office/accounts/enable", data={"csrf": "x", "name": "mc"}).status_code == 404
    with Engine.open(db) as e:
        (opened,) = [r for r in e.log(type="round") if r["id"] == "r-apr"]
    assert opened["by"] == "qo"


def test_the_office_revokes_a_rater_s_link_and_changes_a_role(site):
    app, db, links, _ = site
    qo = client(app, "qo")
    assert client(app).get(f"/r/{links['ws-2']}").status_code == 200
    assert qo.post("/office/rounds/r1/revoke", data={"csrf": csrf_of(qo), "rater": "ws-2"}).status_code == 303
    assert client(app).get(f"/r/{links['ws-2']}").status_code == 404  # a revoked link opens nothing
    assert client(app).get(f"/r/{links['ws-1']}").status_code == 200
    assert qo.post("/office/rounds/r1/revoke", data={"csrf": csrf_of(qo), "rater": "ws-2"}).status_code == 409
    assert qo.post("/office/rounds/r1/explode", data={"csrf": csrf_of(qo)}).status_code == 404
    ma = client(app, "ma")
    assert ma.get("/explain/plant-50/dept-3/2026-03").status_code == 404
    r = qo.post("/office/accounts/role", data={"csrf": csrf_of(qo), "name": "ma", "role": "auditor", "unit": ""})
    assert r.status_code == 200 and "ma: role done" in r.text
    assert ma.get("/scores").status_code == 303  # the old session ends with the old role


def test_the_web_front_uses_nothing_but_the_embedding_api():
    """web/ is an outside application: of csat it imports `csat.engine` (the embedding API, with
    its error types and periods) and itself — never the engine's insides, the CLI or the plugins."""
    from pathlib import Path
    found = set()
    for path in (Path(__file__).resolve().parents[1] / "web").glob("*.py"):
        found |= set(re.findall(r"^\s*(?:from|import)\s+(csat(?:\.\w+)*)", path.read_text("utf-8"), re.M))
    assert found and found <= {"csat.engine", "csat.web"}, found


def test_after_the_due_date_a_return_is_late_and_a_sent_answer_cannot_change(site):
    app, db, _, _ = site
    with Engine.open(db) as e:
        e.append([{"type": "round", "id": "past", "ruleset": "plant-50", "period": "2026-01", "due": "2026-01-28",
                   "assignments": [{"rater": "ws-1", "subjects": ["dept-0"]}]}])
        (link,) = e.round_links("past")
    c = client(app)
    token = link["token"]
    assert "已提交" in c.post(f"/r/{token}", data={**rater_form(c, token), **answers(["dept-0"])}).text
    changed = c.post(f"/r/{token}", data={**rater_form(c, token), **answers(["dept-0"], response="一般")})
    assert changed.status_code == 422 and "was due on 2026-01-28" in changed.text
    with Engine.open(db) as e:
        assert list(e.log(type="correction")) == []
        assert e.round_status("past")["overall"]["late"] == 1  # the return came, late


def test_the_office_downloads_the_report_and_the_workbooks(site):
    """The downloads are what the CLI writes: the report page (the same bytes as `csat report`
    would give for the same log), each rater's workbook (it reads back with its subjects), all of
    them zipped; a name that is not the round's is a 404 whatever it holds, and nothing is written."""
    import io
    import zipfile

    from openpyxl import load_workbook

    app, db, _, _ = site
    answer_all(site)
    c = client(app, "qo")
    before = log_size(db)
    r = c.get("/office/report?period=2026-03&ruleset=plant-50")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert r.headers["content-disposition"].startswith('attachment; filename="csat-report-2026-03-plant-50.html"')
    with Engine.open(db) as e:
        assert r.text == e.report("2026-03", "plant-50")
        expected = {row["subject"]: row["score"] for row in e.scores(ruleset="plant-50", period="2026-03")}
    assert "部门1" in r.text and "ws-1" not in r.text  # the figures by name, no rater named
    assert expected and all(str(v) in r.text for v in expected.values())
    assert c.get("/office/report?period=March").status_code == 400
    assert c.get("/office/report?period=2026-03&min_responses=x").status_code == 400
    one = c.get("/rounds/r1/forms/ws-2")
    assert one.status_code == 200 and "r1-ws-2.xlsx" in one.headers["content-disposition"]
    sheet = load_workbook(io.BytesIO(one.content)).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][:3] == ("编号", "轮次", "规则") and "被考核单位" in rows[0] and "评价单位" in rows[0]
    assert sorted(r[rows[0].index("被考核单位")] for r in rows[1:]) == [f"dept-{i}" for i in range(4)]
    assert {r[rows[0].index("评价单位")] for r in rows[1:]} == {"ws-2"}
    z = zipfile.ZipFile(io.BytesIO(c.get("/rounds/r1/forms").content))
    assert sorted(z.namelist()) == ["ws-1.xlsx", "ws-2.xlsx"]
    assert z.read("ws-2.xlsx")[:2] == b"PK"
    for path in ("/rounds/r1/forms/..%2F..%2Fpyproject.toml", "/rounds/r1/forms/../../pyproject.toml",
                 "/rounds/..%2Fr1/forms", "/rounds/r1/forms/%2Fetc%2Fpasswd"):
        assert c.get(path).status_code == 404, path
    assert log_size(db) == before
    page = c.get("/rounds/r1").text
    assert 'href="/rounds/r1/forms"' in page and 'href="/rounds/r1/forms/ws-1"' in page
    assert 'href="/rounds/r1/forms' not in client(app, "au").get("/rounds/r1").text


def test_a_rule_set_of_several_forms_is_answered_form_by_form(site):
    """A dealership's sales and service callbacks, a supplier's four dimensions: each form of a
    subject is a section of the page and a response of its own (its ``form`` set); a form left
    blank records nothing; the rule set's own check refuses in the page, one line, nothing written."""
    app, db, _, _ = site
    with Engine.open(db) as e:
        e.append([{"type": "unit", "id": "dealer-1", "kind": "dealer", "name": "广州店"},
                  {"type": "unit", "id": "purchasing", "kind": "department"},
                  {"type": "unit", "id": "sup-1", "kind": "supplier", "name": "甲供应商"},
                  {"type": "round", "id": "cs", "ruleset": "dealership-cs", "period": "2026-03", "due": "2099-03-28",
                   "assignments": [{"rater": "callcentre", "subjects": ["dealer-1"]}]},
                  {"type": "round", "id": "sup", "ruleset": "supplier-400", "period": "2026-03", "due": "2099-03-28",
                   "assignments": [{"rater": "purchasing", "subjects": ["sup-1"]}]}])
        (cs,) = e.round_links("cs")
        (sup,) = e.round_links("sup")
    c = client(app)
    page = c.get(f"/r/{cs['token']}").text
    assert 'name="dealer-1::sales::q1"' in page and 'name="dealer-1::service::q6"' in page
    form = rater_form(c, cs["token"])
    sales = {f"dealer-1::sales::q{k}": "很好" for k in range(1, 5)}
    assert "已提交" in c.post(f"/r/{cs['token']}", data={**form, **sales}).text
    service = {f"dealer-1::service::q{k}": "一般" for k in range(1, 7)}
    assert "已提交" in c.post(f"/r/{cs['token']}", data={**form, **sales, **service}).text  # sales unchanged
    with Engine.open(db) as e:
        rows = [r["event"] for r in e.log(type="response") if r["event"]["ruleset"] == "dealership-cs"]
        assert sorted((r["form"], r["subject"], r["rater"]) for r in rows) == [
            ("sales", "dealer-1", "callcentre"), ("service", "dealer-1", "callcentre")]
        assert {r["form"]: set(r["answers"].values()) for r in rows} == {"sales": {"很好"}, "service": {"一般"}}
        assert not list(e.log(type="correction"))
        assert e.round_status("cs")["overall"]["answered"] == 1
    page = c.get(f"/r/{cs['token']}").text
    assert page.count("已答 answered") == 2  # each form shows its own answers again
    form = rater_form(c, sup["token"])
    before = log_size(db)
    bad = {"sup-1::quality::lots_total": "10", "sup-1::quality::lots_passed": "12", "sup-1::quality::concessions": "0",
           "sup-1::quality::defect_rate": "0", "sup-1::quality::defect_limit": "1"}
    r = c.post(f"/r/{sup['token']}", data={**form, **bad})
    assert r.status_code == 422 and "lots_passed" in r.text and log_size(db) == before
    good = {**bad, "sup-1::quality::lots_passed": "9", "sup-1::delivery::late_deliveries": "1"}
    assert "已提交" in c.post(f"/r/{sup['token']}", data={**form, **good}).text
    with Engine.open(db) as e:
        rows = [r["event"] for r in e.log(type="response") if r["event"]["ruleset"] == "supplier-400"]
    assert sorted(r["form"] for r in rows) == ["delivery", "quality"]
    assert [r["answers"] for r in rows if r["form"] == "delivery"] == [{"late_deliveries": 1}]


def test_a_manager_s_scores_page_lists_a_moved_unit_for_its_own_months_only(site):
    """dept-1 is under div-a until February and under div-b from March: the scores page, as
    /api/scores, lists its first quarter (across the move) to neither manager, its second to mb,
    January to ma — and ma's own dept-0 throughout."""
    app, db, _, _ = site
    with Engine.open(db) as e:
        e.append([{"type": "unit", "id": "dept-1", "kind": "department", "name": "部门1", "parent": "div-b",
                   "from": "2026-03"}])
        e.append([{"type": "response", "id": f"moved-{d}-{m}", "ruleset": "plant-50", "period": m, "subject": d,
                   "rater": "ws-1", "answers": {"attitude": "满意", "response": "满意", "solution": "满意"}}
                  for m in ("2026-01", "2026-02", "2026-03", "2026-04") for d in ("dept-0", "dept-1")])
    ma, mb, qo = client(app, "ma"), client(app, "mb"), client(app, "qo")
    sees = {"ma": {"2026-01", "2026-02"}, "mb": {"2026-03", "2026-04", "2026-Q2"}, "qo": None}
    for who, c in (("ma", ma), ("mb", mb), ("qo", qo)):
        for period in ("2026-01", "2026-03", "2026-Q1", "2026-Q2"):
            page = c.get(f"/scores?period={period}")
            assert page.status_code == 200, (who, period)
            listed = f"/explain/plant-50/dept-1/{period}" in page.text
            assert listed == (sees[who] is None or period in sees[who]), (who, period)
            api = {r["subject"] for r in c.get(f"/api/scores?period={period}").json()}
            assert ("dept-1" in api) == listed, (who, period)  # the page lists what the API gives
        if who == "ma":
            assert "/explain/plant-50/dept-0/2026-Q1" in c.get("/scores?period=2026-Q1").text
