"""The commands that look after a store rather than read it: ``verify`` (is the history intact?),
``repair`` (chain again what csat wrote without a hash), ``rebuild`` (the read models from the whole
log) and ``copy`` (a whole log into a new store)."""
from __future__ import annotations

import time
from typing import Any

import click

from ..app import Context, fail, handles_errors
from ..options import jobs_option
from ..output import format_option, to_json
from ..progress import ProgressLine


def _published_head(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, str] | None:
    if value is None:
        return None
    position, _, digest = value.partition(":")
    if not position.isdigit() or not digest.startswith("sha256:") or len(digest) != 71:
        raise click.BadParameter(f"expected POSITION:sha256:<64 hex digits> (as a report prints it), got {value!r}")
    return int(position), digest


@click.command()
@click.option("--head", "published", metavar="POSITION:HASH", callback=_published_head,
              help="Also check that a head published earlier (e.g. in a monthly report) is on the chain.")
@format_option("table", "json")
@click.pass_obj
@handles_errors
def verify(c: Context, published: tuple[int, str] | None, fmt: str) -> None:
    """Check that the history of the log is intact: recompute its hash chain in one pass.

    Exit 0 when every event chains and decodes (and --head matches); exit 1
    naming the first position where the log was edited, deleted, inserted or
    damaged. A broken log's rows from there on that do not chain are listed,
    one line each (the first 100), with why and whether `csat repair` may
    chain them again: only rows csat itself wrote without a chain hash.

    \b
    Example:
      csat verify
      csat verify --head 1200:sha256:3f5a…  # the head printed under last month's scores
      csat verify --format json
    """
    engine = c.engine()
    show = ProgressLine("verify", events_total=engine.store.max_position())
    try:
        result = engine.verify(published, progress=lambda n: show(events=n))
    finally:
        show.done()
    if fmt == "json":
        click.echo(to_json(result))
    else:
        if result["intact"] or "problem" not in result:
            click.echo(f"{result['events']} events · head position {result['head_position']} · "
                       f"head {result['head_hash']}")
        else:
            click.echo(f"{result['events']} events chain, up to position {result['head_position']} "
                       f"({result['head_hash']})")
        if "checked_head" in result:
            click.echo(f"published head {result['checked_head']}: "
                       + ("on the chain" if result["head_matches"] else "NOT on this chain"))
        if "affected" in result:
            _affected(result)
    if not result["intact"]:
        if "problem" in result:
            fail(f"the log does not chain at position {result['broken_at']}: {result['problem']}")
        fail(f"the published head {result['checked_head']} is not on this log's chain: history up to it was changed")


def _affected(result: dict[str, Any]) -> None:
    """The rows from the break on that do not chain, one line each, and what can be done."""
    for row in result["affected"]:
        verdict = "repairable" if row["repairable"] else "NOT repairable"
        click.echo(f"position {row['position']}: {verdict}: {row['problem']}")
    if (more := result["affected_count"] - len(result["affected"])) > 0:
        click.echo(f"… and {more} more")
    if result["repairable"]:
        click.echo(f"csat repair chains these {result['affected_count']} rows again (csat log shows them first)")
    else:
        click.echo("a row changed outside csat cannot be repaired: restore the store from a backup")


def _positions(first: int, last: int) -> str:
    """A range of positions re-chained, and how many rows."""
    if first == last:
        return f"position {first} (1 row)"
    return f"positions {first}-{last} ({last - first + 1} rows)"


@click.command()
@click.option("--dry-run", is_flag=True, help="Say what would be chained again; write nothing.")
@click.option("--yes", is_flag=True, help="Repair without asking.")
@click.pass_obj
@handles_errors
def repair(c: Context, dry_run: bool, yes: bool) -> None:
    """Chain again the rows csat itself wrote without a chain hash.

    A fault of csat's own can leave rows it wrote without a hash; `csat
    verify` then lists them as repairable and every read and `csat rebuild`
    stop at the first. When every row from the break on that does not chain
    is one csat wrote (it decodes to the bytes csat writes for its event,
    under the event's key and type), this chains them as the append would
    have and records that as one `chain_repaired` event, in one transaction:
    then `csat verify` passes and `csat rebuild` works. A row changed outside
    csat — a hash that does not match, a deleted position, a row that does
    not decode or is not under its event's key — keeps the refusal: exit 1
    naming it, nothing written (restore the store from a backup).

    A row forged to be exactly what csat writes cannot be told from one:
    look at the listed rows (csat log) before confirming.

    \b
    Examples:
      csat verify               # which rows do not chain, why, and whether each is repairable
      csat repair --dry-run     # what would be chained again; nothing written
      csat repair --yes         # without asking
      csat log --type chain_repaired   # the repairs made, with their positions
    """
    engine = c.engine()
    if dry_run or not yes:
        plan = engine.repair(dry_run=True)
        if not plan["repaired"]:
            return _holds(plan)
        if dry_run:
            for first, last in plan["ranges"]:
                click.echo(f"would chain again {_positions(first, last)}")
            return None
        if not click.confirm(f"Chain again {plan['repaired']} rows csat wrote without a chain hash (positions "
                             f"{plan['from_position']} to {plan['to_position']}), and record it in the log?",
                             err=True):
            raise click.Abort()
    done = engine.repair()
    if not done["repaired"]:
        return _holds(done)
    for first, last in done["ranges"]:
        click.echo(f"chained again {_positions(first, last)}")
    click.echo(f"recorded as event {done['event']} (chain_repaired) at position {done['position']} · "
               f"head {done['head_hash']}")
    return None


def _holds(result: dict[str, Any]) -> None:
    click.echo(f"the chain holds: nothing to repair (head position {result['head_position']} · "
               f"head {result['head_hash']})")


@click.command()
@jobs_option("rule-set months")
@click.pass_obj
@handles_errors
def rebuild(c: Context, jobs: int) -> None:
    """Drop the read models and rebuild them from the whole log.

    The rebuild runs in one transaction: another process reading meanwhile
    sees the previous read models until the new ones are complete. Once the
    log is folded, rule-set months are scored by --jobs processes; the rows
    written are the same, in the same order, whatever the number.

    \b
    Examples:
      csat rebuild
      csat rebuild --jobs 1      # one process
    """
    engine = c.engine()
    show = ProgressLine("rebuild", events_total=engine.store.max_position())
    t0 = time.perf_counter()
    try:
        n = engine.rebuild(progress=show, jobs=jobs)
    finally:
        show.done()
    dt = time.perf_counter() - t0
    click.echo(f"rebuilt from {n} events in {dt:.2f} s ({n / dt if dt else 0:,.0f} events/s)")


@click.command()
@click.argument("source", metavar="SOURCE")
@click.argument("target", metavar="TARGET")
@format_option("table", "json")
@click.pass_obj
@handles_errors
def copy(c: Context, source: str, target: str, fmt: str) -> None:
    """Copy a whole log from one store to a new, empty one, then build its read models.

    SOURCE and TARGET are each a SQLite file or a postgresql:// URL (--db is
    not used). Every event keeps its position, recording time and chain hash,
    so `csat verify` prints the same head on both. The copy is all or
    nothing: a target that already holds events, or a source that does not
    verify, is refused and nothing is written. Others may keep appending to
    the source; the copy takes the log as it was when it started.

    \b
    Examples:
      csat copy csat.db postgresql://csat@db.example/csat      # move an office's store to the group's server
      csat copy postgresql://csat@db.example/csat backup.db    # and back, e.g. a nightly backup
    """
    c.db = source
    engine = c.engine()
    copying = ProgressLine("copy", events_total=engine.store.max_position())
    rebuilding = ProgressLine("rebuild", events_total=engine.store.max_position())

    def rebuild_progress(events: int = 0, scored: int = 0, lines: int = 0) -> None:
        if not rebuilding.events and not rebuilding.scored:
            copying.done()  # the copy's line stays above the rebuild's
        rebuilding(events, scored, lines)

    try:
        result = engine.copy_to(target, progress=copying, rebuild_progress=rebuild_progress)
    finally:
        copying.done()
        rebuilding.done()
    if fmt == "json":
        click.echo(to_json(result))
        return
    click.echo(f"copied {result['events']} events · head position {result['head_position']} · "
               f"head {result['head_hash']}; read models rebuilt from {result['rebuilt']} events")
