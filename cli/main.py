"""The ``csat`` command: a thin layer over :class:`csat.engine.Engine`."""
from __future__ import annotations

import contextlib
import functools
import os
import sqlite3
import sys
import time
from collections.abc import Callable
from typing import Any

import click

from csat.engine import CsatError, Engine, IngestFailed, default_target
from csat.engine.api import DB_ENV
from csat.engine.errors import one_line
from csat.engine import postgres
from csat.engine.store import sqlite_message

from .options import DB_HELP, MONTH, PERIOD, DATE, add_db_option, as_of_option
from .output import (columns_of, emit, event_summary, explanation_text, file_options, format_option, opened,
                     output_option, render, render_scores, render_stream, score_columns, to_json)
from .progress import ProgressLine


class Context:
    def __init__(self, db: str | None):
        self.db_given = db is not None
        self.db = db if db is not None else default_target()
        self._engine: Engine | None = None

    def use(self, db: str) -> None:
        """The store a command's own ``--db`` names."""
        self.db, self.db_given = db, True

    def engine(self, create: bool = False) -> Engine:
        """The opened store. Only writing commands (``create``) make a new one; a reading command
        on a path that is not a csat store fails with one line."""
        if self._engine is None:
            self._engine = Engine.open(self.db, create=create)
        return self._engine

    def discard_new_store(self, existed: bool) -> None:
        """A command that created a store and then failed leaves no empty store behind."""
        if existed or postgres.is_postgres(self.db):
            return
        if self._engine is not None:
            try:
                self._engine.close()
            finally:
                self._engine = None
        for suffix in ("", "-wal", "-shm"):
            try:
                os.remove(self.db + suffix)
            except OSError:
                pass

    def close(self) -> None:
        if self._engine is None:
            return
        try:
            for line in self._engine.store.notices:
                click.echo(f"csat: note: {line}", err=True)
            for line in self._engine.warnings():  # once per command, after its work
                click.echo(f"csat: warning: {line}", err=True)
        except Exception:  # noqa: BLE001 — a warning must never turn a result into a traceback
            pass
        finally:
            try:
                self._engine.close()
            except Exception:  # noqa: BLE001 — a store gone away (a lost server) has nothing left to close
                pass


def fail(message: str, code: int = 1) -> None:
    click.echo(f"csat: {one_line(message)}", err=True)
    sys.exit(code)


def c_db(args: tuple[Any, ...]) -> str:
    return next((a.db for a in args if isinstance(a, Context)), "")


def handles_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Errors become one line on stderr (exit 1), never a traceback."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except IngestFailed as e:
            for p in e.problems:
                click.echo(p, err=True)
            fail(str(e))
        except CsatError as e:
            fail(str(e))
        except sqlite3.Error as e:
            fail(sqlite_message(c_db(args), e))
        except RecursionError:
            fail("input nested too deeply")
        except BrokenPipeError:  # `csat log | head`: the reader has what it wanted; no error
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(0)
        except OSError as e:
            fail(f"{e.filename or ''}: {e.strerror or e}".lstrip(": "))
    return wrapper


def _count_lines(files: tuple[str, ...]) -> int:
    n = 0
    for f in files:
        try:
            with open(f, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    n += block.count(b"\n")
        except OSError:
            pass
    return n


class CsatGroup(click.Group):
    """The ``csat`` group: a usage error is one line too (``csat: scores: Invalid value for
    '--period' …; csat scores --help``), with exit status 2."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        try:
            return super().main(*args, standalone_mode=False, **kwargs)
        except click.UsageError as e:
            where = e.ctx.command_path if e.ctx is not None else "csat"
            fail(f"{where.partition(' ')[2] or where}: {e.format_message()} (see {where} --help)", e.exit_code)
        except click.ClickException as e:
            fail(e.format_message(), e.exit_code)
        except click.Abort:
            fail("aborted", 1)


@click.group(cls=CsatGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--db", metavar="TARGET", default=None, envvar=DB_ENV, show_envvar=True, help=DB_HELP)
@click.version_option(package_name="csat", prog_name="csat")
@click.pass_context
def cli(ctx: click.Context, db: str | None) -> None:
    """csat — event-sourced customer-satisfaction scoring (客户满意度考核).

    Survey responses, complaints and rectifications are appended to an event
    log; scores are projected from it under the rule set and parameters in
    force, and every figure can be explained down to its events.

    \b
    Examples:
      csat demo                                  # a first look, in ./csat-demo.db
      csat ingest march.jsonl                    # append events (all or nothing)
      csat scores --period 2026-Q1               # the quarter's scores
      csat explain --ruleset airline-1000 --subject finance --period 2026-03
    """
    c = Context(db)
    ctx.obj = c
    ctx.call_on_close(c.close)


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--dry-run", is_flag=True, help="Validate only; append nothing.")
@click.option("--sheet", metavar="NAME", help="The sheet of an .xlsx workbook to read (default: the first).")
@click.option("--columns", metavar="MAP.toml", type=click.Path(dir_okay=False),
              help="Sheet headers to column names: a [columns] table of \"header\" = \"column\" lines.")
@click.pass_obj
@handles_errors
def ingest(c: Context, files: tuple[str, ...], dry_run: bool, sheet: str | None, columns: str | None) -> None:
    """Append the events of FILES to the log, all or nothing.

    FILES are JSON Lines, or survey sheets: CSV (UTF-8 or GB18030) or an Excel
    workbook (*.xlsx, needs csat[xlsx]) — one row per response, one column per
    item, the fixed columns named in English or Chinese (编号, 规则, 月份,
    被考核部门, 评价单位, 原因:item, …). Every invalid line is reported as
    FILE:LINE: message and nothing is appended. Re-ingesting the same file
    appends nothing.

    \b
    Example:
      csat ingest responses-2026-03.jsonl corrections.jsonl
      cat march.jsonl | csat ingest -             # - reads standard input
      csat ingest --dry-run survey-2026-04.csv
      csat ingest 满意度调查.xlsx --sheet 四月
      csat ingest 回访记录.csv --columns 回访表头.toml   # [columns] "回访单号" = "id", …
    """
    existed = os.path.exists(c.db)
    engine = c.engine(create=True)
    show = ProgressLine("ingest", lines_total=_count_lines(files) if sys.stderr.isatty() else 0)
    try:
        try:
            report = engine.ingest(files, dry_run=dry_run, progress=show, sheet=sheet, columns=columns,
                                   catching_up=True)
        except CsatError:
            c.discard_new_store(existed)  # nothing appended: no empty store left behind
            raise
        for a in report.implicit_adoptions:
            click.echo(f"recorded implicit adoption of the shipped defaults: {a}", err=True)
        if not dry_run:  # even with nothing new: a killed ingest may have left its events unscored
            show.events_total = engine.store.max_position() - engine.projection.tracked()
            try:
                engine.catch_up(progress=show)  # the next read is instant
                engine.caught_up_done()
            except CsatError as e:  # the append is committed: say what was kept
                with contextlib.suppress(Exception):  # readers catch up themselves from now on
                    engine.caught_up_done()
                why = getattr(e, "detail", str(e))
                raise CsatError(f"{report.appended:,} events appended; the scores were not brought up to date "
                                f"({why}): the next read or ingest will") from None
    finally:
        show.done()
    click.echo(report.summary())


@cli.command()
@click.option("--ruleset", "-r", help="Only this rule set.")
@click.option("--period", "-p", type=PERIOD, help="A month YYYY-MM, quarter YYYY-Qn or year YYYY. Default: every period with data.")
@click.option("--subject", "-s", help="Only this subject (unit id).")
@click.option("--metric", "-m", help="Only this metric.")
@click.option("--under", "-u", metavar="UNIT", help="Only UNIT and the units below it in the org chart.")
@click.option("--vs", metavar="PERIOD", type=PERIOD, help="Add before and delta columns against PERIOD (needs --period).")
@as_of_option()
@format_option("table", "json", "csv", "xlsx")
@file_options
@click.pass_obj
@handles_errors
def scores(c: Context, ruleset: str | None, period: str | None, subject: str | None, metric: str | None,
           under: str | None, vs: str | None, as_of: str | None, fmt: str, output: str | None, bom: bool) -> None:
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
    rows = engine.scores(ruleset=ruleset, period=period, subject=subject, metric=metric, as_of=as_of,
                         under=under, vs=vs)
    emit(rows, fmt, output, bom, lambda: render_scores(rows, fmt), lambda: score_columns(rows), "scores")
    if fmt == "table" and not output:
        position, head = engine.store.head(engine.position_at(as_of)) if as_of is not None else engine.head()
        click.echo(f"\nlog position {position} · head {head}")


@cli.command()
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
        echo(to_json(x) if fmt == "json" else explanation_text(x))


@cli.command()
@click.option("--type", "type_", help="Only events of this type (response, correction, adoption, ...).")
@click.option("--id", "id_", help="Only events with this id.")
@click.option("--subject", "-s", help="Only events about this subject.")
@click.option("--period", "-p", type=PERIOD, help="Only events of this month, quarter or year.")
@click.option("--ruleset", "-r", help="Only events of this rule set.")
@click.option("--limit", type=click.IntRange(min=0), help="At most this many events (from the start).")
@click.option("--tail", type=click.IntRange(min=0), help="Only the last this many events.")
@click.option("--redact", is_flag=True, help="Replace raters and respondents by pseudonyms (rater-1, …), "
                                              "the same person the same pseudonym throughout the listing.")
@format_option()
@output_option
@click.pass_obj
@handles_errors
def log(c: Context, type_: str | None, id_: str | None, subject: str | None, period: str | None,
        ruleset: str | None, limit: int | None, tail: int | None, redact: bool, fmt: str,
        output: str | None) -> None:
    """List the events of the log with their position and recording time, as they stream.

    \b
    Example:
      csat log --type withdrawal
      csat log --id air-2026-03-3 --format json
      csat log --subject finance --period 2026-Q1 --ruleset airline-1000
      csat log --tail 20
      csat log --ruleset plant-50 --redact     # no workshop named as the one that gave a mark
    """
    rows = c.engine().log(type=type_, id=id_, subject=subject, period=period, ruleset=ruleset, limit=limit,
                          tail=tail)
    if redact:
        names = c.engine().pseudonyms()
        rows = (names.row(r) for r in rows)
    if fmt != "json":
        rows = ({"position": r["position"], "recorded": r["recorded"], "type": r["type"], "id": r["id"],
                 "event": to_json(r["event"]).replace("\n", "").replace("  ", " ") if fmt == "csv" else
                 event_summary(r["event"])} for r in rows)
    with opened(output, bom=fmt == "csv") as echo:
        render_stream(rows, fmt, echo, columns=("position", "recorded", "type", "id", "event"), empty="(no events)")


@cli.command()
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


@cli.command()
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


@cli.command()
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


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--ruleset", "-r", required=True, help="The rule set the parameters are for.")
@click.option("--from", "from_", required=True, metavar="YYYY-MM", type=MONTH,
              help="First month the parameters apply to.")
@click.option("--replace", "replace", multiple=True, metavar="KEY",
              help="Take this table whole from FILE instead of merging it (dotted, e.g. items or "
                   "departments.finance); repeatable. Removes what FILE's table leaves out.")
@click.option("--id", "id_", help="Adoption id (default: FILE's name and the month).")
@click.option("--note", help="Why (kept in the log).")
@click.pass_obj
@handles_errors
def adopt(c: Context, file: str, ruleset: str, from_: str, replace: tuple[str, ...], id_: str | None,
          note: str | None) -> None:
    """Adopt the parameters in FILE (TOML) from a month on, as a revision of the policy in force.

    FILE says what changes: it is merged over the parameters in force at
    --from (tables key by key; --replace takes a table whole). Scores of
    months from --from move; earlier months keep theirs. Each problem in FILE
    is one line naming the TOML key.

    \b
    Example:
      csat adopt plant-2027.toml --ruleset plant-50 --from 2027-01 --note "new coefficients"
      csat adopt items-2027.toml -r iso-100 --from 2027-01 --replace items   # drops items left out
    """
    report = c.engine(create=True).adopt(file, ruleset=ruleset, from_=from_, id=id_, note=note, replace=replace)
    click.echo(report.summary())


@cli.command()
@click.option("--ruleset", "-r", required=True, help="The rule set.")
@click.option("--params", "params", required=True, type=click.Path(dir_okay=False), help="A TOML parameter file.")
@click.option("--from", "from_", metavar="YYYY-MM", type=MONTH,
              help="The month it would apply from (default: the rule set's first month).")
@click.option("--replace", "replace", multiple=True, metavar="KEY", help="As csat adopt --replace; repeatable.")
@click.option("--period", "-p", type=PERIOD, help="Only this month, quarter or year.")
@click.option("--all", "all_", is_flag=True, help="Every row, not only those that change.")
@format_option()
@output_option
@click.pass_obj
@handles_errors
def whatif(c: Context, ruleset: str, params: str, from_: str | None, replace: tuple[str, ...], period: str | None,
           all_: bool, fmt: str, output: str | None) -> None:
    """Preview an adoption: the scores as `csat adopt` with the same arguments would publish them.

    Nothing is written and nothing is locked. Rows show before, after and
    delta, and grades before and after; the last line (or the JSON summary)
    counts the figures and grades that move and names the largest move.

    \b
    Example:
      csat whatif --ruleset plant-50 --params harsher.toml --from 2026-05
      csat whatif -r airline-1000 --params weights.toml --period 2026-Q1 --all --format csv
      csat whatif -r iso-100 --params items.toml --replace items --format json
    """
    from csat.engine.api import whatif_summary
    rows = c.engine().whatif(ruleset, params, period=period, all=all_, from_=from_, replace=replace)
    summary = whatif_summary(rows)
    with opened(output, bom=fmt == "csv") as echo:
        if fmt == "json":
            echo(to_json({"rows": rows, "summary": summary}))
            return
        echo(render(rows, fmt, empty="(nothing would change)"))
        if fmt == "table":
            big = summary["largest_delta"]
            echo(f"\n{summary['figures_moved']} figures and {summary['grades_moved']} grades would move"
                 + (f"; the largest: {big['subject']} {big['period']} {big['metric']} {big['delta']:+}" if big else ""))


from .demo import demo  # noqa: E402  (registered after the group exists)
from . import describe as _describe, operate as _operate, report as _report  # noqa: E402,F401  (register commands)

cli.add_command(demo)
add_db_option(cli, skip=("copy",))  # `csat scores --db csat-demo.db` as well as `csat --db … scores`


def main() -> None:
    cli(prog_name="csat")


if __name__ == "__main__":
    # `python -m csat.cli.main` runs this file as __main__; the commands of cli/operate.py and
    # cli/report.py register on the group of the imported module, so run that one
    from csat.cli.main import main as _main
    _main()
