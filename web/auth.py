"""Who is asking, and what they may see: sessions, roles, CSRF, the sign-in limits (the engines
are an :class:`~csat.engine.EnginePool`).

- **Sessions**: Starlette's signed cookie (itsdangerous), ``HttpOnly``, ``SameSite=Strict``,
  ``Secure`` behind HTTPS, 8 hours. The account is read again on every request: a disabled
  account or a changed role takes effect at once; a forged or stale cookie is no session. The
  cookie carries the account's session version: signing out (everywhere), a role changed,
  disabling, a new password and removal move it on, ending every session signed in before.
- **CSRF**: every form that changes something carries the session's token (raters' forms: a
  token derived from their link); a POST without it, or with another, is refused (403). The
  sign-in form has no session yet: a sign-in a browser sends from another site (its
  ``Sec-Fetch-Site``, else its ``Origin``) is refused (403) — another site cannot sign a
  visitor in as someone else.
- **Sign-in limits** (:class:`LoginLimit`, in each worker process): an attempt counts as failed
  from the moment it is made until its password is found right. Per address: 5 failures for
  one account name and 20 for all names in 5 minutes, then 429 from that address only. Over
  the whole server: past 60 failures in a minute, an address that has failed lately is refused
  (429) while one that has not still signs in — failures never lock the real user out
  everywhere. At most 2 password checks (argon2, 64 MiB each) run at once; an attempt waits
  for one up to 3 seconds, else 503 "busy". The tables are bounded (the least recently failing
  addresses are forgotten first). The address is the connection's, or the one a proxy named in
  ``csat serve --forwarded-allow-ips`` forwards.
- **Scope**: ``office`` and ``auditor`` see every unit; a ``manager`` their unit and the units
  below it, month by month (a unit that moved is the old unit's before the move, the new one's
  after; a quarter across the move is neither's); raters only what their link opens.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict, deque
from typing import Any
from urllib.parse import urlsplit

from starlette.exceptions import HTTPException
from starlette.requests import Request

from csat.engine import Engine, periods

READERS = ("office", "manager", "auditor")
#: failures per (address, account name), per address (every name), in the window (seconds)
LOGIN_LIMIT, ADDRESS_LIMIT, LOGIN_WINDOW = 5, 20, 300.0
#: failures a minute over all addresses, past which an address that has failed lately is refused
GLOBAL_LIMIT, GLOBAL_WINDOW = 60, 60.0
#: password checks at once (each holds argon2's 64 MiB), and how long an attempt waits for one
HASHING, HASH_WAIT = 2, 3.0
#: how many addresses and (address, name) pairs the limit remembers
MAX_ADDRESSES, MAX_PAIRS = 10_000, 20_000


class LoginLimit:
    """Failed sign-ins, per (address, name), per address and over all addresses, and the cap on
    password checks running at once (see the module's description)."""

    def __init__(self) -> None:
        self._pairs: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()
        self._addresses: OrderedDict[str, deque[float]] = OrderedDict()
        self._all: deque[float] = deque(maxlen=GLOBAL_LIMIT)
        self._lock = threading.Lock()
        self._hashing = threading.Semaphore(HASHING)

    def begin(self, who: tuple[str, str]) -> str | None:
        """Count an attempt of ``who`` (address, name) as failed until :meth:`passed`; or, when
        a budget is spent, the one line why it is refused (and nothing counted)."""
        address, name = who[0], who[1][:128]
        now = time.monotonic()
        with self._lock:
            pair, mine = self._pairs.get((address, name)), self._addresses.get(address)
            if _full(pair, now - LOGIN_WINDOW):
                return "too many failed sign-ins to this account from your address: wait a few minutes"
            if _full(mine, now - LOGIN_WINDOW):
                return "too many failed sign-ins from your address: wait a few minutes"
            if _full(self._all, now - GLOBAL_WINDOW) and mine and mine[-1] >= now - LOGIN_WINDOW:
                return "too many failed sign-ins on this server just now: wait a minute and try again"
            _count(self._pairs, (address, name), LOGIN_LIMIT, MAX_PAIRS, now)
            _count(self._addresses, address, ADDRESS_LIMIT, MAX_ADDRESSES, now)
            self._all.append(now)
        return None

    def passed(self, who: tuple[str, str]) -> None:
        """The attempt :meth:`begin` counted did not fail (its password was right, or it was never
        checked): take one failure back."""
        address, name = who[0], who[1][:128]
        with self._lock:
            for q in (self._pairs.get((address, name)), self._addresses.get(address), self._all):
                if q:
                    q.pop()

    async def hashing(self) -> bool:
        """Wait (up to :data:`HASH_WAIT` seconds, not blocking the event loop) for one of the
        :data:`HASHING` password checks; False when none came free. :meth:`done` gives it back."""
        deadline = time.monotonic() + HASH_WAIT
        while not self._hashing.acquire(blocking=False):
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    def done(self) -> None:
        self._hashing.release()


def _full(q: deque[float] | None, since: float) -> bool:
    """Whether ``q`` (capped at its limit) holds its limit of failures, all since ``since``."""
    return q is not None and q.maxlen is not None and len(q) >= q.maxlen and q[0] >= since


def _count(table: OrderedDict[Any, deque[float]], key: Any, limit: int, most: int, now: float) -> None:
    q = table.get(key)
    if q is None:
        while len(table) >= most:  # full: forget the one that failed least recently
            table.popitem(last=False)
        q = table[key] = deque(maxlen=limit)
    table.move_to_end(key)
    q.append(now)


def cross_site(request: Request) -> bool:
    """Whether a browser sent this from another site's page (login CSRF): its ``Sec-Fetch-Site``
    says so, or, from a browser that sends none, its ``Origin`` is not this host. A client that
    is no browser sends neither and is not refused."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site not in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None:
        return False
    host = request.headers.get("host", "")
    return urlsplit(origin).netloc.lower() != host.lower() or not host


def not_found() -> HTTPException:
    """The one refusal for something the asker may not see, or that does not exist."""
    return HTTPException(404, "not found")


def account(request: Request) -> dict[str, Any] | None:
    """The signed-in account (read again now), or None. A session is the account's while the
    account's session version is still the one it was signed in under (:func:`session_of`):
    signing out, a role changed, disabling, a new password and removal move the version on, and
    every session signed in before — a cookie kept anywhere — ends."""
    name = request.session.get("user")
    if not isinstance(name, str):
        return None
    with request.app.state.engines.borrow() as engine:
        acct = engine.accounts.get(name)
    if acct is None or acct["disabled"] or request.session.get("role") != [acct["role"], acct["unit"]] \
            or request.session.get("v") != acct["session_version"]:
        request.session.clear()  # stale: the account went, was disabled, changed role or signed out
        return None
    return acct


def session_of(acct: dict[str, Any]) -> dict[str, Any]:
    """What a session cookie holds for a signed-in account: its name, role, session version and
    a new CSRF token."""
    return {"user": acct["name"], "role": [acct["role"], acct["unit"]], "v": acct["session_version"],
            "csrf": secrets.token_urlsafe(24)}


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
    """May the account see ``subject``'s figures of ``period``? A manager: when the subject is
    their unit, or was below it in every month of the period (a quarter or a year month by month,
    skipping months before the subject was in the org chart) — a unit that moved between units
    is the old unit's for the months before the move and the new one's after, and a period
    across the move is neither's."""
    if acct["role"] in ("office", "auditor"):
        return True
    unit = acct["unit"]
    if subject == unit:
        return True
    try:
        chains = [engine.units(as_of=month, unit=subject)[0]["chain"] for month in periods.months_of(period)]
    except Exception:  # noqa: BLE001 — no such period or unit: nothing a manager may see
        return False
    placed = [chain for chain in chains if chain]
    return bool(placed) and all(unit in chain for chain in placed)


def scoped(engine: Engine, acct: dict[str, Any], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows (with ``subject`` and ``period``) the account may see (:func:`in_scope`)."""
    if acct["role"] in ("office", "auditor"):
        return rows
    seen: dict[tuple[str, str], bool] = {}
    for key in {(r["subject"], r["period"]) for r in rows}:
        seen[key] = in_scope(engine, acct, *key)
    return [r for r in rows if seen[r["subject"], r["period"]]]
