"""The monthly report (:func:`csat.engine.app.report.report_data`) rendered as one HTML page:
a Jinja2 template, charts inlined as SVG by :mod:`.charts`; no script, font or style from the
network; printable on A4."""
from __future__ import annotations

from importlib import resources
from typing import Any

import jinja2

from . import charts


def render_report(data: dict[str, Any]) -> str:
    """The report as one HTML page: the same data give the same bytes (no time, no random id)."""
    for section in data["sections"]:
        section["trend_svgs"] = [charts.trend(f"{section['ruleset']} · {title}: trend (best and worst {len(lines)})",
                                              section["months"], lines)
                                 for title, lines in section["trends"].items() if lines]
        section["grades_svg"] = charts.grades(f"{section['ruleset']}: grade distribution",
                                              section["grades"]) if section["grades"] else None
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    template = env.from_string(resources.files(__package__).joinpath("templates/report.html").read_text("utf-8"))
    return template.render(r=data)
