"""``csat report``: the monthly report as one self-contained HTML file (Jinja2 template, pygal
charts inlined as SVG; no script, font or style from the network), printable on A4."""
from __future__ import annotations

from importlib import resources
from typing import Any

import click

from csat.engine import CsatError
from csat.engine.report import report_data

from .main import Context, cli, handles_errors
from .output import columns_of, emit, file_options, format_option, render


def _needs() -> tuple[Any, Any]:
    try:
        import jinja2
        import pygal
    except ImportError:
        raise CsatError("csat report needs Jinja2 and pygal: pip install 'csat[report]'") from None
    return jinja2, pygal


def _style(pygal: Any) -> Any:
    from pygal.style import Style
    return Style(font_family='"Noto Sans CJK SC", "PingFang SC", "Microsoft YaHei", sans-serif',
                 background="white", plot_background="white")


def _trend_svg(pygal: Any, section: dict[str, Any], metric: str, lines: dict[str, dict[str, Any]]) -> str:
    chart = pygal.Line(style=_style(pygal), js=[], disable_xml_declaration=True, width=640, height=360,
                       x_label_rotation=30, legend_at_bottom=True, show_dots=True, allow_interruptions=True,
                       title=f"{section['ruleset']} · {metric}: trend (best and worst {len(lines)})")
    chart.x_labels = section["months"]
    for name, series in lines.items():
        chart.add(name, [float(series[m]) if m in series else None for m in section["months"]])
    return chart.render(is_unicode=True)


def _grades_svg(pygal: Any, section: dict[str, Any]) -> str | None:
    if not section["grades"]:
        return None
    chart = pygal.Bar(style=_style(pygal), js=[], disable_xml_declaration=True, width=480, height=360,
                      title=f"{section['ruleset']}: grade distribution", show_legend=False)
    chart.x_labels = list(section["grades"])
    chart.add("subjects", list(section["grades"].values()))
    return chart.render(is_unicode=True)


def render_report(data: dict[str, Any]) -> str:
    jinja2, pygal = _needs()
    for section in data["sections"]:
        section["trend_svgs"] = [_trend_svg(pygal, section, metric, lines)
                                 for metric, lines in section["trends"].items() if lines]
        section["grades_svg"] = _grades_svg(pygal, section)
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    template = env.from_string(resources.files("csat.cli").joinpath("templates/report.html").read_text("utf-8"))
    return template.render(r=data)


@cli.command()
@click.option("--period", "-p", required=True, help="The month YYYY-MM, quarter YYYY-Qn or year YYYY reported.")
@click.option("--ruleset", "-r", help="Only this rule set (default: every rule set with scores in the period).")
@click.option("--under", "-u", metavar="UNIT", help="Only UNIT and the units below it in the org chart.")
@click.option("--min-responses", type=click.IntRange(min=0), default=0, show_default=True,
              help="Show '—' for any figure from fewer responses (a small group's raters stay unidentifiable).")
@click.option("--output", "-o", required=True, metavar="FILE.html", type=click.Path(dir_okay=False),
              help="The HTML file to write.")
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
    browser for an A4 document.

    \b
    Examples:
      csat report --period 2026-03 -o 2026-03.html
      csat report --period 2026-Q1 --ruleset plant-50 --min-responses 3 -o plant-q1.html
    """
    html = render_report(report_data(c.engine(), period, ruleset, under, min_responses))
    with open(output, "w", encoding="utf-8") as f:
        f.write(html)
    click.echo(f"wrote {output}")


@cli.command()
@click.option("--ruleset", "-r", required=True, help="The rule set whose items are ranked.")
@click.option("--period", "-p", required=True, help="A month YYYY-MM, quarter YYYY-Qn or year YYYY.")
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
