"""The ASGI application: routes, middleware, templates.

:func:`create_app` wires :mod:`csat.web.pages` (HTML) and :mod:`csat.web.api` (JSON under
``/api/``) behind three layers: a body limit (1 MiB; 413, whether the body says its length or
not), the signed session cookie, and the security headers every response carries — the 500 page
too (a CSP without inline scripts, no framing, no sniffing, no referrer unless the page says
otherwise), and ``Server-Timing`` (the time the application spent on it, queueing included).
"""
from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from csat.engine import EnginePool, end_with_parent

from . import api, downloads, office, pages
from .writer import Writer

HERE = Path(__file__).parent
MAX_BODY = 1 << 20
HEADERS = [
    (b"content-security-policy", b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                 b"form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
]


class Guard:
    """ASGI middleware: refuse bodies over :data:`MAX_BODY` (413) before reading them, and add
    the security headers to every response."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            await JSONResponse({"error": "request body too large (at most 1 MiB)"}, 413,
                               headers=dict(_str_headers()))(scope, receive, send)
            return
        seen, over, swallow = 0, False, False

        async def limited() -> Any:  # a body sent without a length is counted as it comes
            nonlocal seen, over
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > MAX_BODY:
                over = True
                raise HTTPException(413, "request body too large (at most 1 MiB)")
            return message

        started = time.perf_counter()

        async def with_headers(message: dict) -> None:
            nonlocal swallow
            if swallow:  # the answer of a handler that took the body's end for a malformed body
                return
            if message["type"] == "http.response.start":
                if over and message["status"] != 413:
                    swallow = True
                    await JSONResponse({"error": "request body too large (at most 1 MiB)"}, 413,
                                       headers=dict(_str_headers()))(scope, receive, send)
                    return
                own = {k.lower() for k, _ in message.get("headers", [])}  # a page's own policy stands
                spent = f"app;dur={(time.perf_counter() - started) * 1000:.1f}".encode()  # Server-Timing, in ms
                message["headers"] = [*message.get("headers", []), *((k, v) for k, v in HEADERS if k not in own),
                                      (b"server-timing", spent)]
            await send(message)

        await self.app(scope, limited, with_headers)


def _str_headers() -> list[tuple[str, str]]:
    return [(k.decode(), v.decode()) for k, v in HEADERS]


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": exc.detail}, exc.status_code)
    if exc.status_code == 401:  # sign in, then back here (the sign-in page keeps only a page a GET answers)
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(here, safe='')}", 303)
    return request.app.state.templates.TemplateResponse(
        request, "error.html", {"status": exc.status_code, "detail": exc.detail}, status_code=exc.status_code)


async def _server_error(request: Request, exc: Exception) -> Response:
    """A failure of the application: one line to the user (the traceback goes to the server's
    log), with the security headers (this answer is sent outside :class:`Guard`)."""
    detail = "something went wrong on the server: try again, or tell the quality office"
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": detail}, 500, headers=dict(_str_headers()))
    try:
        page = request.app.state.templates.TemplateResponse(request, "error.html", {"status": 500, "detail": detail},
                                                            status_code=500)
    except Exception:  # noqa: BLE001 — the templates themselves failing: the line alone
        page = Response(detail, 500, media_type="text/plain; charset=utf-8")
    page.headers.update(dict(_str_headers()))
    return page


#: every role a request may come as (:data:`POLICY`): ``anonymous`` (no session), ``rater`` (the
#: holder of a rater's link: its token in the path is the credential), a signed-in ``office``,
#: ``manager`` or ``auditor``, and ``bearer`` (the API: an account's ``Authorization: Bearer``
#: token stands for its session, within the account's role named beside it)
ROLES = ("anonymous", "rater", "office", "manager", "auditor", "bearer")
EVERYONE = ("anonymous", "rater", "office", "manager", "auditor")
_SIGNED_IN = ("office", "manager", "auditor")

#: who may ask each route (method, path as the route table spells it) — the others are refused
#: with a sign-in (no session: 303 to /login, 401 under /api/) or the one 404 of what one may not
#: see. Each handler checks its own (:func:`csat.web.auth.require`); tests/test_authz_matrix.py
#: plays every route of :func:`routes` against every role, and fails a route not declared here.
POLICY: dict[tuple[str, str], tuple[str, ...]] = {
    # signing in and out; what anyone may read
    ("GET", "/"): _SIGNED_IN,  # to one's desk (no session: to the sign-in page)
    ("GET", "/login"): EVERYONE, ("POST", "/login"): EVERYONE, ("POST", "/logout"): EVERYONE,
    ("GET", "/openapi.json"): EVERYONE, ("GET", "/static"): EVERYONE,
    # a rater: their link only
    ("GET", "/r/{token}"): ("rater",), ("POST", "/r/{token}"): ("rater",),
    # figures (a manager: their unit's, month by month)
    ("GET", "/scores"): _SIGNED_IN, ("GET", "/explain/{ruleset}/{subject}/{period}"): _SIGNED_IN,
    ("GET", "/trend/{ruleset}/{subject}"): _SIGNED_IN, ("GET", "/cases"): _SIGNED_IN,
    ("POST", "/cases/{id}/progress"): ("office", "manager"),
    ("POST", "/account/password"): _SIGNED_IN,
    # rounds: the office changes, the auditor reads
    ("GET", "/rounds"): ("office", "auditor"), ("GET", "/rounds/{round}"): ("office", "auditor"),
    ("POST", "/office/rounds"): ("office",), ("POST", "/office/rounds/{round}/{action:str}"): ("office",),
    ("GET", "/rounds/{round}/forms"): ("office",), ("GET", "/rounds/{round}/forms/{rater}"): ("office",),
    # the office's desk
    ("GET", "/office"): ("office", "auditor"), ("POST", "/office/verify"): ("office", "auditor"),
    ("GET", "/office/report"): ("office", "auditor"),
    ("POST", "/office/accounts/{action}"): ("office",), ("POST", "/office/announce"): ("office",),
    ("POST", "/office/whatif"): ("office",), ("POST", "/office/adopt"): ("office",),
    # the JSON API: a session or a bearer token
    ("GET", "/api/scores"): (*_SIGNED_IN, "bearer"),
    ("GET", "/api/explain/{ruleset}/{subject}/{period}"): (*_SIGNED_IN, "bearer"),
    ("GET", "/api/rounds"): ("office", "auditor", "bearer"),
    ("GET", "/api/rounds/{round}"): ("office", "auditor", "bearer"),
}


def routes() -> list[BaseRoute]:
    """The route table: the pages, the office's desk, the downloads, the JSON API, the static files
    (each route's (method, path) declared in :data:`POLICY`)."""
    return [*pages.ROUTES, *office.ROUTES, *downloads.ROUTES, *api.ROUTES, Route("/openapi.json", api.openapi),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static")]


def create_app(target: str, *, secret: str | None = None, https: bool = False, engines: int = 8) -> Starlette:
    """The web front on the store ``target`` (a SQLite file or a ``postgresql://`` URL).

    :param secret: signs the session cookies and the raters' form tokens; default
        ``$CSAT_SECRET``, else a random one (sessions then end when the server restarts).
    :param https: mark the session cookie ``Secure`` (behind HTTPS, as in production).
    :param engines: how many engines serve requests at once.
    """
    secret = secret or os.environ.get("CSAT_SECRET") or secrets.token_urlsafe(32)
    engines_ = EnginePool(target, engines)
    writer = Writer(target, engines_.rulesets)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        writer.close()
        engines_.close()

    app = Starlette(routes=routes(), lifespan=lifespan,
                    exception_handlers={HTTPException: _http_error, Exception: _server_error},
                    middleware=[Middleware(Guard),
                                Middleware(SessionMiddleware, secret_key=secret, session_cookie="csat_session",
                                           max_age=8 * 3600, same_site="strict", https_only=https)])
    app.state.engines = engines_
    app.state.writer = writer
    app.state.secret = secret
    app.state.templates = Jinja2Templates(directory=HERE / "templates")
    app.state.login_limit = pages.LoginLimit()
    app.state.questionnaires = {}  # (rule set, month) -> (until, questionnaire): raters' pages share one
    return app


def app_from_env() -> Starlette:
    """The application of ``$CSAT_DB`` (``csat serve --workers N`` starts one per worker process;
    they share ``$CSAT_SECRET``, so a session signed by one is good at every other). A worker
    ends with the ``csat serve`` that started it (``$CSAT_SERVE_PID``), a ``kill -9`` too: none
    is left holding the port."""
    parent = os.environ.get("CSAT_SERVE_PID", "")
    if parent.isdigit():
        end_with_parent(int(parent))
    return create_app(os.environ["CSAT_DB"], https=os.environ.get("CSAT_HTTPS") == "1")
