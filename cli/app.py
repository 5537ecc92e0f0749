"""The ``csat`` group and what every command shares: the store a command works on
(:class:`Context`), errors as one line on stderr (:func:`handles_errors`, :func:`fail`), usage errors
as one line too (:class:`CsatGroup`). No command lives here: ``cli/commands/`` holds them and
``cli/main.py`` assembles them."""
from __future__ import annotations

import functools
import os
import sqlite3
import sys
from collections.abc import Callable
from typing import Any

import click

from csat.engine import CsatError, Engine, IngestFailed, default_target
from csat.engine.app.api import DB_ENV
from csat.engine.errors import one_line
from csat.engine.log.store import discard_new
from csat.engine.log.sqlite import sqlite_message

from .options import DB_HELP


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
        if self._engine is not None:
            try:
                self._engine.close()
            finally:
                self._engine = None
        if not existed:
            discard_new(self.db)

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


class CsatGroup(click.Group):
    """The ``csat`` group: a usage error is one line too (``csat: scores: Invalid value for
    '--period' …; csat scores --help``), with exit status 2."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        try:
            return super().main(*args, standalone_mode=False, **kwargs)
        except click.UsageError as e:
            where = e.ctx.command_path if e.ctx is not None else "csat"
            sub = where.partition(" ")[2]  # "csat: No such command …", not "csat: csat: …"
            fail(f"{sub + ': ' if sub else ''}{e.format_message()} (see {where} --help)", e.exit_code)
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
