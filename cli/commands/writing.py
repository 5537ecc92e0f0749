"""The commands that append to the log: ``ingest`` (events, sheets, workbooks), ``adopt`` (a
parameter revision) and ``whatif`` (what an adoption would publish, appending nothing)."""
from __future__ import annotations

import contextlib
import os
import sys

import click

from csat.engine import CsatError

from csat.engine.app.returns import receiving
from csat.engine.log.pgsql import StoreLost

from ..app import INTERRUPTED, CommitWatch, Context, fail, foreign_db_error, handles_errors, interrupted, pause_for_test
from ..options import DATE, MONTH, PERIOD, jobs_option
from ..output import format_option, opened, output_option, render, to_json
from ..progress import ProgressLine


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


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--dry-run", is_flag=True, help="Validate only; append nothing.")
@click.option("--sheet", metavar="NAME", help="The sheet of an .xlsx workbook to read (default: the first).")
@click.option("--columns", metavar="MAP.toml", type=click.Path(dir_okay=False),
              help="Sheet headers to column names: a [columns] table of \"header\" = \"column\" lines.")
@click.option("--received", metavar="YYYY-MM-DD", type=DATE,
              help="The day these returns were handed in, for every response that names none (lateness goes by it).")
@jobs_option("rule-set months when most of the log is new and replayed whole")
@click.pass_obj
@handles_errors
def ingest(c: Context, files: tuple[str, ...], dry_run: bool, sheet: str | None, columns: str | None,
           received: str | None, jobs: int) -> None:
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
      csat ingest forms/ws-4.xlsx --received 2026-03-27   # handed in on the 27th, keyed in later
    """
    existed = os.path.exists(c.db)
    show = ProgressLine("ingest", lines_total=_count_lines(files) if sys.stderr.isatty() else 0)
    watch: CommitWatch | None = None
    try:
        engine = c.engine(create=True)
        watch = CommitWatch(engine.store)
        try:
            with receiving(received):  # (a response that names its own `received` keeps it)
                report = engine.ingest(files, dry_run=dry_run, progress=show, sheet=sheet, columns=columns,
                                       catching_up=True)
        finally:
            watch.detach()  # a Ctrl-C held over the commit is raised now
        pause_for_test("AFTER_COMMIT")
        for a in report.implicit_adoptions:
            click.echo(f"recorded implicit adoption of the shipped defaults: {a}", err=True)
        for w in report.warnings:
            click.echo(f"csat: warning: {w}", err=True)
        if not dry_run:  # even with nothing new: a killed ingest may have left its events unscored
            show.events_total = engine.store.max_position() - engine.projection.tracked()
            engine.catch_up(progress=show, jobs=jobs)  # the next read is instant
            engine.caught_up_done()
    except (Exception, KeyboardInterrupt) as e:
        _what_was_kept(c, e, watch, existed)
        raise
    finally:
        show.done()
    click.echo(report.summary())


def _what_was_kept(c: Context, e: BaseException, watch: CommitWatch | None, existed: bool) -> None:
    """An ingest that failed or was interrupted says in one line what it kept: nothing before its
    commit (a store it created is removed), its events after it — the read models not yet."""
    if watch is None or watch.position is None:
        lost = isinstance(e, StoreLost)
        if isinstance(e, (CsatError, KeyboardInterrupt)) and not (lost and e.at_commit):
            c.discard_new_store(existed)  # nothing appended: no empty store left behind
        if interrupted(e):
            fail("interrupted: nothing appended", INTERRUPTED)
        if lost and not e.at_commit:
            fail(f"{e.detail}; nothing appended (the server rolled the transaction back): run it again")
        return  # (said by handles_errors)
    with contextlib.suppress(Exception):  # the catch-up is over: readers catch up themselves from now on
        c.engine().caught_up_done()
    kept = f"{watch.appended:,} events appended and committed (log position {watch.position:,})"
    why = ("interrupted" if interrupted(e) else getattr(e, "detail", None) or foreign_db_error(c.db, e)
           or (str(e) if isinstance(e, CsatError) else f"{type(e).__name__}: {e}"))
    fail(f"{kept}; the read models were not brought up to date ({why}): "
         "the next command does it", INTERRUPTED if interrupted(e) else 1)


@click.command()
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


@click.command()
@click.option("--ruleset", "-r", required=True, help="The rule set.")
@click.option("--params", "params", required=True, type=click.Path(dir_okay=False), help="A TOML parameter file.")
@click.option("--from", "from_", metavar="YYYY-MM", type=MONTH,
              help="The month it would apply from (default: the rule set's first month).")
@click.option("--replace", "replace", multiple=True, metavar="KEY", help="As csat adopt --replace; repeatable.")
@click.option("--period", "-p", type=PERIOD, help="Only this month, quarter or year.")
@click.option("--all", "all_", is_flag=True, help="Every row, not only those that change.")
@jobs_option("the rule set's months")
@format_option()
@output_option
@click.pass_obj
@handles_errors
def whatif(c: Context, ruleset: str, params: str, from_: str | None, replace: tuple[str, ...], period: str | None,
           all_: bool, jobs: int, fmt: str, output: str | None) -> None:
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
    from csat.engine.read.scoreviews import whatif_summary
    rows = c.engine().whatif(ruleset, params, period=period, all=all_, from_=from_, replace=replace, jobs=jobs)
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


@click.command()
@click.option("--respondent", required=True, metavar="NAME", help="The person whose personal data is erased.")
@click.option("--yes", is_flag=True, help="Erase without asking (it cannot be undone).")
@click.pass_obj
@handles_errors
def erase(c: Context, respondent: str, yes: bool) -> None:
    """Erase a person's personal data, on their request (PIPL / GDPR).

    What is theirs is sealed under a key of their own, in the key store beside
    the log (csat.db → csat.keys): their name (on responses, as a person unit,
    in rounds) and the reasons and comments they gave as a private person (a
    response with no rater unit, or a rater of kind person). A response given
    for a unit (a workshop's return) seals its reasons and comment under the
    unit's key: they are the unit's statement and stay. Complaints and
    rectifications are the cases' own and stay.

    Before asking, it says what will become unreadable: the pseudonym, how many
    names, reasons and comments, and how many of those texts an open complaint
    or rectification cites. Erasure destroys the key and appends an `erasure`
    event that names no one. Every figure, the log's bytes and `csat verify`
    stay as they were; those fields show [erased] everywhere — log, explain,
    the report, and any copy of the store.

    Events written before csat sealed personal data keep theirs in plain form
    (the log is append-only): the command says how many such fields remain.

    \b
    Example:
      csat erase --respondent 张三
    """
    engine = c.engine()
    if not yes:
        click.echo(_scope_line(respondent, engine.erase(respondent, dry_run=True)), err=True)
        if not click.confirm(f"Erase the personal data of {respondent!r}? This cannot be undone", err=True):
            raise click.Abort()
    done = engine.erase(respondent)
    if done["pseudonym"]:
        click.echo(f"erased {done['pseudonym']}: {done['fields']} sealed fields made unreadable")
    if done["plain"]:
        click.echo(f"csat: note: {done['plain']} fields of events written before csat sealed personal data still "
                   "hold theirs in plain form (the log is append-only: they stay)", err=True)


def _scope_line(respondent: str, scope: dict) -> str:
    """What an erasure of ``respondent`` would make unreadable, in one line."""
    def n(count: int, what: str) -> str:
        return f"{count} {what}{'' if count == 1 else 's'}"
    if not scope["pseudonym"]:
        return (f"{respondent!r}: nothing of theirs is sealed; {n(scope['plain'], 'field')} of events written before "
                "csat sealed personal data hold theirs in plain form and stay (the log is append-only)")
    parts = [n(scope["names"], "name"), n(scope["reasons"], "reason"), n(scope["comments"], "comment")]
    if scope["texts"]:
        parts.append(n(scope["texts"], "other text"))
    line = f"{respondent!r} is {scope['pseudonym']}: {', '.join(parts)} sealed under their key will read [erased]"
    if scope["reasons"] + scope["comments"]:
        line += f" ({scope['cited']} of those texts cited by an open complaint or rectification)"
    if scope["plain"]:
        line += f"; {n(scope['plain'], 'field')} written before sealing stay in plain form"
    return line + "; what a unit said, complaints and rectifications stay"
