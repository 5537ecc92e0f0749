"""``csat report``: the monthly report as one self-contained HTML file (rendered by
:mod:`csat.engine.render.report`; no script, font or style from the network), printable on A4 — or
as that page printed to PDF by headless Chromium."""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import click

from csat.engine import CsatError

from ..app import Context, handles_errors
from ..options import PERIOD
from ..output import columns_of, emit, file_options, format_option, render


def chromium() -> str | None:
    """Headless Chromium, where installed (Debian's package, or Google's build)."""
    return next((p for name in ("chromium", "chromium-browser", "google-chrome") if (p := shutil.which(name))), None)


def write_pdf(html: str, output: str) -> None:
    """Print the page to an A4 PDF with headless Chromium (the report's print CSS sets the page)."""
    browser = chromium()
    if browser is None:
        raise CsatError(f"{output}: writing a PDF needs Chromium (apt-get install chromium); or write "
                        "FILE.html and print it from a browser")
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "report.html"
        page.write_text(html, encoding="utf-8")
        target = Path(output).resolve()
        try:
            done = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer",
                                   f"--user-data-dir={tmp}/profile", f"--print-to-pdf={target}", page.as_uri()],
                                  capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired:
            raise CsatError(f"{output}: Chromium did not print the report within 300 s") from None
        if done.returncode != 0 or not target.exists():
            last = (done.stderr.strip().splitlines() or ["no message"])[-1]
            raise CsatError(f"{output}: Chromium could not print the report ({last})")


def _output(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if Path(value).suffix.lower() not in (".html", ".htm", ".pdf"):
        raise click.BadParameter(f"expected FILE.html or FILE.pdf, got {value!r}")
    return value


@click.command()
@click.option("--period", "-p", required=True, type=PERIOD,
              help="The month YYYY-MM, quarter YYYY-Qn or year YYYY reported.")
@click.option("--ruleset", "-r", help="Only this rule set (default: every rule set with scores in the period).")
@click.option("--under", "-u", metavar="UNIT", help="Only UNIT and the units below it in the org chart.")
@click.option("--min-responses", type=click.IntRange(min=0), default=0, show_default=True,
              help="Show '—' for any figure from fewer responses (a small group's raters stay unidentifiable).")
@click.option("--output", "-o", required=True, metavar="FILE.html|FILE.pdf", type=click.Path(dir_okay=False),
              callback=_output, help="The file to write: an HTML page, or a PDF (A4, printed by headless Chromium).")
@click.pass_obj
@handles_errors
def report(c: Context, period: str, ruleset: str | None, under: str | None, min_responses: int,
           output: str) -> None:
    """Write the period's report for management as one self-contained HTML file.

    For each rule set: the ranking by name with grade, change against the
    previous period and responses; for each metric a trend chart of the best
    and worst subjects over the year, and a grade distribution; the five
    lowest-scoring items (csat items) with the reasons given for them, and
    the other reasons and comments, verbatim; complaints and open, late or
    overdue rectifications; each figure's derivation, steps and events
    (expandable). No rater or respondent is named.
    The footer carries the log position and head hash (`csat verify --head`
    checks the report later) and the adoptions in force. Print it from a
    browser for an A4 document, or give -o FILE.pdf (headless Chromium prints
    it). The same log head and parameters give the same bytes.

    \b
    Examples:
      csat report --period 2026-03 -o 2026-03.html
      csat report --period 2026-03 -o 2026-03.pdf      # needs chromium
      csat report --period 2026-Q1 --ruleset plant-50 --min-responses 3 -o plant-q1.html
    """
    html = c.engine().report(period, ruleset, under, min_responses)
    if Path(output).suffix.lower() == ".pdf":
        write_pdf(html, output)
    else:
        with open(output, "w", encoding="utf-8") as f:
            f.write(html)
    click.echo(f"wrote {output}")


@click.command()
@click.option("--ruleset", "-r", required=True, help="The rule set whose items are ranked.")
@click.option("--period", "-p", required=True, type=PERIOD, help="A month YYYY-MM, quarter YYYY-Qn or year YYYY.")
@click.option("--under", "-u", metavar="UNIT", help="Only responses for UNIT and the units below it.")
@click.option("--ids", is_flag=True, help="Add the ids of the responses pooled (json, csv, xlsx).")
@format_option("table", "json", "csv", "xlsx")
@file_options
@click.pass_obj
@handles_errors
def items(c: Context, ruleset: str, period: str, under: str | None, ids: bool, fmt: str, output: str | None,
          bom: bool) -> None:
    """Rank a rule set's questionnaire items, weakest first.

    Each item's attainment is 100 × Σ points / Σ possible over the period's
    counted responses (each response once, however many units it counts
    for), on the item's own scale as the rule set defines it; it ranks items
    and is no published score. A rule set without item points (supplier-400:
    its answers are counts) lists none.

    \b
    Examples:
      csat items -r iso-100 -p 2026
      csat items -r dealership-cs -p 2026-Q1 --under dealer-gz --format csv -o items.csv
    """
    rows = c.engine().items(ruleset, period, under=under)
    if not ids or fmt == "table":
        rows = [{k: v for k, v in r.items() if k != "response_ids"} for r in rows]
    emit(rows, fmt, output, bom, lambda: render(rows, fmt, empty=f"(no item points for {ruleset} in {period})"),
         lambda: columns_of(rows), "items")
