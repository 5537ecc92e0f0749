"""Who is asking, and what they may see: sessions, roles, CSRF, the login limit (the engines are
an :class:`~csat.engine.EnginePool`).

- **Sessions**: Starlette's signed cookie (itsdangerous), ``HttpOnly``, ``SameSite=Strict``,
  ``Secure`` behind HTTPS, 8 hours. The account is read again on every request: a disabled
  account or a changed role takes effect at once; a forged or stale cookie is no session.
- **CSRF**: every form that changes something carries the session's token (raters' forms: a
  token derived from their link); a POST without it, or with another, is refused (403).
- **Login limit**: 5 failed attempts per address and account name in 5 minutes, then 429.
- **Scope**: ``office`` and ``auditor`` see every unit; a ``manager`` their unit and the units
  below it (as of the period asked about); raters only what their link opens.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import defaultdict, deque
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request

from csat.engine import Engine, periods

READERS = ("office", "manager", "auditor")
LOGIN_LIMIT, LOGIN_WINDOW = 5, 300.0


class LoginLimit:
    """Failed logins per (address, name): after :data:`LOGIN_LIMIT` in :data:`LOGIN_WINDOW`
    seconds, further attempts are refused until the window passes."""

    def __init__(self) -> None:
        self._failed: dict[tuple[str, str], deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def blocked(self, who: tuple[str, str]) -> bool:
        with self._lock:
            q = self._failed[who]
            while q and q[0] < time.monotonic() - LOGIN_WINDOW:
                q.popleft()
            return len(q) >= LOGIN_LIMIT

    def failed(self, who: tuple[str, str]) -> None:
        with self._lock:
            self._failed[who].append(time.monotonic())


def not_found() -> HTTPException:
    """The one refusal for something the asker may not see, or that does not exist."""
    return HTTPException(404, "not found")


def account(request: Request) -> dict[str, Any] | None:
    """The signed-in account (read again now), or None."""
    name = request.session.get("user")
    if not isinstance(name, str):
        return None
    with request.app.state.engines.borrow() as engine:
        acct = engine.accounts.get(name)
    if acct is None or acct["disabled"] or request.session.get("role") != [acct["role"], acct["unit"]]:
        request.session.clear()  # stale: the account went, was disabled, or changed role
        return None
    return acct


def require(request: Request, *roles: str, bearer: bool = False) -> dict[str, Any]:
    """The account, when it has one of ``roles``; otherwise 401 (no session) or 404. ``bearer``:
    an ``Authorization: Bearer`` API token may stand for the session (the JSON API)."""
    auth = request.headers.get("authorization", "") if bearer else ""
    if auth.lower().startswith("bearer "):
        with request.app.state.engines.borrow() as engine:
            acct = engine.accounts.by_token(auth[7:].strip())
    else:
        acct = account(request)
    if acct is None:
        raise HTTPException(401, "sign in, or send Authorization: Bearer <token>" if bearer else "sign in")
    if acct["role"] not in roles:
        raise not_found()
    return acct


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = request.session["csrf"] = secrets.token_urlsafe(24)
    return token


def check_csrf(request: Request, form: Any) -> None:
    """A state-changing form of a session carries its CSRF token."""
    given, expected = form.get("csrf"), request.session.get("csrf")
    if not isinstance(given, str) or not isinstance(expected, str) or not hmac.compare_digest(given, expected):
        raise HTTPException(403, "the form is stale or forged: reload the page and try again")


def link_csrf(secret: str, token: str) -> str:
    """A rater's form's CSRF token: bound to their link, by the server's secret."""
    return hmac.new(secret.encode(), f"link:{token}".encode(), hashlib.sha256).hexdigest()[:32]


def check_link_csrf(request: Request, form: Any, token: str) -> None:
    given = form.get("csrf")
    if not isinstance(given, str) or not hmac.compare_digest(given, link_csrf(request.app.state.secret, token)):
        raise HTTPException(403, "the form is stale or forged: reload the page and try again")


def in_scope(engine: Engine, acct: dict[str, Any], subject: str, period: str) -> bool:
    """May the account see ``subject``'s figures of ``period``?"""
    if acct["role"] in ("office", "auditor"):
        return True
    unit = acct["unit"]
    if subject == unit:
        return True
    try:
        month = periods.months_of(period)[-1]  # a quarter's or a year's chart: as of its last month
        (row,) = engine.units(as_of=month, unit=subject)
    except Exception:  # noqa: BLE001 — no such period or unit: nothing a manager may see
        return False
    return unit in row["chain"]
