"""The web front attacked (issue 31, items 8, 9, 18 and the status codes of 14), mostly against a
running `csat serve` on 127.0.0.1: a sign-in posted from another site is refused; the sign-in
limits hold per address across names, a forged ``X-Forwarded-For`` resets nothing, the real user
still signs in from another address, forwarded addresses count only from the proxies named
(``--forwarded-allow-ips``); a burst of sign-ins keeps a rater's page quick and the server's
memory bounded; `csat serve --workers 2` leaves nothing behind after a ``kill -9``. Then, through
the real application in this process: a period that cannot be is a 400, a body over 1 MiB sent
without its length a 413, ``next`` after signing in keeps its query and never leads to a POST-only
route, and a failure is a page with the security headers, not a traceback."""
from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import bench_web
import httpx
import pytest

from starlette.responses import PlainTextResponse
from starlette.routing import Route

from csat.engine import Engine

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from csat.web import create_app
from csat.web import auth

PASSWORD = "correct horse battery"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def store(tmp_path: Path) -> tuple[str, str]:
    """A SQLite store with an office account ``qo`` and an open round; its first rater's token."""
    db = str(tmp_path / "csat.db")
    with Engine.open(db) as e:
        e.append([{"type": "unit", "id": "ws-1", "kind": "workshop"}]
                 + [{"type": "unit", "id": f"dept-{i}", "kind": "department", "name": f"部门{i}"} for i in range(2)])
        e.append([{"type": "round", "id": "r1", "ruleset": "plant-50", "period": "2026-03", "due": "2099-03-28",
                   "rule": {"raters": "workshop", "subjects": "department"}}])
        e.accounts.add("qo", "office", PASSWORD)
        (link,) = e.round_links("r1")
    return db, link["token"]


@contextlib.contextmanager
def serve(db: str, *args: str) -> Iterator[tuple[subprocess.Popen, str]]:
    """`csat serve` on 127.0.0.1 in a process of its own, until the block ends."""
    proc, base = bench_web.serve(db, 1, *args, secret="attacks", seconds=30, stderr=subprocess.DEVNULL)
    try:
        yield proc, base
    finally:
        bench_web.stop(proc)


def sign_in(base: str, name: str, password: str, headers: dict[str, str] | None = None,
            source: str | None = None) -> httpx.Response:
    """One sign-in, from ``source`` (a loopback address of this host) when given."""
    transport = httpx.HTTPTransport(local_address=source) if source else None
    with httpx.Client(base_url=base, transport=transport, timeout=30) as c:
        return c.post("/login", data={"name": name, "password": password}, headers=headers or {})


# -- item 8: login CSRF ---------------------------------------------------------------------------

def test_a_sign_in_posted_from_another_site_is_refused(store):
    db, _ = store
    with serve(db) as (_, base):
        host = base.removeprefix("http://")
        for headers in ({"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"},
                        {"Sec-Fetch-Site": "same-site"},
                        {"Origin": "https://evil.example"},  # a browser sending no Sec-Fetch-Site
                        {"Origin": "null"}):  # a sandboxed frame, or a page without a referrer
            r = sign_in(base, "qo", PASSWORD, headers)
            assert r.status_code == 403, headers
            assert "another site" in r.text and "csat_session" not in r.headers.get("set-cookie", "")
        page = httpx.get(f"{base}/login")  # its own form's POST carries this site's Origin
        assert page.headers["referrer-policy"] == "same-origin"
        for headers in ({"Sec-Fetch-Site": "same-origin", "Origin": base}, {"Origin": base}, {"Host": host}, {}):
            assert sign_in(base, "qo", PASSWORD, headers).status_code == 303, headers


# -- item 9: the sign-in limits -----------------------------------------------------------------

def test_the_sign_in_limits_hold_per_address_and_forwarded_headers_only_from_named_proxies(store):
    db, _ = store
    with serve(db) as (_, base):
        with ThreadPoolExecutor(4) as pool:  # 30 names from one address, a few at a time
            codes = Counter(pool.map(lambda i: sign_in(base, f"name-{i}", "wrong password!").status_code, range(30)))
        assert codes == {401: 20, 429: 10}  # 20 failures an address in 5 minutes, whatever the names
        refused = sign_in(base, "qo", PASSWORD)
        assert refused.status_code == 429 and "from your address" in refused.text
        assert refused.headers["retry-after"]
        forged = sign_in(base, "qo", PASSWORD, {"X-Forwarded-For": "10.9.8.7"})  # not believed by default
        assert forged.status_code == 429
        assert sign_in(base, "qo", PASSWORD, source="127.0.0.2").status_code == 303  # the real user, elsewhere
    with serve(db, "--forwarded-allow-ips", "127.0.0.1") as (_, base):  # behind a proxy on this host
        via = {"X-Forwarded-For": "10.0.0.1"}
        codes = [sign_in(base, "qo", "wrong password!", via).status_code for _ in range(6)]
        assert codes == [401] * 5 + [429]  # 5 failures an account from one address
        assert sign_in(base, "qo", PASSWORD, via).status_code == 429  # that address, that account: wait
        assert sign_in(base, "qo", PASSWORD, {"X-Forwarded-For": "10.0.0.2"}).status_code == 303


def _status(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])  # kB
    raise AssertionError(f"no {field} for {pid}")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the server's memory from /proc")
def test_a_burst_of_sign_ins_keeps_a_rater_s_page_quick_and_memory_bounded(store):
    db, token = store
    with serve(db) as (proc, base):
        page_times: list[float] = []

        async def burst() -> list[int]:
            async with httpx.AsyncClient(base_url=base, timeout=60) as rater:
                async def one(i: int) -> int:  # 60 sign-ins at once, each from an address of its own
                    transport = httpx.AsyncHTTPTransport(local_address=f"127.0.1.{i + 1}")
                    async with httpx.AsyncClient(base_url=base, timeout=60, transport=transport) as c:
                        r = await c.post("/login", data={"name": f"name-{i % 7}", "password": "wrong password!"})
                    return r.status_code

                async def pages() -> None:
                    await asyncio.sleep(0.3)  # the sign-ins are queueing by now
                    for _ in range(5):
                        t = time.perf_counter()
                        assert (await rater.get(f"/r/{token}")).status_code == 200
                        page_times.append(time.perf_counter() - t)
                        await asyncio.sleep(0.2)

                codes, _ = await asyncio.gather(asyncio.gather(*(one(i) for i in range(60))), pages())
                return list(codes)

        codes = asyncio.run(asyncio.wait_for(burst(), 55))
        peak = _status(proc.pid, "VmHWM") / 1024
    assert set(codes) <= {401, 503} and 401 in codes, codes  # refused as busy, never an error
    assert max(page_times) < 5.0, page_times
    assert peak < 400, f"the server's memory peaked at {peak:.0f} MiB"


def test_a_busy_server_refuses_addresses_that_failed_but_not_the_real_user(store, monkeypatch):
    """Past the server's budget of failures, an address that failed lately is refused; one that
    has not still signs in (through the real application; a small budget for the test)."""
    db, _ = store
    monkeypatch.setattr(auth, "GLOBAL_LIMIT", 3, raising=False)
    app = create_app(db, secret="s", engines=2)

    def at(address: str) -> TestClient:
        return TestClient(app, follow_redirects=False, client=(address, 50000))

    for i in range(3):
        assert at(f"10.2.0.{i}").post("/login", data={"name": "qo", "password": "wrong!"}).status_code == 401
    again = at("10.2.0.0").post("/login", data={"name": "qo", "password": PASSWORD})
    assert again.status_code == 429 and "on this server" in again.text
    assert at("10.2.0.9").post("/login", data={"name": "qo", "password": PASSWORD}).status_code == 303


def test_the_limit_s_tables_are_bounded(monkeypatch):
    monkeypatch.setattr(auth, "MAX_ADDRESSES", 50)
    monkeypatch.setattr(auth, "MAX_PAIRS", 80)
    limit = auth.LoginLimit()
    for i in range(2000):
        assert limit.begin((f"10.3.{i // 250}.{i % 250}", "x" * 10_000 + str(i))) is None
    assert len(limit._addresses) <= 50 and len(limit._pairs) <= 80
    assert all(len(name) <= 128 for _, name in limit._pairs)
    assert "10.3.7.249" in limit._addresses and "10.3.0.0" not in limit._addresses  # the oldest forgotten
    assert limit.begin(("10.3.8.0", "someone")) is None  # past the server's budget, a new address still may


# -- item 18: workers end with `csat serve` ------------------------------------------------------

def _children(pid: int) -> set[int]:
    out: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):
            out |= {int(p) for p in (task / "children").read_text().split()}
    return out


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return b""


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the workers in /proc")
def test_serve_s_workers_end_when_it_is_killed(store):
    db, _ = store
    with serve(db, "--workers", "2") as (proc, base):
        deadline = time.monotonic() + 20
        while True:  # the two workers (and the resource tracker)
            children = _children(proc.pid)
            if sum(b"spawn_main" in _cmdline(p) for p in children) >= 2:
                break
            assert time.monotonic() < deadline, children
            time.sleep(0.1)
        port = int(base.rpartition(":")[2])
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        deadline = time.monotonic() + 5
        while left := [p for p in children if _running(p)]:
            assert time.monotonic() < deadline, f"still running after the parent's kill -9: {left}"
            time.sleep(0.1)
    with socket.socket() as s:  # nothing listens on the port any more
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))


# -- item 14: status codes and pages -----------------------------------------------------------

@pytest.fixture
def app(store):
    return create_app(store[0], secret="s", engines=2)


def _signed_in(app) -> TestClient:
    c = TestClient(app, follow_redirects=False)
    assert c.post("/login", data={"name": "qo", "password": PASSWORD}).status_code == 303
    return c


def test_a_period_that_cannot_be_is_a_400_with_the_reason(app):
    r = _signed_in(app).get("/scores?period=2026-99")
    assert r.status_code == 400 and "2026-99" in r.text and "YYYY-MM" in r.text


def test_a_body_over_the_limit_sent_without_its_length_is_a_413(app, store):
    c = _signed_in(app)

    def chunks() -> Iterator[bytes]:
        for _ in range(3):
            yield b"x" * (1 << 19) + b"&"
        yield b"name=qo"

    async def careless(request):  # a handler that takes any failure to read for a malformed body
        try:
            await request.body()
        except Exception:  # noqa: BLE001
            return PlainTextResponse("malformed", 400)
        return PlainTextResponse("read")

    app.router.routes.insert(0, Route("/careless", careless, methods=["POST"]))
    for path in ("/login", f"/r/{store[1]}", "/careless"):
        r = c.post(path, content=chunks(), headers={"content-type": "application/x-www-form-urlencoded"})
        assert r.status_code == 413, (path, r.status_code)
        assert "1 MiB" in r.text and "content-security-policy" in r.headers
    assert c.post("/careless", content=b"small").text == "read"


def test_next_after_signing_in_keeps_its_query_and_leads_only_to_a_page(app):
    c = TestClient(app, follow_redirects=False)
    to_login = c.get("/scores?period=2026-03&x=1")
    assert to_login.status_code == 303
    form = c.get(to_login.headers["location"]).text
    action = form.split('action="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    r = c.post(action, data={"name": "qo", "password": PASSWORD})
    assert r.status_code == 303 and r.headers["location"] == "/scores?period=2026-03&x=1"
    for nxt in ("/logout", "/office/rounds/r1/close", "//evil.example/", "/\\evil.example", "https://evil.example/",
                "/nowhere", "/login"):
        r = TestClient(app, follow_redirects=False).post("/login", params={"next": nxt},
                                                          data={"name": "qo", "password": PASSWORD})
        assert r.status_code == 303 and r.headers["location"] == "/", nxt
    closed = TestClient(app, follow_redirects=False).post("/office/rounds/r1/close", data={"csrf": "x"})
    assert closed.status_code == 303  # a POST without a session: sign in, then the home page
    r = TestClient(app, follow_redirects=False).post(closed.headers["location"],
                                                      data={"name": "qo", "password": PASSWORD})
    assert r.headers["location"] == "/"


def test_a_failure_is_a_page_with_the_security_headers(app):
    def boom(request):
        raise RuntimeError("a bug: secret detail /srv/csat/engine.py line 12")

    app.router.routes.insert(0, Route("/boom", boom))
    app.router.routes.insert(0, Route("/api/boom", boom))
    c = TestClient(app, raise_server_exceptions=False)
    page = c.get("/boom")
    assert page.status_code == 500 and page.headers["content-type"].startswith("text/html")
    assert "went wrong" in page.text and "secret detail" not in page.text and "Traceback" not in page.text
    api = c.get("/api/boom")
    assert api.status_code == 500 and "went wrong" in api.json()["error"] and "secret" not in api.text
    for r in (page, api):
        for header in ("content-security-policy", "x-frame-options", "x-content-type-options", "referrer-policy"):
            assert header in r.headers, header
