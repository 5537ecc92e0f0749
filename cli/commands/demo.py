"""``csat demo``: a fresh demo database from the bundled examples of every rule set."""
from __future__ import annotations

import os
import shlex
import sqlite3

import click

from csat.engine import Engine
from csat.engine.log.store import display
from csat.plugins import load_rulesets, make_plugin_manager

from ..app import fail, handles_errors
from ..output import explanation_text, render_scores

DEMO_DB = "csat-demo.db"
_MARK = "csat_demo"


def _is_demo(path: str) -> bool:
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            return conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (_MARK,)).fetchone() is not None
    except sqlite3.Error:
        return False


def _remove(path: str) -> None:
    for name in (path, path + "-wal", path + "-shm", os.path.splitext(path)[0] + ".keys"):  # its key store too
        if os.path.exists(name):
            os.remove(name)


def _demo_of(pm) -> tuple[list[str], tuple | None]:
    """The demo files and the featured figure of the plugins that loaded; a plugin whose demo
    hook fails is left out with one line, like a plugin that fails to load."""
    _, broken = load_rulesets(pm)
    loaded = {name for name, _ in pm.list_name_plugin()} - {b.plugin for b in broken}
    for b in broken:
        click.echo(f"csat: warning: {b.line()}", err=True)
    files: list[str] = []
    featured = None
    for hook in ("csat_demo_files", "csat_demo_explain"):
        for impl in reversed(getattr(pm.hook, hook).get_hookimpls()):  # pluggy's calling order
            name = pm.get_name(impl.plugin)
            if name not in loaded:
                continue
            try:
                answer = impl.function()
            except Exception as e:  # noqa: BLE001 — plugin code
                click.echo(f"csat: warning: plugin {name}: {hook} raised {type(e).__name__}: {e}; left out", err=True)
                continue
            if hook == "csat_demo_files":
                files += [os.fspath(f) for f in answer or ()]  # in the order plugins are called (hookspec)
            elif answer and featured is None:
                featured = answer
    return files, featured


@click.command()
@click.option("--force", is_flag=True, help="Replace the target even if it is not a demo database.")
@click.pass_obj
def demo(c, force: bool) -> None:
    """Build a demo database from the bundled examples and show its scores.

    Writes ./csat-demo.db (or the --db given). A previous demo database is
    replaced; any other existing store is left alone unless --force is given.

    \b
    Example:
      csat demo
      csat --db /tmp/try.db demo
    """

    @handles_errors
    def run() -> None:
        target = c.db if c.db_given else DEMO_DB
        if os.path.exists(target) and os.path.getsize(target) > 0:
            if not (_is_demo(target) or force):
                fail(f"{target} exists and is not a demo database; choose another with --db, or --force")
            _remove(target)
        pm = make_plugin_manager()
        files, featured = _demo_of(pm)
        with Engine.open(target) as engine:
            engine.store.conn.execute(f"CREATE TABLE IF NOT EXISTS {_MARK} (note TEXT)")
            report = engine.ingest(files)
            click.echo(f"demo database {target}: {report.summary()} from {len(files)} example file(s)\n")
            rows = engine.scores()
            click.echo(render_scores(rows, "table"))
            shown = shlex.quote(display(target))  # a URL with & must be quoted to paste it
            if featured:
                ruleset, subject, period, metric = featured
                click.echo(f"\n$ csat --db {shown} explain --ruleset {ruleset} --subject {subject} "
                           f"--period {period}" + (f" --metric {metric}" if metric else ""))
                click.echo(explanation_text(engine.explain(ruleset, subject, period, metric)))
            click.echo(f"\nNext: csat --db {shown} scores --period 2026-Q1 --format json, "
                       f"csat --db {shown} log, csat --db {shown} explain --help")
    run()
