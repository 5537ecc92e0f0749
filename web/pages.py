"""The HTML pages: sign-in, scores and explanations, rounds, and the raters' questionnaires.

Every handler asks :mod:`csat.web.auth` who is asking first, and answers 404 — never "forbidden"
— for what is not theirs, exactly as for what does not exist.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import secrets
import time
from typing import Any
from urllib.parse import unquote, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Match, Route

from csat.engine import CsatError, IngestFailed, NotFound, periods

from .auth import (READERS, LoginLimit, account, check_csrf, check_link_csrf, cross_site, csrf_token, in_scope,
                   link_csrf, not_found, require, scoped)

__all__ = ["ROUTES", "LoginLimit"]


def render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
    acct = context.pop("account", None)
    return request.app.state.templates.TemplateResponse(
        request, name, {"account": acct, "csrf": csrf_token(request) if acct else None, **context}, status_code=status)


async def form_of(request: Request) -> Any:
    kind = request.headers.get("content-type", "").split(";")[0].strip()
    if kind not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        raise HTTPException(415, "send the form as application/x-www-form-urlencoded")
    try:
        return await request.form(max_files=0, max_fields=2000)
    except HTTPException:  # the body went over the limit as it came (413)
        raise
    except Exception:  # noqa: BLE001 — a malformed body
        raise HTTPException(400, "the form could not be read") from None


# -- signing in --------------------------------------------------------------------------

async def login(request: Request) -> Response:
    nxt = _next(request, request.query_params.get("next", "/"))
    if request.method == "GET":
        return _login_page(request, nxt, None)
    if cross_site(request):  # login CSRF: another site's page would sign the visitor in as someone else
        return _login_page(request, nxt, "a sign-in sent from another site is refused: sign in on this page", 403)
    form = await form_of(request)
    name, password = str(form.get("name", "")), str(form.get("password", ""))
    who = (request.client.host if request.client else "?", name)
    limit: LoginLimit = request.app.state.login_limit
    refused = limit.begin(who)  # counted as failed until the password is found right
    if refused is not None:
        return _login_page(request, nxt, refused, 429, retry=60)
    if not await limit.hashing():
        limit.passed(who)  # never checked: not a failure
        return _login_page(request, nxt, "the server is busy signing others in: try again in a moment", 503, retry=2)

    def check() -> dict[str, Any] | None:
        with request.app.state.engines.borrow() as engine:
            return engine.accounts.check(name, password)

    try:
        acct = await run_in_threadpool(check)
    finally:
        limit.done()
    if acct is None:
        return _login_page(request, nxt, "wrong name or password", 401)
    limit.passed(who)
    request.session.clear()
    request.session.update({"user": acct["name"], "role": [acct["role"], acct["unit"]],
                            "v": acct["session_version"], "csrf": secrets.token_urlsafe(24)})
    return RedirectResponse(nxt, 303)


def _login_page(request: Request, nxt: str, error: str | None, status: int = 200, retry: int = 0) -> Response:
    page = render(request, "login.html", {"next": nxt, "error": error}, status)
    page.headers["referrer-policy"] = "same-origin"  # its form's POST carries this site's Origin (cross_site)
    if retry:
        page.headers["retry-after"] = str(retry)
    return page


def _next(request: Request, value: str) -> str:
    """Where to go after signing in: ``value`` when it is a page of this site (a path a GET is
    answered on, its query kept), else ``/`` — never another site, nor a POST-only route."""
    if not value.startswith("/") or value.startswith("//") or "\\" in value or any(ord(c) < 32 for c in value):
        return "/"
    path = unquote(urlsplit(value).path)
    if path == "/login":
        return "/"
    scope = {"type": "http", "method": "GET", "path": path, "root_path": ""}
    if any(route.matches(scope)[0] is Match.FULL for route in request.app.router.routes):
        return value
    return "/"


async def logout(request: Request) -> Response:
    """Sign out everywhere: every session of the account ends (a cookie kept anywhere opens nothing)."""
    acct = account(request)
    if acct is not None:
        check_csrf(request, await form_of(request))

        def end() -> None:
            with request.app.state.engines.borrow() as engine:
                engine.accounts.end_sessions(acct["name"], actor=acct["name"])

        await run_in_threadpool(end)
    request.session.clear()
    return RedirectResponse("/login", 303)


# -- figures ------------------------------------------------------------------------------

def _period(request: Request, engine: Any) -> str | None:
    period = request.query_params.get("period")
    if period:
        try:
            periods.kind(period)
        except CsatError as e:  # a period that cannot be: say so (400), not "not found"
            raise HTTPException(400, f"period: {e}") from None
        return period
    months = engine.months()
    return months[-1] if months else None


def home(request: Request) -> Response:
    acct = account(request)
    if acct is None:
        return RedirectResponse("/login", 303)
    return RedirectResponse("/rounds" if acct["role"] == "office" else "/scores", 303)


def scores(request: Request) -> Response:
    acct = require(request, *READERS)
    with request.app.state.engines.borrow() as engine:
        period = _period(request, engine)
        under = acct["unit"] if acct["role"] == "manager" else None
        try:  # beside each figure its change against the period before (a month's month, a quarter's quarter)
            rows = engine.scores(period=period, under=under, vs=periods.previous(period)) if period else []
        except CsatError:
            raise not_found() from None
        rows = scoped(engine, acct, list(rows))  # a manager's quarters and years: month by month
    return render(request, "scores.html", {"account": acct, "rows": rows, "period": period,
                                           "previous": periods.previous(period) if period else None})


def explain(request: Request) -> Response:
    acct = require(request, *READERS)
    p = request.path_params
    with request.app.state.engines.borrow() as engine:
        if not in_scope(engine, acct, p["subject"], p["period"]):
            raise not_found()
        try:  # a manager never sees who rated: raters and respondents as pseudonyms
            x = engine.explain(p["ruleset"], p["subject"], p["period"], request.query_params.get("metric"),
                               redact=acct["role"] == "manager")
        except CsatError:
            raise not_found() from None
    return render(request, "explain.html", {"account": acct, "x": x})


# -- rounds (the quality office; the auditor reads) -------------------------------------------

def rounds(request: Request) -> Response:
    acct = require(request, "office", "auditor")
    with request.app.state.engines.borrow() as engine:
        rows = [{**r, "overall": engine.round_status(r["round"])["overall"]} for r in engine.rounds()]
    return render(request, "rounds.html", {"account": acct, "rounds": rows})


def round_page(request: Request, links: list[dict[str, Any]] | None = None) -> Response:
    acct = require(request, "office", "auditor")
    with request.app.state.engines.borrow() as engine:
        try:
            status = engine.round_status(request.path_params["round"])
        except CsatError:
            raise not_found() from None
    base = str(request.base_url).rstrip("/")
    return render(request, "round.html", {"account": acct, "s": status, "links": links, "base": base})


# -- raters ---------------------------------------------------------------------------------

def _assignment(request: Request, engine: Any) -> dict[str, Any]:
    a = engine.rater_assignment(request.path_params["token"])
    if a is None:
        raise not_found()
    return a


def _response_id(a: dict[str, Any], token: str, subject: str, nonce: str, form: str | None = None) -> str:
    tail = f"-{form}" if form else ""
    if a["anonymous"]:  # nothing of the link in it: the page's one-time nonce keeps a double submit single
        return f"{a['round']}-{hashlib.sha256(f'{nonce}:{subject}'.encode()).hexdigest()[:16]}{tail}"
    return f"{a['round']}-{a['rater']}-{subject}-{hashlib.sha256(token.encode()).hexdigest()[:8]}{tail}"


QUESTIONNAIRE_TTL = 10.0  # seconds: a new adoption's questionnaire reaches the raters' pages this soon


def _questionnaire(request: Request, engine: Any, a: dict[str, Any]) -> dict[str, Any]:
    """The questionnaire of the adoption in force for the round's month (kept a few seconds by the
    application: every rater of a round reads the same one; the engine checks each submission)."""
    kept = request.app.state.questionnaires
    key = (a["ruleset"], a["period"])
    hit = kept.get(key)
    if hit is None or hit[0] < time.monotonic():
        hit = kept[key] = (time.monotonic() + QUESTIONNAIRE_TTL,
                           engine.describe_ruleset(a["ruleset"], a["period"])["questionnaire"])
    return hit[1]


async def rater(request: Request) -> Response:
    token = request.path_params["token"]
    if request.method == "GET":
        def show() -> Response:
            with request.app.state.engines.borrow() as engine:
                a = _assignment(request, engine)
                return _rater_page(request, engine, a, {}, [])
        return await run_in_threadpool(show)
    form = await form_of(request)
    check_link_csrf(request, form, token)
    return await run_in_threadpool(_submit, request, token, form)


def _rater_page(request: Request, engine: Any, a: dict[str, Any], given: dict[str, Any], problems: list[str],
                done: bool = False, status: int = 200) -> Response:
    q = _questionnaire(request, engine, a)
    answered, forms = {}, parts(q)
    sealed = False
    if a["anonymous"]:  # each subject (and form) returned once: those returned are offered no more
        gone = set(engine.anonymous_returned(request.path_params["token"]))
        a = {**a, "subjects": [s for s in a["subjects"] if any((s["id"], f) not in gone for f, _ in forms)]}
        sealed = not a["subjects"]
    else:
        ids = {_response_id(a, request.path_params["token"], s["id"], "", f): field(s["id"], f)
               for s in a["subjects"] for f, _ in forms}
        answered = {ids[rid]: r for rid, r in engine.responses(list(ids)).items()}
    return request.app.state.templates.TemplateResponse(request, "rater.html", {
        "a": a, "q": q, "forms": forms, "field": field, "given": given,
        "sealed": sealed, "problems": problems, "answered": answered, "done": done,
        "csrf": link_csrf(request.app.state.secret, request.path_params["token"]),
        "nonce": given.get("nonce") or secrets.token_urlsafe(12), "account": None}, status_code=status)


def _submit(request: Request, token: str, form: Any) -> Response:
    with request.app.state.engines.borrow() as engine:
        a = _assignment(request, engine)
        q = _questionnaire(request, engine, a)
        try:
            events = _events(engine, a, q, token, form)
        except _Refused as e:
            return _rater_page(request, engine, a, {k: str(v) for k, v in form.items()}, [str(e)], status=422)
        if not events:  # sent again unchanged (a double click, a retry): nothing more to record
            done = any(form.get(f"{field(s['id'], f)}::{i['id']}") for s in a["subjects"] for f, items in parts(q)
                       for i in items)
            return _rater_page(request, engine, a, {} if done else dict(form), [] if done else [
                "nothing to send: answer at least one subject"], done=done, status=200 if done else 400)
        if a["anonymous"]:
            return _anonymous_return(request, engine, token, a, form, events)
    by = f"rater-link:{hashlib.sha256(token.encode()).hexdigest()[:8]}"
    problems: list[str] = []
    try:  # appended together with the other submissions waiting now (csat.web.writer)
        request.app.state.writer.submit(events, by).result(timeout=120)
    except IngestFailed as e:
        names = {f"events[{i}]": ev.get("subject") for i, ev in enumerate(events)}
        problems = [_problem_line(p, names) for p in e.problems]
    with request.app.state.engines.borrow() as engine:
        if problems:
            return _rater_page(request, engine, a, {k: str(v) for k, v in form.items()}, problems, status=422)
        return _rater_page(request, engine, a, {}, [], done=True)


RETURNED = "已提交过 returned already: this link has sent these answers; nothing more was recorded"


def _anonymous_return(request: Request, engine: Any, token: str, a: dict[str, Any], form: Any,
                      events: list[dict[str, Any]]) -> Response:
    """An anonymous link's return: the link's marks and its answers are recorded in one write
    transaction, or neither (csat.engine.app.anonymous) — nothing is ever given back."""
    try:
        engine.return_anonymously(token, events)
    except engine.Returned:
        return _rater_page(request, engine, a, {}, [RETURNED], done=True, status=409)
    except IngestFailed as e:
        sent = {(ev["subject"], ev.get("form")) for ev in events if ev["type"] == "response"}
        if sent & set(engine.anonymous_returned(token)):  # this page sent again with other answers
            return _rater_page(request, engine, a, {}, [RETURNED], done=True, status=409)
        names = {f"events[{i}]": ev.get("subject") for i, ev in enumerate(events)}
        return _rater_page(request, engine, a, {k: str(v) for k, v in form.items()},
                           [_problem_line(p, names) for p in e.problems], status=422)
    except NotFound:
        raise not_found() from None
    return _rater_page(request, engine, a, {}, [], done=True)


def parts(q: dict[str, Any]) -> list[tuple[str | None, list[dict[str, Any]]]]:
    """The questionnaire's forms with their items: ``[(None, items)]`` for a rule set of one form;
    for one of several (a dealership's sales and service, a supplier's four dimensions) each form,
    answered as a response of its own."""
    if not q["forms"]:
        return [(None, list(q["items"]))]
    return [(f, [i for i in q["items"] if i.get("form") == f]) for f in q["forms"]]


def field(subject: str, form: str | None) -> str:
    """The prefix of a subject's (and form's) fields in the page: ``dept-1::`` or ``dealer-1::sales::``."""
    return f"{subject}::{form}" if form else subject


def _events(engine: Any, a: dict[str, Any], q: dict[str, Any], token: str, form: Any) -> list[dict[str, Any]]:
    """The events a rater's form records: a response per subject (and form) answered (a
    correction when it was answered before and changed), a no_dealings per subject so marked."""
    nonce = str(form.get("nonce", ""))[:64] or secrets.token_urlsafe(12)  # (a page always sends one)
    forms = parts(q)
    ids = {(s["id"], f): _response_id(a, token, s["id"], nonce, f) for s in a["subjects"] for f, _ in forms}
    before_all = {} if a["anonymous"] else engine.responses(list(ids.values()))
    if not a["anonymous"] and engine.unscored != (0, 0):  # the read models are behind a commit (the
        engine.catch_up()  # writer's): what this rater sent before must be seen, so wait for them
        before_all = engine.responses(list(ids.values()))
    events: list[dict[str, Any]] = []
    for s in a["subjects"]:
        sid = s["id"]
        if form.get(f"{sid}::none") == "yes":
            events.append({"type": "no_dealings", "id": f"nd-{a['round']}-{a['rater']}-{sid}", "round": a["round"],
                           "rater": a["rater"], "subject": sid})
            continue
        for f, items in forms:
            key = field(sid, f)
            answers = {i["id"]: _answer(form.get(f"{key}::{i['id']}"), i) for i in items}
            answers = {k: v for k, v in answers.items() if v is not None}
            if not answers:
                continue
            reasons = {i["id"]: str(form.get(f"{key}::{i['id']}::reason", "")).strip() for i in items}
            comment = str(form.get(f"{key}::comment", "")).strip() or None
            body = {"answers": answers, "reasons": {k: v for k, v in reasons.items() if v},
                    **({"comment": comment} if comment else {})}
            rid, before = ids[sid, f], before_all.get(ids[sid, f])
            if before is None:
                events.append({"type": "response", "id": rid, "ruleset": a["ruleset"], "period": a["period"],
                               "subject": sid, "rater": a["rater"], **({"form": f} if f else {}),
                               **({"respondent": a["respondent"]} if a["respondent"] and not a["anonymous"] else {}),
                               **body})
            elif (before["answers"], before["reasons"], before["comment"]) != (answers, body["reasons"], comment):
                if _dt.date.today().isoformat() > a["due"]:  # a return may come late; a change may not
                    raise _Refused(f"{s['name'] or sid}: the round was due on {a['due']}: answers sent can no longer "
                                   "change (ask the quality office)")
                events.append({"type": "correction", "id": f"{rid}-c{len(before['corrections']) + 1}", "response": rid,
                               "reason": "changed by the rater before the due date", **body})
    return events


class _Refused(Exception):
    """A submission the page refuses before the engine sees it (one line)."""


def _answer(value: Any, item: dict[str, Any]) -> Any:
    if value is None or str(value).strip() == "":
        return None
    value = str(value).strip()
    if item.get("kind") == "number":
        try:
            return int(value) if value.lstrip("-").isdigit() else float(value)
        except ValueError:
            return value
    return value


def said(e: Exception) -> str:
    """What the engine refused, in one line for the page (the events' own ``events[i]: `` dropped)."""
    problems = getattr(e, "problems", None)
    return "; ".join(p.partition(": ")[2] if p.startswith("events[") else p for p in problems) if problems \
        else str(e)


def _problem_line(problem: str, names: dict[str, Any]) -> str:
    where, _, what = problem.partition(": ")
    return f"{names.get(where) or where}: {what}"


ROUTES = [
    Route("/", home), Route("/login", login, methods=["GET", "POST"]), Route("/logout", logout, methods=["POST"]),
    Route("/scores", scores), Route("/explain/{ruleset}/{subject}/{period}", explain),
    Route("/rounds", rounds), Route("/rounds/{round}", round_page),
    Route("/r/{token}", rater, methods=["GET", "POST"]),
]


# -- complaints and rectifications ---------------------------------------------------------

STATUSES = ("completed", "verified", "ineffective", "cancelled")


def cases(request: Request, problem: str | None = None) -> Response:
    acct = require(request, *READERS)
    under = acct["unit"] if acct["role"] == "manager" else None
    with request.app.state.engines.borrow() as engine:
        complaints = engine.complaints(under=under)
        rectifications = engine.rectifications(under=under)
    return render(request, "cases.html", {"account": acct, "complaints": complaints, "rectifications": rectifications,
                                          "statuses": STATUSES, "problem": problem, "nonce": secrets.token_hex(8)},
                  status=422 if problem else 200)


ROUTES += [Route("/cases", cases)]


# -- a subject's trend --------------------------------------------------------------------------

def _chart(points: list[tuple[str, float]], width: int = 640, height: int = 200) -> dict[str, Any]:
    """A line chart's geometry (the template draws it as inline SVG): the points scaled into the
    box, with the axis' lowest and highest figures."""
    values = [v for _, v in points]
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    step = (width - 60) / max(len(points) - 1, 1)
    xy = [(30 + i * step, height - 25 - (v - low) / span * (height - 50)) for i, v in enumerate(values)]
    return {"width": width, "height": height, "low": low, "high": high,
            "line": " ".join(f"{x:.1f},{y:.1f}" for x, y in xy),
            "dots": [{"x": round(x, 1), "y": round(y, 1), "label": p, "value": v}
                     for (x, y), (p, v) in zip(xy, points)]}


def trend(request: Request) -> Response:
    acct = require(request, *READERS)
    p = request.path_params
    with request.app.state.engines.borrow() as engine:
        try:
            rows = [r for r in engine.scores(ruleset=p["ruleset"], subject=p["subject"])
                    if periods.kind(r["period"]) == "month" and in_scope(engine, acct, r["subject"], r["period"])]
        except CsatError:
            raise not_found() from None
    if not rows:
        raise not_found()
    by_metric: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_metric.setdefault(r["metric"], []).append(r)
    charts = [{"metric": m, "rows": rs[-12:], "chart": _chart([(r["period"], float(r["score"])) for r in rs[-12:]
                                                               if r["score"] is not None])}
              for m, rs in by_metric.items() if any(r["score"] is not None for r in rs)]
    return render(request, "trend.html", {"account": acct, "ruleset": p["ruleset"], "subject": p["subject"],
                                          "name": rows[-1].get("subject_name"), "charts": charts})


ROUTES += [Route("/trend/{ruleset}/{subject}", trend)]
