"""The web front's sessions and the office's desk (issue 31, items 7, 10, 12, 13 and 14): signing
out, a role changed, disabling, a new password and removal end every session of the account — a
cookie kept from before opens nothing, through the test client and against a running `csat
serve`; an account changes its own password, the office resets one, removes an account, revokes
its API tokens; the "open a round" form records a round and nothing else; a manager's
rectification is verified or cancelled by the office only; announcing and closing are confirmed,
a month with no figures is not announced; a unit that moved is each manager's for its own months.
On both backends, through the real application."""
from __future__ import annotations

import re
import warnings

from csat.engine import Engine

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from test_web import PASSWORD, answer_all, client, csrf_of, log_size, site  # noqa: F401 — site: the fixture

NEW_PASSWORD = "a brand new horse battery"


def kept(app, cookie: str) -> TestClient:
    """A client holding nothing but a session cookie saved earlier."""
    c = TestClient(app, follow_redirects=False)
    c.cookies.set("csat_session", cookie)
    return c


def signed_in(c: TestClient) -> bool:
    return c.get("/scores").status_code == 200


# -- item 7: a session ends when it should -------------------------------------------------------

def test_a_cookie_kept_from_before_signing_out_opens_nothing(site):
    app, db, _, _ = site
    qo, other = client(app, "qo"), client(app, "qo")  # two browsers of one account
    cookie, token = qo.cookies.get("csat_session"), csrf_of(qo)
    assert qo.get("/office").status_code == 200 and signed_in(other)
    assert qo.post("/logout", data={"csrf": token}).status_code == 303
    replay = kept(app, cookie)
    assert replay.get("/office").status_code == 303  # to the sign-in page
    r = replay.post("/office/accounts/add", data={"csrf": token, "name": "intruder", "role": "office",
                                                   "password": PASSWORD})
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    assert not signed_in(other)  # signing out signs out everywhere
    with Engine.open(db) as e:
        assert e.accounts.get("intruder") is None
        (row,) = [a for a in e.accounts.audit() if a["action"] == "account.signout"]
    assert (row["actor"], row["target"]) == ("qo", "qo")
    assert signed_in(client(app, "qo"))  # and one signs in again as ever


def test_a_new_password_disabling_and_removal_end_every_session(site):
    app, db, _, _ = site
    qo = client(app, "qo")
    for change in ("password", "disable", "remove"):
        ma = client(app, "ma")
        cookie = ma.cookies.get("csat_session")
        if change == "password":
            assert qo.post("/office/accounts/password", data={"csrf": csrf_of(qo), "name": "ma",
                                                             "password": NEW_PASSWORD}).status_code == 200
            with Engine.open(db) as e:  # back as it was: the old password, the same role
                e.accounts.set_password("ma", PASSWORD)
        elif change == "disable":
            assert qo.post("/office/accounts/disable", data={"csrf": csrf_of(qo), "name": "ma"}).status_code == 200
            assert qo.post("/office/accounts/enable", data={"csrf": csrf_of(qo), "name": "ma"}).status_code == 200
        else:
            assert qo.post("/office/accounts/remove", data={"csrf": csrf_of(qo), "name": "ma"}).status_code == 200
            with Engine.open(db) as e:  # a new account of the same name, role and unit
                e.accounts.add("ma", "manager", PASSWORD, "div-a")
        assert not signed_in(kept(app, cookie)), change  # the account is as it was; the session is not
        assert signed_in(client(app, "ma")), change


def test_an_account_changes_its_own_password(site):
    app, db, _, _ = site
    ma, elsewhere = client(app, "ma"), client(app, "ma")
    page = ma.get("/scores").text
    assert 'action="/account/password"' in page and 'name="old"' in page
    wrong = ma.post("/account/password", data={"csrf": csrf_of(ma), "old": "not my password",
                                               "password": NEW_PASSWORD, "again": NEW_PASSWORD})
    assert wrong.status_code == 422 and "current password is not right" in wrong.text
    differ = ma.post("/account/password", data={"csrf": csrf_of(ma), "old": PASSWORD,
                                                "password": NEW_PASSWORD, "again": NEW_PASSWORD + "!"})
    assert differ.status_code == 422 and signed_in(elsewhere)  # nothing changed
    assert ma.post("/account/password", data={"old": PASSWORD, "password": NEW_PASSWORD}).status_code == 403
    r = ma.post("/account/password", data={"csrf": csrf_of(ma), "old": PASSWORD, "password": NEW_PASSWORD,
                                           "again": NEW_PASSWORD})
    assert r.status_code == 303 and r.headers["location"] == "/scores?done=password"
    assert "密码已更改" in ma.get(r.headers["location"]).text  # this browser goes on,
    assert not signed_in(elsewhere)  # every other session ended
    assert TestClient(app).post("/login", data={"name": "ma", "password": PASSWORD}).status_code == 401
    assert TestClient(app, follow_redirects=False).post(
        "/login", data={"name": "ma", "password": NEW_PASSWORD}).status_code == 303
    with Engine.open(db) as e:
        (row,) = [a for a in e.accounts.audit() if a["action"] == "account.password"]
    assert (row["actor"], row["target"], row["details"]) == ("ma", "ma", {"by": "owner"})


def test_signing_out_of_a_running_csat_serve_ends_the_saved_cookie(db):
    """Item 7 played against `csat serve` in a process of its own, over HTTP: sign in, save the
    cookie, sign out, replay the cookie — it opens nothing and changes nothing."""
    import httpx
    from bench_web import serve
    with Engine.open(db) as e:
        e.accounts.add("qo", "office", PASSWORD)
    proc, base = serve(db)
    try:
        with httpx.Client(base_url=base, follow_redirects=False) as browser:
            assert browser.post("/login", data={"name": "qo", "password": PASSWORD}).status_code == 303
            cookie = browser.cookies.get("csat_session")
            office = browser.get("/office")
            assert office.status_code == 200
            token = re.search(r'name="csrf" value="([^"]+)"', office.text).group(1)
            assert browser.post("/logout", data={"csrf": token}).status_code == 303
        with httpx.Client(base_url=base, follow_redirects=False, cookies={"csat_session": cookie}) as replay:
            r = replay.get("/office")
            assert r.status_code == 303 and r.headers["location"].startswith("/login")
            add = replay.post("/office/accounts/add", data={"csrf": token, "name": "intruder", "role": "office",
                                                            "password": PASSWORD})
            assert add.status_code == 303 and add.headers["location"].startswith("/login")
            assert replay.get("/api/rounds").status_code == 401
    finally:
        proc.terminate()
        proc.wait(30)
    with Engine.open(db) as e:
        assert e.accounts.get("intruder") is None


# -- item 10 (the web): the office resets, removes, revokes -------------------------------------

def test_the_office_resets_a_password_removes_an_account_and_revokes_tokens(site):
    app, db, _, _ = site
    qo, au = client(app, "qo"), client(app, "au")
    with Engine.open(db) as e:
        token = e.accounts.new_token("au")
    page = qo.get("/office").text
    for action in ("password", "remove", "revoke-tokens"):
        assert f'action="/office/accounts/{action}"' in page
    for action in ("password", "remove", "revoke-tokens"):  # the auditor changes nothing
        assert au.post(f"/office/accounts/{action}", data={"csrf": csrf_of(au), "name": "mb",
                                                          "password": NEW_PASSWORD}).status_code == 404
        assert qo.post(f"/office/accounts/{action}", data={"name": "mb"}).status_code == 403  # no CSRF token
    bearer = {"Authorization": f"Bearer {token}"}
    assert TestClient(app).get("/api/rounds", headers=bearer).status_code == 200
    r = qo.post("/office/accounts/revoke-tokens", data={"csrf": csrf_of(qo), "name": "au"})
    assert r.status_code == 200 and "au: 1 API token(s) revoked" in r.text
    assert TestClient(app).get("/api/rounds", headers=bearer).status_code == 401
    short = qo.post("/office/accounts/password", data={"csrf": csrf_of(qo), "name": "mb", "password": "short"})
    assert short.status_code == 422 and "at least 10 characters" in short.text
    assert qo.post("/office/accounts/password", data={"csrf": csrf_of(qo), "name": "mb",
                                                     "password": NEW_PASSWORD}).status_code == 200
    assert TestClient(app, follow_redirects=False).post(
        "/login", data={"name": "mb", "password": NEW_PASSWORD}).status_code == 303
    r = qo.post("/office/accounts/remove", data={"csrf": csrf_of(qo), "name": "mb"})
    assert r.status_code == 200 and "mb: remove done" in r.text
    assert TestClient(app).post("/login", data={"name": "mb", "password": NEW_PASSWORD}).status_code == 401
    nobody = qo.post("/office/accounts/remove", data={"csrf": csrf_of(qo), "name": "mb"})
    assert nobody.status_code == 422 and "no account &#39;mb&#39;" in nobody.text
    myself = qo.post("/office/accounts/remove", data={"csrf": csrf_of(qo), "name": "qo"})
    assert myself.status_code == 422 and "cannot remove your own account" in myself.text
    with Engine.open(db) as e:
        assert e.accounts.get("qo") is not None and e.accounts.get("mb") is None


# -- item 12: the "open a round" form records a round and nothing else ----------------------------

def test_the_round_form_records_a_round_and_nothing_else(site):
    app, db, _, _ = site
    qo = client(app, "qo")
    before = log_size(db)
    response = ('type = "response"\nid = "forged"\nruleset = "plant-50"\nperiod = "2026-03"\nsubject = "dept-0"\n'
                'rater = "ws-2"\n[answers]\nattitude = "满意"\nresponse = "满意"\nsolution = "满意"\n')
    r = qo.post("/office/rounds", data={"csrf": csrf_of(qo), "toml": response})
    assert r.status_code == 422 and "a round has no type" in r.text
    extra = ('id = "r-x"\nruleset = "plant-50"\nperiod = "2026-04"\ndue = "2026-04-28"\nsubject = "dept-0"\n'
             '[rule]\nraters = "workshop"\nsubjects = "department"\n')
    r = qo.post("/office/rounds", data={"csrf": csrf_of(qo), "toml": extra})
    assert r.status_code == 422 and "a round has no subject" in r.text
    assert log_size(db) == before
    assert qo.post("/office/rounds", data={"csrf": csrf_of(qo), "toml": extra.replace('subject = "dept-0"\n', "")}) \
        .status_code == 303
    with Engine.open(db) as e:
        assert [r["id"] for r in e.log(type="round") if r.get("by") == "qo"] == ["r-x"]
        assert not [r for r in e.log(type="response")]


# -- item 13: verified and cancelled are the office's -------------------------------------------

def test_a_manager_does_not_verify_or_cancel_their_own_rectification(site):
    app, db, _, _ = site
    with Engine.open(db) as e:
        e.append([{"type": "rectification", "id": "rect-0", "subject": "dept-0", "period": "2026-03",
                   "issue": "回复慢", "due": "2026-04-15"}])
    ma, qo = client(app, "ma"), client(app, "qo")
    page = ma.get("/cases").text
    assert 'action="/cases/rect-0/progress"' in page
    assert ">completed<" in page and ">verified<" not in page and ">cancelled<" not in page
    assert ">verified<" in qo.get("/cases").text
    before = log_size(db)
    for status in ("verified", "cancelled"):
        r = ma.post("/cases/rect-0/progress", data={"csrf": csrf_of(ma), "nonce": status, "status": status,
                                                    "date": "2026-04-10"})
        assert r.status_code == 422 and f"marked {status} by the quality office" in r.text
    assert log_size(db) == before
    assert ma.post("/cases/rect-0/progress", data={"csrf": csrf_of(ma), "nonce": "a", "status": "completed",
                                                   "date": "2026-04-10"}).status_code == 303
    assert qo.post("/cases/rect-0/progress", data={"csrf": csrf_of(qo), "nonce": "b", "status": "verified",
                                                   "date": "2026-04-12"}).status_code == 303
    with Engine.open(db) as e:
        updates = [(r["by"], r["event"]["status"]) for r in e.log(type="rectification_update")]
    assert updates == [("ma", "completed"), ("qo", "verified")]


# -- item 14: confirmed announcing and closing; a month with figures; scope month by month ---------

def test_announcing_is_confirmed_and_needs_figures(site):
    app, db, _, _ = site
    answer_all(site)
    qo = client(app, "qo")
    assert 'name="confirm"' in qo.get("/office").text
    before = log_size(db)
    month = {"ruleset": "plant-50", "period": "2026-03", "date": "2026-04-03"}
    r = qo.post("/office/announce", data={"csrf": csrf_of(qo), **month})
    assert r.status_code == 422 and "tick 确认" in r.text
    r = qo.post("/office/announce", data={"csrf": csrf_of(qo), **month, "period": "2026-07", "confirm": "yes"})
    assert r.status_code == 422 and "no figures for 2026-07" in r.text
    assert log_size(db) == before
    r = qo.post("/office/announce", data={"csrf": csrf_of(qo), **month, "confirm": "yes"})
    assert r.status_code == 200 and "公示 plant-50 2026-03 recorded" in r.text
    with Engine.open(db) as e:
        (announced,) = list(e.log(type="announcement"))
    assert announced["by"] == "qo" and announced["event"]["date"] == "2026-04-03"


def test_closing_a_round_is_confirmed_and_links_are_made_and_revoked_in_the_audit_trail(site):
    app, db, links, _ = site
    qo = client(app, "qo")
    page = qo.get("/rounds/r1").text
    assert 'action="/office/rounds/r1/close"' in page and 'name="confirm"' in page
    r = qo.post("/office/rounds/r1/close", data={"csrf": csrf_of(qo)})
    assert r.status_code == 422 and "tick 确认" in r.text
    made = qo.post("/office/rounds/r1/links", data={"csrf": csrf_of(qo)})
    assert made.status_code == 200 and made.text.count("/r/") >= 2
    assert qo.post("/office/rounds/r1/revoke", data={"csrf": csrf_of(qo), "rater": "ws-2"}).status_code == 303
    assert client(app).get(f"/r/{links['ws-2']}").status_code == 404
    assert client(app, "au").post("/office/rounds/r1/close", data={"csrf": "x", "confirm": "yes"}).status_code == 404
    with Engine.open(db) as e:
        assert e.round_status("r1")["closed"] is None
    assert qo.post("/office/rounds/r1/close", data={"csrf": csrf_of(qo), "confirm": "yes"}).status_code == 303
    with Engine.open(db) as e:
        (closed,) = [r for r in e.log(type="round_closed") if r["event"]["round"] == "r1"]
        trail = [(a["actor"], a["action"], a["target"]) for a in e.accounts.audit() if a["actor"] == "qo"]
    assert closed["by"] == "qo"
    # making links again revoked the set made before (one live link per assignment), then the revoke
    assert trail == [("qo", "links.revoke", "r1"), ("qo", "links.new", "r1"), ("qo", "links.revoke", "r1")]


def test_a_unit_that_moved_is_each_manager_s_for_its_own_months(site):
    """dept-1 is under div-a until February and under div-b from March (a `unit` event with
    `from`): ma sees its January and February, mb its March and April; the first quarter, across
    the move, is neither's; the second is mb's."""
    app, db, _, _ = site
    with Engine.open(db) as e:
        e.append([{"type": "unit", "id": "dept-1", "kind": "department", "name": "部门1", "parent": "div-b",
                   "from": "2026-03"}])
        e.append([{"type": "response", "id": f"moved-{m}", "ruleset": "plant-50", "period": m, "subject": "dept-1",
                   "rater": "ws-1", "answers": {"attitude": "满意", "response": "满意", "solution": "满意"}}
                  for m in ("2026-01", "2026-02", "2026-03", "2026-04")])
    ma, mb, qo = client(app, "ma"), client(app, "mb"), client(app, "qo")
    sees = {"ma": {"2026-01", "2026-02"}, "mb": {"2026-03", "2026-04", "2026-Q2"}}
    for who, c in (("ma", ma), ("mb", mb)):
        for period in ("2026-01", "2026-02", "2026-03", "2026-04", "2026-Q1", "2026-Q2", "2026"):
            expected = 200 if period in sees[who] else 404
            assert c.get(f"/explain/plant-50/dept-1/{period}").status_code == expected, (who, period)
            assert c.get(f"/api/explain/plant-50/dept-1/{period}").status_code == expected, (who, period)
        listed = {r["period"] for r in c.get("/api/scores?subject=dept-1").json()}
        assert listed == sees[who], who
    assert qo.get("/explain/plant-50/dept-1/2026-Q1").status_code == 200  # the office sees it all
