"""What the quality office downloads: the period's report for management (one self-contained HTML
page, as ``csat report`` writes it) and a round's questionnaires as Excel workbooks (one, or all
of them in a zip, as ``csat form`` writes them). The auditor may download the report too.

A download names nothing of the server's files: the period and the round are looked up in the
log, a rater among the round's assignments; anything else is the same 404 as not yours.
"""
from __future__ import annotations

import io
import zipfile
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from csat.engine import CsatError, NotFound

from .auth import not_found, require

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def attachment(body: bytes | str, name: str, media_type: str) -> Response:
    """``body`` as a file to save, named ``name`` (any characters: RFC 6266's ``filename*``)."""
    ascii_name = name.encode("ascii", "replace").decode().replace("?", "_").replace('"', "_")
    return Response(body, media_type=media_type, headers={
        "content-disposition": f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}",
        "cache-control": "no-store"})


def _file_name(rater: str) -> str:
    return rater.replace("/", "-").replace("\\", "-") + ".xlsx"


async def report(request: Request) -> Response:
    """``/office/report?period=P[&ruleset=R][&min_responses=N]``: the report as an HTML file."""
    require(request, "office", "auditor")
    q = request.query_params
    period, ruleset = q.get("period", ""), q.get("ruleset") or None
    try:
        least = int(q.get("min_responses") or 0)
    except ValueError:
        raise HTTPException(400, "min_responses: expected a whole number") from None

    def run() -> str:
        with request.app.state.engines.borrow() as engine:
            return engine.report(period, ruleset, None, max(least, 0))

    try:
        html = await run_in_threadpool(run)
    except CsatError as e:
        raise HTTPException(400, str(e)) from None
    return attachment(html, f"csat-report-{period}" + (f"-{ruleset}" if ruleset else "") + ".html",
                      "text/html; charset=utf-8")


async def forms(request: Request) -> Response:
    """``/rounds/{round}/forms``: every rater's workbook in one zip; ``/rounds/{round}/forms/{rater}``:
    one rater's workbook."""
    require(request, "office")
    round_id, rater = request.path_params["round"], request.path_params.get("rater")

    def run() -> dict[str, bytes]:
        with request.app.state.engines.borrow() as engine:
            return engine.forms(round_id, rater)

    try:
        books = await run_in_threadpool(run)
    except NotFound:
        raise not_found() from None
    except CsatError as e:
        raise HTTPException(409, str(e)) from None
    if rater is not None:
        return attachment(books[rater], f"{round_id}-{_file_name(rater)}", XLSX)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        for who, book in books.items():
            z.writestr(_file_name(who), book)
    return attachment(buffer.getvalue(), f"{round_id}-forms.zip", "application/zip")


ROUTES = [Route("/office/report", report), Route("/rounds/{round}/forms", forms),
          Route("/rounds/{round}/forms/{rater}", forms)]
