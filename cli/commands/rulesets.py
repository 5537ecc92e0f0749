"""``csat rulesets``: the installed rule sets, or one of them described — the parameters in force
in a month, and its questionnaire (items with their labels, the answers accepted, N/A, reasons)."""
from __future__ import annotations

import datetime as _dt
from typing import Any

import click
import msgspec

from csat.engine.read.describe import describe
from csat.engine.errors import NoStore, UnknownRuleSet

from ..app import Context, handles_errors
from ..options import MONTH
from ..output import format_option, opened, output_option, render, table, to_json


_JSON = msgspec.json.Encoder(decimal_format="number")


def _answers(item: dict[str, Any]) -> str:
    if item["kind"] == "number":
        low, high = item.get("minimum"), item.get("maximum")
        span = f"{low}–{high}" if high is not None else f"≥ {low}" if low is not None else "a number"
        return f"{span}{' (whole)' if item.get('whole') else ''}"
    return " / ".join(c["label"] for c in item.get("choices", ()))


def description_text(d: dict[str, Any]) -> str:
    """A rule set's description for people: header, parameters in force, questionnaire."""
    lines = [f"{d['id']} {d['version']} — {d['title']}", f"source: {d['source']}",
             f"metrics: {', '.join(d['metrics'])}"]
    a = d["adoption"]
    lines.append(f"parameters in force in {d['month']}: " + (
        f"adoption {a['id']} (from {a['from']}, log position {a['position']}), {a['params_hash']}"
        + (f", upgraded from v{a['upgraded_from']}" if a.get("upgraded_from") else "")
        if a else "the shipped defaults (no adoption in force)"))
    q = d["questionnaire"]
    lines += ["", "Questionnaire" + (f" (forms: {', '.join(q['forms'])})" if q and q["forms"] else "")
              + (" — each response names its rater (评价单位)" if q and q["rater_required"] else "")]
    if q is None:
        lines.append("  (this rule set publishes no questionnaire)")
    elif not q["items"]:
        lines.append("  (the parameters in force list no items: adopt a revision that lists them)")
    else:
        rows = [{"item": i["id"], "label": i["label"], **({"form": i["form"]} if "form" in i else {}),
                 "answers": _answers(i), "N/A": "yes" if i["na"] else "no",
                 "reason for": ", ".join(i["reason_for"])} for i in q["items"]]
        cols = ["item", "label", *(["form"] if any("form" in r for r in rows) else []), "answers", "N/A", "reason for"]
        lines += ["  " + line for line in table(rows, cols).splitlines()]
    lines += ["", "Parameters (as the log stores them; --format json for all of it)"]
    lines += [f"  {key} = {_compact(value)}" for key, value in (d["parameters"] or {}).items()]
    return "\n".join(lines)


def _compact(value: Any, limit: int = 160) -> str:
    text = _JSON.encode(value).decode()
    return text if len(text) <= limit else text[:limit - 1] + "…"


@click.command()
@click.argument("name", required=False)
@click.option("--as-of", "as_of", metavar="YYYY-MM", type=MONTH,
              help="With NAME: the parameters in force in this month (default: this month).")
@format_option("table", "json")
@output_option
@click.pass_obj
@handles_errors
def rulesets(c: Context, name: str | None, as_of: str | None, fmt: str, output: str | None) -> None:
    """List the installed rule sets: id, version, title and where each comes from; or describe
    rule set NAME: the parameters in force in a month in this store (the shipped defaults
    where there is no store or no adoption), its items with their labels and the answers
    each accepts, whether N/A is allowed and which answers need a reason.

    \b
    Examples:
      csat rulesets --format json
      csat rulesets plant-50                      # the questionnaire and the parameters in force
      csat rulesets iso-100 --as-of 2026-03 --format json
    """
    if name is not None:
        with opened(output) as echo:
            echo(_described(c, name, as_of, fmt))
        return
    infos, broken = _installed()
    rows: list[dict[str, Any]] = [
        {"id": i.ruleset.id, "version": i.ruleset.version, "title": i.ruleset.title, "source": i.source,
         "status": "ok", "metrics": list(i.ruleset.metrics), "hooks": list(i.hooks)} for i in infos]
    rows += [{"id": None, "version": None, "title": None, "source": b.source, "status": "broken",
              "plugin": b.plugin, "reason": b.reason} for b in broken]
    if fmt == "table":
        rows = [{**r, "metrics": ", ".join(r.get("metrics", ())), "hooks": ", ".join(r.get("hooks", ()))}
                for r in rows]
    with opened(output) as echo:
        echo(render(rows, fmt, first=("id", "version", "title", "source", "status")))


def _installed() -> tuple[list[Any], list[Any]]:
    """The installed rule sets and the plugins that failed to load (each said in one line)."""
    from csat.plugins import load_rulesets, make_plugin_manager
    infos, broken = load_rulesets(make_plugin_manager())
    for b in broken:
        click.echo(f"csat: warning: {b.line()}", err=True)
    return infos, broken


def _described(c: Context, name: str, month: str | None, fmt: str) -> str:
    """The description, from the store when there is one (its engine loads the plugins and says
    which failed), else from the shipped defaults."""
    try:
        return _text(c.engine().describe_ruleset(name, month), fmt)
    except NoStore:  # no store: the shipped defaults
        infos, _ = _installed()
        found = next((i for i in infos if i.ruleset.id == name), None)
        if found is None:
            raise UnknownRuleSet.of(name, (i.ruleset.id for i in infos)) from None
        d = describe(found.ruleset, None, found.source, month or _dt.date.today().strftime("%Y-%m"))
    return _text(d, fmt)


def _text(d: dict[str, Any], fmt: str) -> str:
    return to_json(d) if fmt == "json" else description_text(d)
