"""The ASGI application: routes, middleware, templates.

:func:`create_app` wires :mod:`csat.web.pages` (HTML) and :mod:`csat.web.api` (JSON under
``/api/``) behind three layers: a body limit (1 MiB; 413), the signed session cookie, and the
security headers every response carries (a CSP without inline scripts, no framing, no sniffing,
no referrer), and ``Server-Timing`` (the time the application spent on it, queueing included).
"""
from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from csat.engine import EnginePool

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
        seen = 0

        async def limited() -> Any:  # a body sent without a length is counted as it comes
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > MAX_BODY:
                raise HTTPException(413, "request body too large (at most 1 MiB)")
            return message

        started = time.perf_counter()

        async def with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":  # Server-Timing: the time spent here, in ms
                spent = f"app;dur={(time.perf_counter() - started) * 1000:.1f}".encode()
                message["headers"] = [*message.get("headers", []), *HEADERS, (b"server-timing", spent)]
            await send(message)

        await self.app(scope, limited, with_headers)


def _str_headers() -> list[tuple[str, str]]:
    return [(k.decode(), v.decode()) for k, v in HEADERS]


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": exc.detail}, exc.status_code)
    if exc.status_code == 401:
        return RedirectResponse(f"/login?next={request.url.path}", 303)
    return request.app.state.templates.TemplateResponse(
        request, "error.html", {"status": exc.status_code, "detail": exc.detail}, status_code=exc.status_code)


def create_app(target: str, *, secret: str | None = None, https: bool = False, engines: int = 8) -> Starlette:
    """The web front on the store ``target`` (a SQLite file or a ``postgresql://`` URL).

    :param secret: signs the session cookies and the raters' form tokens; default
        ``$CSAT_SECRET``, else a random one (sessions then end when the server restarts).
    :param https: mark the session cookie ``Secure`` (behind HTTPS, as in production).
    :param engines: how many engines serve requests at once.
    """
    secret = secret or os.environ.get("CSAT_SECRET") or secrets.token_urlsafe(32)
    routes = [*pages.ROUTES, *office.ROUTES, *downloads.ROUTES, *api.ROUTES, Route("/openapi.json", api.openapi),
              Mount("/static", StaticFiles(directory=HERE / "static"), name="static")]
    engines_ = EnginePool(target, engines)
    writer = Writer(target, engines_.rulesets)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        writer.close()
        engines_.close()

    app = Starlette(routes=routes, exception_handlers={HTTPException: _http_error}, lifespan=lifespan,
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
    they share ``$CSAT_SECRET``, so a session signed by one is good at every other)."""
    return create_app(os.environ["CSAT_DB"], https=os.environ.get("CSAT_HTTPS") == "1")
