"""The quality office's desk: the accounts, the log's integrity, results announced (公示), a
policy revision previewed (what-if) and adopted, rounds opened, their raters' links made and
revoked and the rounds closed — each change an event carrying the account, or (the accounts and
the links) a row of the accounts' audit trail naming it. Announcing and closing are confirmed
(a ``confirm`` box ticked); an unticked form changes nothing.

The office changes; the auditor reads (the accounts, a verification) and changes nothing. Every
signed-in account may change its own password (the old one first); a manager records the
progress of their units' rectifications, and only the office marks one verified or cancelled.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import secrets
import tomllib
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from csat.engine import CsatError, IngestFailed

from .auth import READERS, check_csrf, not_found, require, session_of
from .pages import cases, form_of, render, round_page, said

#: the fields a round's TOML may have (the ``round`` event's, docs/events.md §2), and no others
ROUND_FIELDS = ("id", "ruleset", "period", "due", "assignments", "rule", "note", "anonymous", "changes")
#: a rectification's statuses only the office records (a manager records the others)
OFFICE_STATUSES = ("verified", "cancelled")


def confirmed(form: Any) -> bool:
    """Whether a form's ``confirm`` box was ticked."""
    return form.get("confirm") == "yes"


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
    """A month's figures announced (公示), once the form's ``confirm`` box is ticked; a month with
    no figures is refused (:meth:`csat.engine.Engine.announce`)."""
    acct = require(request, "office")
    form = await form_of(request)
    check_csrf(request, form)
    ruleset, period, day = (str(form.get(k, "")) for k in ("ruleset", "period", "date"))
    if not confirmed(form):
        return _page(request, acct, 422, problem=f"tick 确认 to announce {ruleset} {period}: nothing was recorded")

    def run() -> str | None:
        with request.app.state.engines.borrow() as engine:
            try:
                engine.announce(ruleset, period, date=day or None, actor=acct["name"])
            except (CsatError, IngestFailed) as e:
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


#: the previews a session may adopt from (the latest ones)
PREVIEWS = 5


def previewed(form: Any) -> str:
    """What a preview is of — the rule set, the month and the parameters as typed — as a hash:
    the adopt form carries it, and the session keeps the ones this office previewed."""
    proposal = "\0".join(str(form.get(k, "")).replace("\r\n", "\n") for k in ("ruleset", "from", "toml"))
    return "sha256:" + hashlib.sha256(proposal.encode("utf-8")).hexdigest()[:32]


async def _preview(request: Request, acct: dict[str, Any], form: Any, status: int = 200,
                   first: str | None = None) -> Response:
    """The what-if of a proposal: its parameters checked (schema and ranges) and the figures that
    would change; when it runs, the session may adopt exactly these parameters."""
    def run() -> tuple[list[dict[str, Any]], str | None]:
        try:
            ruleset, from_, data = _params(form)
            with request.app.state.engines.borrow() as engine:
                return engine.whatif(ruleset, data, from_=from_ or None), None
        except (CsatError, IngestFailed) as e:
            return [], said(e)

    rows, problem = await run_in_threadpool(run)
    digest = previewed(form)
    if not problem:
        request.session["previewed"] = [digest, *(d for d in request.session.get("previewed", []) if d != digest)][
            :PREVIEWS]
    return _page(request, acct, 422 if problem else status, problem=problem, whatif=rows, previewed=digest,
                 first=None if problem else first, proposal={k: str(form.get(k, "")) for k in ("ruleset", "from", "toml")})


async def whatif(request: Request) -> Response:
    """A revision's effect before adopting it: the figures that would change."""
    acct = require(request, "office")
    form = await form_of(request)
    check_csrf(request, form)
    return await _preview(request, acct, form)


async def adopt(request: Request) -> Response:
    """The revision adopted, after its preview: parameters this session has not previewed as they
    stand are previewed instead (409), and adopted from there."""
    acct = require(request, "office")
    form = await form_of(request)
    check_csrf(request, form)
    digest = previewed(form)
    if digest not in request.session.get("previewed", []):
        return await _preview(request, acct, form, 409, first="preview these parameters first: nothing was "
                              "adopted; what they would change is below, adopt them from there")

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
    request.session["previewed"] = [d for d in request.session.get("previewed", []) if d != digest]
    return RedirectResponse("/office?adopted=1", 303)


async def open_round(request: Request) -> Response:
    """A round opened from its TOML (as `csat round open` reads it), an event carrying the account."""
    acct = require(request, "office")
    form = await form_of(request)
    check_csrf(request, form)

    def run() -> str | None:
        try:
            spec = tomllib.loads(str(form.get("toml", "")))
            other = [k for k in spec if k not in ROUND_FIELDS]
            if other:  # a round and nothing else: not another event's type, nor its fields
                return (f"a round has no {', '.join(other)} (its fields: {', '.join(ROUND_FIELDS)}): "
                        "nothing was recorded")
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
    """An account added, its role changed, disabled or enabled, its password reset, removed, or its
    API tokens revoked by the office (as `csat user …`); each a row of the audit trail naming the
    office's account. The office's own account is neither disabled nor removed here."""
    acct = require(request, "office")
    form = await form_of(request)
    check_csrf(request, form)
    action, name = request.path_params["action"], str(form.get("name", ""))
    unit = str(form.get("unit", "")).strip() or None
    if action not in ("add", "role", "disable", "enable", "password", "remove", "revoke-tokens"):
        raise not_found()
    if action in ("disable", "remove") and name == acct["name"]:
        return _page(request, acct, 422, problem=f"you cannot {action} your own account here")

    def run() -> str | None:
        with request.app.state.engines.borrow() as engine:
            accounts, by = engine.accounts, acct["name"]
            try:
                if action == "add":
                    accounts.add(name, str(form.get("role", "")), str(form.get("password", "")), unit, actor=by)
                elif action == "role":
                    accounts.set_role(name, str(form.get("role", "")), unit, actor=by)
                elif action in ("disable", "enable"):
                    accounts.set_disabled(name, action == "disable", actor=by)
                elif action == "password":
                    accounts.set_password(name, str(form.get("password", "")), actor=by)
                elif action == "remove":
                    accounts.remove(name, actor=by)
                else:
                    return f"{accounts.revoke_tokens(name, actor=by)} API token(s) revoked"
            except CsatError as e:
                raise _Refused(str(e)) from None
        return None

    try:
        said_ = await run_in_threadpool(run)
    except _Refused as e:
        return _page(request, acct, 422, problem=str(e))
    return _page(request, acct, done=f"{name}: {said_ or action + ' done'}")


class _Refused(Exception):
    """An account change refused (one line)."""


async def own_password(request: Request) -> Response:
    """A signed-in account changes its own password (the current one first): every other session
    of it ends, this one goes on."""
    acct = require(request, *READERS)
    form = await form_of(request)
    check_csrf(request, form)
    new = str(form.get("password", ""))
    if new != str(form.get("again", new)):
        raise HTTPException(422, "the two new passwords differ: nothing was changed")

    def run() -> dict[str, Any]:
        with request.app.state.engines.borrow() as engine:
            try:
                engine.accounts.set_password(acct["name"], new, old=str(form.get("old", "")), actor=acct["name"])
            except CsatError as e:
                raise HTTPException(422, f"{e}: nothing was changed") from None
            return engine.accounts.get(acct["name"])  # type: ignore[no-any-return]

    now = await run_in_threadpool(run)
    request.session.update(session_of(now))
    return RedirectResponse(("/office" if now["role"] in ("office", "auditor") else "/scores") + "?done=password", 303)


async def round_action(request: Request) -> Response:
    """An open round's raters' links made (shown once) or revoked, or the round closed — closing
    once the form's ``confirm`` box is ticked. The links' making and revoking are rows of the audit
    trail, the closing an event, each naming the office's account."""
    acct = require(request, "office")
    form = await form_of(request)
    check_csrf(request, form)
    round_id, action = request.path_params["round"], request.path_params["action"]
    if action not in ("links", "close", "revoke"):
        raise not_found()
    if action == "close" and not confirmed(form):
        raise HTTPException(422, f"tick 确认 to close the round {round_id}: it was not closed")

    def act() -> list[dict[str, Any]] | None:
        with request.app.state.engines.borrow() as engine:
            if round_id not in {r["round"] for r in engine.rounds()}:
                raise not_found()
            if action == "links":
                return engine.round_links(round_id, actor=acct["name"])
            if action == "revoke":  # a rater's links (a lost or forwarded one); a new one can be made
                n = engine.accounts.revoke(round_id, str(form.get("rater", "")), str(form.get("respondent", "")) or None,
                                           actor=acct["name"])
                if n == 0:
                    raise HTTPException(409, "no live link of that rater in this round")
                return None
            engine.append([{"type": "round_closed", "id": f"close-{round_id}", "round": round_id,
                            "date": _dt.date.today().isoformat()}], actor=acct["name"])
            return None

    try:
        links = await run_in_threadpool(act)
    except (CsatError, IngestFailed) as e:
        raise HTTPException(409, said(e)) from None
    return round_page(request, links) if action == "links" else RedirectResponse(f"/rounds/{round_id}", 303)


async def rectification_progress(request: Request) -> Response:
    """A rectification's progress recorded by a manager of its unit (not ``verified`` nor
    ``cancelled``: those are the office's) or by the office: an event."""
    acct = require(request, "office", "manager")
    form = await form_of(request)
    check_csrf(request, form)
    rid, status = request.path_params["id"], str(form.get("status", ""))

    def record() -> str | None:
        with request.app.state.engines.borrow() as engine:
            mine = [r for r in engine.rectifications(under=acct["unit"] if acct["role"] == "manager" else None)
                    if r["id"] == rid]
            if not mine:
                raise not_found()
            if status in OFFICE_STATUSES and acct["role"] != "office":
                return f"a rectification is marked {status} by the quality office, not by its unit"
            nonce = "".join(ch for ch in str(form.get("nonce", "")) if ch.isalnum())[:16] or secrets.token_hex(8)
            try:  # the form's nonce in the id: a double submit records once
                engine.append([{"type": "rectification_update", "id": f"{rid}-{nonce}", "rectification": rid,
                                "status": status, "date": str(form.get("date", "")),
                                **({"note": str(form["note"])} if form.get("note") else {})}], actor=acct["name"])
            except IngestFailed as e:
                return said(e)
            return None

    problem = await run_in_threadpool(record)
    return cases(request, problem) if problem else RedirectResponse("/cases", 303)


ROUTES = [Route("/office", office), Route("/office/rounds", open_round, methods=["POST"]),
          Route("/office/accounts/{action}", account_change, methods=["POST"]), Route("/office/verify", verify, methods=["POST"]),
          Route("/office/announce", announce, methods=["POST"]), Route("/office/whatif", whatif, methods=["POST"]),
          Route("/office/adopt", adopt, methods=["POST"]), Route("/account/password", own_password, methods=["POST"]),
          Route("/office/rounds/{round}/{action:str}", round_action, methods=["POST"]),
          Route("/cases/{id}/progress", rectification_progress, methods=["POST"])]
