"""The authorization matrix (issue 31, "done when"), generated from the route table: every route
of the application declares who may ask it (``csat.web.app.POLICY``) — a route without a declared
policy fails :func:`test_every_route_declares_its_policy` and its own row of the matrix — and
every route is asked by every role: no session, a rater's link, the office, a manager of a unit,
the auditor, a disabled account's session, and each account's API bearer token. Path parameters
are real ids of one store set up per module (a round, a case, a subject, a period, a link); a
POST carries the session's valid CSRF token (a rater's form: its link's).

An allowed role gets a 2xx or 3xx (or a 4xx for a business reason, 409/422/400 — never the
401/403/404 of authorization, nor a redirect to sign in); any other gets the sign-in (no session:
303 to /login for a page, 401 under /api/) or the one 404 of what the asker may not see — never
200 with data, never a 500. Through the real ASGI application, on both backends."""
from __future__ import annotations

import re
import warnings
from typing import Any

import pytest
from starlette.routing import Mount, Route

from csat.engine import Engine
from csat.web import app as web_app
from csat.web.auth import link_csrf
from test_web import ORG_CHART

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from csat.web import create_app

PASSWORD = "correct horse battery"
SECRET = "authz-matrix-secret"
#: who asks: the policy's roles, a disabled account's session, and each account's bearer token
ASKERS = ("anonymous", "rater", "office", "manager", "auditor", "disabled",
          "bearer:office", "bearer:manager", "bearer:auditor")
ACCOUNTS = {"office": "qo", "manager": "ma", "auditor": "au", "disabled": "gone"}
#: the path parameters' real ids (a rater's token: the live link's for the rater, an unknown one else)
PARAMS = {"ruleset": "plant-50", "subject": "dept-0", "period": "2026-03", "round": "r1", "rater": "ws-1",
          "id": "rect-0"}
NO_LINK = "no-such-link-token-000000"
#: per route: other parameters, a query, a form (a POST's CSRF token is added)
CASES: dict[tuple[str, str], dict[str, Any]] = {
    ("GET", "/scores"): {"query": "period=2026-03"},
    ("GET", "/api/scores"): {"query": "period=2026-03"},
    ("GET", "/office/report"): {"query": "period=2026-03"},
    ("GET", "/static"): {"path": "/static/csat.css"},
    ("POST", "/login"): {"form": {"name": "qo", "password": PASSWORD}},
    ("POST", "/r/{token}"): {"form": {f"dept-0::{k}": "满意" for k in ("attitude", "response", "solution")}},
    ("POST", "/cases/{id}/progress"): {"form": {"status": "completed", "date": "2026-04-10"}},
    ("POST", "/account/password"): {"form": {"old": PASSWORD, "password": PASSWORD, "again": PASSWORD}},
    ("POST", "/office/rounds"): {"form": {"toml": 'id = "r-matrix"\nruleset = "plant-50"\nperiod = "2026-05"\n'
                                                  'due = "2099-05-28"\n[rule]\nraters = "workshop"\n'
                                                  'subjects = "department"\n'}},
    ("POST", "/office/rounds/{round}/{action:str}"): {"params": {"round": "r2", "action": "links"}},
    ("POST", "/office/accounts/{action}"): {"params": {"action": "enable"}, "form": {"name": "spare"}},
    ("POST", "/office/announce"): {"form": {"ruleset": "plant-50", "period": "2026-03", "date": "2026-04-03"}},
    ("POST", "/office/whatif"): {"form": {"ruleset": "plant-50", "from": "2026-03", "toml": "precision = 1\n"}},
    ("POST", "/office/adopt"): {"form": {"ruleset": "plant-50", "from": "2026-03", "toml": "precision = = 1"}},
}
#: routes after which the asker's session has ended (signing out; a new password moves it on)
ENDS_SESSION = {("POST", "/logout"), ("POST", "/account/password")}


def table(routes: list[Any]) -> list[tuple[str, str]]:
    """Every (method, path) of a route table (HEAD goes with GET; a mount is a GET)."""
    out = []
    for r in routes:
        if isinstance(r, Mount):
            out.append(("GET", r.path))
        elif isinstance(r, Route):
            out += [(m, r.path) for m in sorted(r.methods or {"GET"}) if m != "HEAD"]
        else:  # a kind of route the matrix does not know how to ask: declare it here first
            out.append(("?", repr(r)))
    return out


def undeclared(routes: list[Any]) -> list[tuple[str, str]]:
    return [key for key in table(routes) if key not in web_app.POLICY]


ROUTES = table(web_app.routes())


def expected(policy: tuple[str, ...], asker: str, path: str) -> str:
    """``allowed``, ``sign-in`` (no session) or ``hidden`` (the one 404)."""
    if asker == "disabled":  # a disabled account's session is no session
        asker = "anonymous"
    if asker.startswith("bearer:"):
        role = asker.split(":", 1)[1]
        if "bearer" in policy:
            return "allowed" if role in policy else "hidden"
        asker = "anonymous"  # a bearer token opens the JSON API only
    if asker == "rater" and "{token}" not in path:  # a rater has their link, and no session
        asker = "anonymous"
    if asker in policy:
        return "allowed"
    if asker in ("office", "manager", "auditor"):
        return "hidden"
    return "hidden" if "rater" in policy else "sign-in"  # a link's page offers no sign-in


# -- one store and one application per module and backend ---------------------------------------

class World:
    def __init__(self, app: Any, db: str, token: str, bearers: dict[str, str]):
        self.app, self.db, self.token, self.bearers = app, db, token, bearers
        self.sessions: dict[str, tuple[str, str]] = {}  # role: (cookie, CSRF token)
        self.nonce = 0

    def sign_in(self, role: str) -> tuple[str, str]:
        if role not in self.sessions:
            c = TestClient(self.app, follow_redirects=False)
            assert c.post("/login", data={"name": ACCOUNTS[role], "password": PASSWORD}).status_code == 303
            csrf = re.search(r'name="csrf" value="([^"]+)"', c.get("/scores").text).group(1)
            self.sessions[role] = (c.cookies.get("csat_session"), csrf)
        return self.sessions[role]

    def ask(self, method: str, path: str, asker: str) -> Any:
        case = CASES.get((method, path), {})
        token = self.token if asker == "rater" else NO_LINK
        params = {**PARAMS, "token": token, **case.get("params", {})}
        url = case.get("path") or re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: params[m.group(1)], path)
        if case.get("query"):
            url += "?" + case["query"]
        c = TestClient(self.app, follow_redirects=False, raise_server_exceptions=False)
        headers, csrf = {}, None
        if asker.startswith("bearer:"):
            headers["authorization"] = f"Bearer {self.bearers[asker.split(':', 1)[1]]}"
        elif asker in ACCOUNTS:
            cookie, csrf = self.sign_in(asker)
            c.cookies.set("csat_session", cookie)
        if method == "GET":
            return c.get(url, headers=headers)
        if "{token}" in path:  # a rater's form: its link's token, and the page's nonce
            csrf = link_csrf(SECRET, token)
        self.nonce += 1
        form = {**case.get("form", {}), "nonce": f"n{self.nonce}", **({"csrf": csrf} if csrf else {})}
        r = c.post(url, data=form, headers=headers)
        if (method, path) in ENDS_SESSION and asker in ("office", "manager", "auditor"):
            self.sessions.pop(asker)  # signed out: the next ask signs in again
        return r


@pytest.fixture(scope="module", params=("sqlite", "postgresql"))
def world(request, tmp_path_factory) -> World:
    if request.param == "sqlite":
        db = str(tmp_path_factory.mktemp("authz") / "csat.db")
    else:
        db = request.getfixturevalue("pg_server").database()
    with Engine.open(db) as e:
        e.append(ORG_CHART)
        e.append([{"type": "round", "id": rid, "ruleset": "plant-50", "period": "2026-03", "due": "2099-03-28",
                   "rule": {"raters": "workshop", "subjects": "department"}} for rid in ("r1", "r2")]
                 + [{"type": "response", "id": f"seed-{d}", "ruleset": "plant-50", "period": "2026-03",
                     "subject": d, "rater": "ws-2", "answers": {"attitude": "满意", "response": "一般",
                                                                "solution": "满意"}} for d in ("dept-0", "dept-3")]
                 + [{"type": "rectification", "id": "rect-0", "subject": "dept-0", "period": "2026-03",
                     "issue": "回复慢", "due": "2026-04-15"}])
        for name, role, unit in (("qo", "office", None), ("ma", "manager", "div-a"), ("au", "auditor", None),
                                 ("gone", "manager", "div-a"), ("spare", "auditor", None)):
            e.accounts.add(name, role, PASSWORD, unit)
        token = next(link["token"] for link in e.round_links("r1") if link["rater"] == "ws-1")
        bearers = {role: e.accounts.new_token(ACCOUNTS[role]) for role in ("office", "manager", "auditor")}
    app = create_app(db, secret=SECRET, engines=2)
    w = World(app, db, token, bearers)
    w.sign_in("disabled")  # signed in, then disabled: its cookie is kept
    with Engine.open(db) as e:
        e.accounts.set_disabled("gone")
    yield w
    app.state.writer.close()
    app.state.engines.close()


# -- the tests ----------------------------------------------------------------------------------

def test_every_route_declares_its_policy(world):
    served = table(world.app.routes)
    assert served == ROUTES  # the application serves the route table the matrix was generated from
    missing = undeclared(world.app.routes)
    assert not missing, f"routes without a declared policy in csat.web.app.POLICY: {missing}"
    stale = set(web_app.POLICY) - set(served)
    assert not stale, f"policies of routes that are no more: {stale}"
    for key, roles in web_app.POLICY.items():
        assert roles and set(roles) <= set(web_app.ROLES), key


def test_a_route_without_a_policy_is_caught():
    """The check itself: a route added to the table and not declared is named."""
    async def new(request):  # pragma: no cover - never asked
        raise AssertionError

    extra = [*web_app.routes(), Route("/new/{thing}", new, methods=["GET", "POST"])]
    assert undeclared(extra) == [("GET", "/new/{thing}"), ("POST", "/new/{thing}")]


@pytest.mark.parametrize("method,path", ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_the_matrix(world, method, path):
    policy = web_app.POLICY.get((method, path))
    assert policy is not None, f"{method} {path}: no declared policy in csat.web.app.POLICY"
    wrong = []
    for asker in ASKERS:
        want = expected(policy, asker, path)
        r = world.ask(method, path, asker)
        location = r.headers.get("location", "")
        if want == "allowed":
            ok = r.status_code < 500 and r.status_code not in (401, 403, 404, 405) \
                and not (r.is_redirect and location.startswith("/login?next="))
        elif want == "hidden":
            ok = r.status_code == 404 and "部门" not in r.text and "dept-" not in r.text
        elif path.startswith("/api/"):
            ok = r.status_code == 401
        else:
            ok = r.status_code == 303 and location.startswith("/login")
        if not ok:
            wrong.append((asker, want, r.status_code, location or r.text[:120]))
    assert not wrong, f"{method} {path}: {wrong}"
