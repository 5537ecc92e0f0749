"""``csat round``: open an assessment round from a TOML file, see its returns (回收率, who is
missing, who is late), close it."""
from __future__ import annotations

import datetime as _dt
from typing import Any

import click

from csat.engine import CsatError
from csat.engine.params import read_toml

from ..app import Context, handles_errors
from ..options import DATE, MONTH
from ..output import format_option, opened, output_option, render, to_json


@click.group()
def round() -> None:  # noqa: A001 — the command's name
    """Assessment rounds: who rates whom in a month, and the returns by the due date.

    \b
    Examples:
      csat round open 2026-03.toml     # id, ruleset, period, due; [[assignments]] or [rule]
      csat round status plant-2026-03 --missing
      csat round close plant-2026-03
    """


@round.command("open")
@click.argument("file", type=click.Path(dir_okay=False))
@click.pass_obj
@handles_errors
def open_(c: Context, file: str) -> None:
    """Open the round described in FILE (TOML).

    FILE names the round (`id`), its `ruleset`, `period` (YYYY-MM) and `due`
    date (YYYY-MM-DD), and who rates whom: `[[assignments]]` tables of a
    `rater` and its `subjects` (and optionally the `respondents` who answer
    for it), or a `[rule]` over the org chart as of the period: `raters` and
    `subjects` name unit kinds (every workshop rates every department). A
    rater declares it had no dealings with a subject with a `no_dealings`
    event (csat ingest). An assignment has one return: a second one (another
    id, another channel) corrects the first until the due date, or — with
    `changes = false` — is refused, naming the first.

    \b
    Example (2026-03.toml):
      id = "plant-2026-03"
      ruleset = "plant-50"
      period = "2026-03"
      due = "2026-03-28"
      [rule]
      raters = "workshop"
      subjects = "department"
    """
    data = read_toml(file)
    if not isinstance(data, dict):
        raise CsatError(f"{file}: expected a TOML table")
    report = c.engine(create=True).append([{"type": "round", **data}], source=file)
    click.echo(report.summary())


@round.command()
@click.argument("round_id", metavar="ID")
@click.option("--as-of", "as_of", metavar="YYYY-MM-DD", type=DATE,
              help="The returns received by this day (their `received` day, else the day recorded).")
@click.option("--missing", is_flag=True, help="Only the returns still missing (the list to chase).")
@format_option("table", "json", "csv")
@output_option
@click.pass_obj
@handles_errors
def status(c: Context, round_id: str, as_of: str | None, missing: bool, fmt: str, output: str | None) -> None:
    """Show a round's returns: each assignment answered, declined (no dealings)
    or missing, and late (received after the due date: a return's `received`
    day — `csat ingest --received`, a workbook's 收到日期 — else the day it was
    recorded); the response rate (回收率) per rater, per subject and overall.

    \b
    Examples:
      csat round status plant-2026-03
      csat round status plant-2026-03 --missing --format csv -o 催收.csv
      csat round status plant-2026-03 --as-of 2026-03-28 --format json
    """
    s = c.engine().round_status(round_id, as_of)
    rows = [r for r in s["assignments"] if not missing or r["status"] == "missing"]
    with opened(output, bom=fmt == "csv") as echo:
        if fmt == "json":
            echo(to_json({**s, "assignments": rows}))
        elif fmt == "csv":
            echo(render(rows, "csv"))
        else:
            echo(_text(s, rows, missing))


def _text(s: dict[str, Any], rows: list[dict[str, Any]], missing: bool) -> str:
    o = s["overall"]
    head = (f"round {s['round']} · {s['ruleset']} · {s['period']} · due {s['due']}"
            + (f" · closed {s['closed']}" if s["closed"] else "") + (f" · as of {s['as_of']}" if s["as_of"] else ""))
    lines = [head, f"回收率 {o['rate'] or '—'} % · answered {o['answered']} of {o['assigned'] - o['declined']} "
                   f"(declined {o['declined']}, missing {o['missing']}, late {o['late']})", ""]
    if not missing:
        lines += ["By rater", render(s["raters"], "table", first=("rater",)), ""]
    lines.append("Missing" if missing else "Assignments")
    shown = [{k: v for k, v in r.items() if k in ("rater", "subject", "subject_name", "status", "late", "received",
                                                       "recorded")}
             for r in rows]
    lines.append(render(shown, "table", empty="(none)"))
    return "\n".join(lines)


@round.command()
@click.argument("round_id", metavar="ID")
@click.option("--date", metavar="YYYY-MM-DD", type=DATE, help="The day it closed (default: today).")
@click.pass_obj
@handles_errors
def close(c: Context, round_id: str, date: str | None) -> None:
    """Close a round: no more returns are chased (answers still count as the rule set says).

    \b
    Example:
      csat round close plant-2026-03
    """
    day = date or _dt.date.today().isoformat()
    report = c.engine().append([{"type": "round_closed", "id": f"close-{round_id}", "round": round_id, "date": day}])
    click.echo(report.summary())


@click.command()
@click.option("--ruleset", "-r", required=True, help="The rule set whose figures are announced.")
@click.option("--period", "-p", required=True, type=MONTH, help="The month announced (YYYY-MM).")
@click.option("--under", "-u", metavar="UNIT", help="Only the figures of UNIT and the units below it.")
@click.option("--date", metavar="YYYY-MM-DD", type=DATE, help="The day of the announcement (default: today).")
@click.option("--id", "id_", help="The announcement's id (default: RULESET-PERIOD-DATE).")
@click.option("--note", help="Kept in the log.")
@click.pass_obj
@handles_errors
def announce(c: Context, ruleset: str, period: str, under: str | None, date: str | None, id_: str | None,
             note: str | None) -> None:
    """Record that a month's figures were announced (公示): the figures as published now.

    From then on `csat scores` shows, beside any figure that moved since, the
    announced one and the change; `scores --announced -p MONTH` gives them as
    announced; `explain` says "revised since announced" and lists the events
    since.

    \b
    Example:
      csat announce -r plant-50 -p 2026-03
      csat scores -p 2026-03 --announced
    """
    report = c.engine().announce(ruleset, period, under=under, date=date, id=id_, note=note)
    click.echo(report.summary())
