"""The quality office's desk: the accounts, the log's integrity, results announced (公示), and a
policy revision previewed (what-if) and adopted — each change an event carrying the account.

The office changes; the auditor reads (the accounts, a verification) and changes nothing.
"""
from __future__ import annotations

import datetime as _dt
import tomllib
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from csat.engine import CsatError, IngestFailed

from .auth import check_csrf, not_found, require
from .pages import form_of, render, said


def _page(request: Request, acct: dict[str, Any], status: int = 200, **extra: Any) -> Response:
    with request.app.state.engines.borrow() as engine:
        accounts = engine.accounts.list()
        rulesets = sorted(r["id"] for r in engine.ruleset_list())
    return render(request, "office.html", {"account": acct, "accounts": accounts, "rulesets": rulesets,
                                           "today": _dt.date.today().isoformat(), **extra}, status=status)


def office(request: Request) -> Response:
    return _page(request, require(request, "office", "auditor"))


async def verify(request: Request) -> Response:
    acct = require(request, "office", "auditor")
    check_csrf(request, await form_of(request))

    def run() -> dict[str, Any]:
        with request.app.state.engines.borrow() as engine:
            return engine.verify()

    return _page(request, acct, verified=await run_in_threadpool(run))


async def announce(request: Request) -> Response:
    acct = require(request, "office")
    form = await form_of(request)
    check_csrf(request, form)
    ruleset, period, day = (str(form.get(k, "")) for k in ("ruleset", "period", "date"))

    def run() -> str | None:
        with request.app.state.engines.borrow() as engine:
            try:
                engine.append([{"type": "announcement", "id": f"{ruleset}-{period}-{day}", "ruleset": ruleset,
                                "period": period, "date": day}], actor=acct["name"])
            except IngestFailed as e:
                return said(e)
            return None

    problem = await run_in_threadpool(run)
    if problem:
        return _page(request, acct, 422, problem=problem)
    return _page(request, acct, done=f"公示 {ruleset} {period} recorded ({day})")


def _params(form: Any) -> tuple[str, str, dict[str, Any]]:
    try:
        return str(form.get("ruleset", "")), str(form.get("from", "")), tomllib.loads(str(form.get("toml", "")))
    except tomllib.TOMLDecodeError as e:
        raise CsatError(f"the TOML does not read: {e}") from None


async def whatif(request: Request) -> Response:
    """A revision's effect before adopting it: the figures that would change."""
    acct = require(request, "office")
    form = await form_of(request)
    check_csrf(request, form)

    def run() -> tuple[list[dict[str, Any]], str | None]:
        try:
            ruleset, from_, data = _params(form)
            with request.app.state.engines.borrow() as engine:
                return engine.whatif(ruleset, data, from_=from_ or None), None
        except (CsatError, IngestFailed) as e:
            return [], said(e)

    rows, problem = await run_in_threadpool(run)
    return _page(request, acct, 422 if problem else 200, problem=problem, whatif=rows,
                 proposal={k: str(form.get(k, "")) for k in ("ruleset", "from", "toml")})


async def adopt(request: Request) -> Response:
    """The revision adopted, after its preview (the form carries what was previewed)."""
    acct = require(request, "office")
    form = await form_of(request)
    check_csrf(request, form)

    def run() -> str | None:
        try:
            ruleset, from_, data = _params(form)
            with request.app.state.engines.borrow() as engine:
                engine.adopt(data, ruleset=ruleset, from_=from_, note=f"adopted through the web by {acct['name']}",
                             actor=acct["name"], id=f"web-{from_}-{_dt.datetime.now():%Y%m%d%H%M%S}")
        except (CsatError, IngestFailed) as e:
            return said(e)
        return None

    problem = await run_in_threadpool(run)
    if problem:
        return _page(request, acct, 422, problem=problem)
    return RedirectResponse("/office?adopted=1", 303)


async def open_round(request: Request) -> Response:
    """A round opened from its TOML (as `csat round open` reads it), an event carrying the account."""
    acct = require(request, "office")
    form = await form_of(request)
    check_csrf(request, form)

    def run() -> str | None:
        try:
            spec = tomllib.loads(str(form.get("toml", "")))
            with request.app.state.engines.borrow() as engine:
                engine.append([{"type": "round", **spec}], actor=acct["name"], source="round")
        except tomllib.TOMLDecodeError as e:
            return f"the TOML does not read: {e}"
        except (CsatError, IngestFailed) as e:
            return said(e)
        return None

    problem = await run_in_threadpool(run)
    if problem:
        return _page(request, acct, 422, problem=problem, round_toml=str(form.get("toml", "")))
    return RedirectResponse("/rounds", 303)


async def account_change(request: Request) -> Response:
    """An account added, or enabled and disabled, by the office (as `csat user add` / `disable`)."""
    acct = require(request, "office")
    form = await form_of(request)
    check_csrf(request, form)
    action, name = request.path_params["action"], str(form.get("name", ""))

    def run() -> str | None:
        with request.app.state.engines.borrow() as engine:
            try:
                if action == "add":
                    engine.accounts.add(name, str(form.get("role", "")), str(form.get("password", "")),
                                        str(form.get("unit", "")).strip() or None)
                elif action == "role":
                    engine.accounts.set_role(name, str(form.get("role", "")), str(form.get("unit", "")).strip() or None)
                elif action in ("disable", "enable"):
                    if name == acct["name"]:
                        return "you cannot disable your own account here"
                    engine.accounts.set_disabled(name, action == "disable")
                else:
                    raise not_found()
            except CsatError as e:
                return str(e)
        return None

    problem = await run_in_threadpool(run)
    return _page(request, acct, 422 if problem else 200, problem=problem,
                 done=None if problem else f"{name}: {action} done")


ROUTES = [Route("/office", office), Route("/office/rounds", open_round, methods=["POST"]),
          Route("/office/accounts/{action}", account_change, methods=["POST"]), Route("/office/verify", verify, methods=["POST"]),
          Route("/office/announce", announce, methods=["POST"]), Route("/office/whatif", whatif, methods=["POST"]),
          Route("/office/adopt", adopt, methods=["POST"])]
