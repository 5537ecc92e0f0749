"""The JSON API under ``/api/``, for other applications to embed csat over HTTP.

Authorized as the pages are: a session cookie, or ``Authorization: Bearer <token>`` of an
account (``csat user token NAME``). Figures are JSON strings of their exact decimals. The
OpenAPI document is served at ``/openapi.json``.
"""
from __future__ import annotations

from typing import Any

import msgspec
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from csat.engine import CsatError

from .auth import READERS, in_scope, not_found, require, scoped

_ENC = msgspec.json.Encoder(decimal_format="string")


def _json(data: Any, status: int = 200) -> Response:
    return Response(_ENC.encode(data), status, media_type="application/json")


def _caller(request: Request, *roles: str) -> dict[str, Any]:
    return require(request, *roles, bearer=True)


def scores(request: Request) -> Response:
    acct = _caller(request, *READERS)
    q = request.query_params
    with request.app.state.engines.borrow() as engine:
        try:
            rows = engine.scores(ruleset=q.get("ruleset"), period=q.get("period"), subject=q.get("subject"),
                                 under=acct["unit"] if acct["role"] == "manager" else q.get("under"))
        except CsatError as e:
            raise HTTPException(400, str(e)) from None
        rows = scoped(engine, acct, list(rows))  # a manager's quarters and years: month by month
    return _json(rows)


def explain(request: Request) -> Response:
    acct = _caller(request, *READERS)
    p = request.path_params
    with request.app.state.engines.borrow() as engine:
        if not in_scope(engine, acct, p["subject"], p["period"]):
            raise not_found()
        try:
            x = engine.explain(p["ruleset"], p["subject"], p["period"], request.query_params.get("metric"),
                               redact=acct["role"] == "manager")
        except CsatError:
            raise not_found() from None
    return _json(x)


def rounds(request: Request) -> Response:
    _caller(request, "office", "auditor")
    with request.app.state.engines.borrow() as engine:
        return _json(engine.rounds())


def round_status(request: Request) -> Response:
    _caller(request, "office", "auditor")
    with request.app.state.engines.borrow() as engine:
        try:
            return _json(engine.round_status(request.path_params["round"], request.query_params.get("as_of")))
        except CsatError:
            raise not_found() from None


def _op(summary: str, roles: str, params: list[tuple[str, str, bool]] = ()) -> dict[str, Any]:
    return {"get": {"summary": summary, "description": f"Who may call it: {roles}.",
                    "parameters": [{"name": n, "in": where, "required": req, "schema": {"type": "string"}}
                                   for n, where, req in params],
                    "responses": {"200": {"description": "JSON"}, "401": {"description": "not signed in"},
                                  "404": {"description": "not found, or not yours"}},
                    "security": [{"session": []}, {"bearer": []}]}}


OPENAPI = {
    "openapi": "3.1.0",
    "info": {"title": "csat", "version": "1", "description": __doc__},
    "components": {"securitySchemes": {"session": {"type": "apiKey", "in": "cookie", "name": "csat_session"},
                                       "bearer": {"type": "http", "scheme": "bearer"}}},
    "paths": {
        "/api/scores": _op("Score rows (events.md §4); a manager's are those of their unit and below it "
                           "(a quarter's or a year's when every month of it was).",
                           "office, auditor, manager",
                           [("ruleset", "query", False), ("period", "query", False), ("subject", "query", False),
                            ("under", "query", False)]),
        "/api/explain/{ruleset}/{subject}/{period}": _op(
            "How one figure was derived (csat explain); raters and respondents redacted for a manager.",
            "office, auditor; a manager within their unit",
            [("ruleset", "path", True), ("subject", "path", True), ("period", "path", True), ("metric", "query", False)]),
        "/api/rounds": _op("The assessment rounds.", "office, auditor"),
        "/api/rounds/{round}": _op("A round's returns and 回收率 (csat round status).", "office, auditor",
                                   [("round", "path", True), ("as_of", "query", False)]),
    },
}


def openapi(request: Request) -> Response:
    return JSONResponse(OPENAPI)


ROUTES = [Route("/api/scores", scores), Route("/api/explain/{ruleset}/{subject}/{period}", explain),
          Route("/api/rounds", rounds), Route("/api/rounds/{round}", round_status)]

__all__ = ["ROUTES", "openapi"]
