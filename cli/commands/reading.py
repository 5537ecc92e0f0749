"""The commands that read the store: ``scores``, ``explain``, ``log``, ``complaints``,
``rectifications`` and ``units``."""
from __future__ import annotations

import time

import click

from csat.engine.read.explain import for_people
from ..app import Context, handles_errors
from ..options import AS_OF, DATE, MONTH, PERIOD, as_of_option
from ..output import (columns_of, emit, event_summary, explanation_text, file_options, format_option, opened,
                      output_option, render, render_scores, render_stream, score_columns, to_json)


@click.command()
@click.option("--ruleset", "-r", help="Only this rule set.")
@click.option("--period", "-p", type=PERIOD, help="A month YYYY-MM, quarter YYYY-Qn or year YYYY. Default: every period with data.")
@click.option("--subject", "-s", help="Only this subject (unit id).")
@click.option("--metric", "-m", help="Only this metric.")
@click.option("--under", "-u", metavar="UNIT", help="Only UNIT and the units below it in the org chart.")
@click.option("--vs", metavar="PERIOD", type=PERIOD, help="Add before and delta columns against PERIOD (needs --period).")
@click.option("--announced", is_flag=True, help="The figures of --period exactly as announced (公示).")
@as_of_option()
@format_option("table", "json", "csv", "xlsx")
@file_options
@click.pass_obj
@handles_errors
def scores(c: Context, ruleset: str | None, period: str | None, subject: str | None, metric: str | None,
           under: str | None, vs: str | None, announced: bool, as_of: str | None, fmt: str, output: str | None,
           bom: bool) -> None:
    """Show scores, ordered by rule set, period, subject and metric, with each
    subject's name from the org chart (`unit` events).

    \b
    Examples:
      csat scores
      csat scores --ruleset airline-1000 --period 2026-Q1
      csat scores --period 2026-03 --vs 2026-02     # this month against last
      csat scores --under plant-2 --period 2026     # a plant and everything below it
      csat scores --subject finance --format json
      csat scores --as-of 120               # as published when the log ended at position 120
      csat scores --period 2026-Q1 --format xlsx -o 一季度.xlsx
      csat scores --format csv -o scores.csv  # with a BOM: opens right in Chinese Excel
    """
    if vs is not None and period is None:
        raise click.UsageError("--vs compares with --period: give both")
    engine = c.engine()
    if announced and period is None:
        raise click.UsageError("--announced gives the figures of one announced month: give --period")
    rows = engine.scores(ruleset=ruleset, period=period, subject=subject, metric=metric, as_of=as_of,
                         under=under, vs=vs, announced=announced)
    emit(rows, fmt, output, bom, lambda: render_scores(rows, fmt), lambda: score_columns(rows), "scores")
    if fmt == "table" and not output:
        position, head = engine.store.head(engine.position_at(as_of)) if as_of is not None else engine.head()
        click.echo(f"\nlog position {position} · head {head}")


@click.command()
@click.option("--ruleset", "-r", required=True, help="The rule set.")
@click.option("--subject", "-s", required=True, help="The subject (unit id).")
@click.option("--period", "-p", required=True, type=PERIOD, help="A month YYYY-MM, quarter YYYY-Qn or year YYYY.")
@click.option("--metric", "-m", help="The metric (needed when the subject has several).")
@as_of_option("Explain the figure as published")
@click.option("--redact", is_flag=True, help="Replace raters and respondents by pseudonyms (rater-1, …).")
@format_option("text", "json", default="text")
@output_option
@click.pass_obj
@handles_errors
def explain(c: Context, ruleset: str, subject: str, period: str, metric: str | None, as_of: str | None,
            redact: bool, fmt: str, output: str | None) -> None:
    """Show how one score was derived: parameters, formula steps and every event read.

    \b
    Example:
      csat explain --ruleset airline-1000 --subject finance --period 2026-03
      csat explain -r airline-1000 -s finance -p 2026-Q1 --format json
      csat explain -r plant-50 -s purchasing -p 2026-Q1 --as-of 2026-04-05   # as published then
      csat explain -r airline-1000 -s finance -p 2026-03 --redact   # for management: no rater named
    """
    x = c.engine().explain(ruleset, subject, period, metric, as_of=as_of, redact=redact)
    with opened(output) as echo:
        echo(to_json(x) if fmt == "json" else explanation_text(for_people(x)))  # text: precision + 4 places


@click.command()
@click.option("--type", "type_", help="Only events of this type (response, correction, adoption, ...).")
@click.option("--id", "id_", help="Only events with this id.")
@click.option("--subject", "-s", help="Only events about this subject.")
@click.option("--period", "-p", type=PERIOD, help="Only events of this month, quarter or year.")
@click.option("--ruleset", "-r", help="Only events of this rule set.")
@click.option("--limit", type=click.IntRange(min=0), help="At most this many events (from the start).")
@click.option("--tail", type=click.IntRange(min=0), help="Only the last this many events.")
@click.option("--until", metavar="N|TIME", type=AS_OF,
              help="Only events up to position N, or recorded by TIME (YYYY-MM-DD[THH:MM[:SS]], UTC).")
@click.option("--redact", is_flag=True, help="Replace raters and respondents by pseudonyms (rater-1, …), "
                                              "the same person the same pseudonym throughout the listing.")
@format_option()
@output_option
@click.pass_obj
@handles_errors
def log(c: Context, type_: str | None, id_: str | None, subject: str | None, period: str | None,
        ruleset: str | None, limit: int | None, tail: int | None, until: str | None, redact: bool, fmt: str,
        output: str | None) -> None:
    """List the events of the log with their position and recording time, as they stream.

    \b
    Example:
      csat log --type withdrawal
      csat log --id air-2026-03-3 --format json
      csat log --subject finance --period 2026-Q1 --ruleset airline-1000
      csat log --tail 20
      csat log --until 2026-04-03 --tail 5     # the last events recorded by that day
      csat log --ruleset plant-50 --redact     # no workshop named as the one that gave a mark
    """
    rows = c.engine().log(type=type_, id=id_, subject=subject, period=period, ruleset=ruleset, limit=limit,
                          tail=tail, until=until)
    if redact:
        names = c.engine().pseudonyms()
        rows = (names.row(r) for r in rows)
    if fmt != "json":
        rows = ({"position": r["position"], "recorded": r["recorded"], "type": r["type"], "id": r["id"],
                 "event": to_json(r["event"]).replace("\n", "").replace("  ", " ") if fmt == "csv" else
                 event_summary(r["event"])} for r in rows)
    with opened(output, bom=fmt == "csv") as echo:
        render_stream(rows, fmt, echo, columns=("position", "recorded", "type", "id", "event"), empty="(no events)")


@click.command()
@click.option("--subject", "-s", help="Only cases about this unit.")
@click.option("--period", "-p", type=PERIOD, help="A month, quarter or year.")
@click.option("--open", "open_only", is_flag=True, help="Only cases still open.")
@click.option("--under", "-u", metavar="UNIT", help="Only cases about UNIT and the units below it.")
@format_option("table", "json", "csv", "xlsx")
@file_options
@click.pass_obj
@handles_errors
def complaints(c: Context, subject: str | None, period: str | None, open_only: bool, under: str | None,
               fmt: str, output: str | None, bom: bool) -> None:
    """List complaint cases: filed complaints and remedy cases (CS补救) opened by rule sets.

    A remedy case `remedy:<response id>` is open until a complaint_closed event
    names it.

    \b
    Example:
      csat complaints --open
      csat complaints --subject sa2 --period 2026-Q1 --format json
    """
    rows = c.engine().complaints(subject=subject, period=period, open_only=open_only, under=under)
    if fmt == "table":
        rows = [{k: v for k, v in r.items() if k not in ("text",)} for r in rows]
    emit(rows, fmt, output, bom, lambda: render(rows, fmt, empty="(no complaint cases)"), lambda: columns_of(rows),
         "complaints")


@click.command()
@click.option("--subject", "-s", help="Only rectifications of this unit.")
@click.option("--period", "-p", type=PERIOD, help="Only rectifications raised in this month, quarter or year.")
@click.option("--overdue", is_flag=True, help="Only those overdue at --as-of.")
@click.option("--under", "-u", metavar="UNIT", help="Only rectifications of UNIT and the units below it.")
@click.option("--as-of", "as_of", metavar="YYYY-MM-DD", type=DATE,
              help="Judge status and overdue at this date (default today).")
@format_option("table", "json", "csv", "xlsx")
@file_options
@click.pass_obj
@handles_errors
def rectifications(c: Context, subject: str | None, period: str | None, overdue: bool, under: str | None,
                   as_of: str | None, fmt: str, output: str | None, bom: bool) -> None:
    """List rectifications (整改) with their status, completion and whether they are late or overdue.

    Overdue is judged at --as-of: due before that day and no completed or
    cancelled update dated on or before it.

    \b
    Example:
      csat rectifications --overdue
      csat rectifications --subject sup-aux --as-of 2026-03-31 --format csv
    """
    rows = c.engine().rectifications(subject=subject, overdue=overdue, as_of=as_of, period=period, under=under)
    emit(rows, fmt, output, bom, lambda: render(rows, fmt, empty="(no rectifications)"), lambda: columns_of(rows),
         "rectifications")


@click.command()
@click.argument("unit", required=False)
@click.option("--as-of", "as_of", default=None, metavar="YYYY-MM", type=MONTH, help="The month (default: this month).")
@format_option()
@output_option
@click.pass_obj
@handles_errors
def units(c: Context, unit: str | None, as_of: str | None, fmt: str, output: str | None) -> None:
    """Show units with their parent and chain of ancestors as of a month.

    \b
    Example:
      csat units --as-of 2026-02
      csat units s3 --as-of 2026-01
    """
    month = as_of or time.strftime("%Y-%m")
    rows = c.engine().units(month, unit)
    if fmt != "json":
        rows = [{**r, "chain": " → ".join(r["chain"])} for r in rows]
    with opened(output, bom=fmt == "csv") as echo:
        echo(render(rows, fmt, empty="(no units)"))
