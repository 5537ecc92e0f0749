"""The ``csat`` group and what every command shares: the store a command works on
(:class:`Context`), errors as one line on stderr (:func:`handles_errors`, :func:`fail`), usage errors
as one line too (:class:`CsatGroup`). No command lives here: ``cli/commands/`` holds them and
``cli/main.py`` assembles them."""
from __future__ import annotations

import contextlib
import functools
import os
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import click

from csat.engine import CsatError, Engine, IngestFailed, default_target
from csat.engine.app.api import DB_ENV
from csat.engine.errors import one_line
from csat.engine.log.keys import key_store_path
from csat.engine.log.store import Store, discard_new, display
from csat.engine.log.sqlite import sqlite_message

from .options import DB_HELP


class Context:
    def __init__(self, db: str | None):
        self.db_given = db is not None
        self.db = db if db is not None else default_target()
        self._engine: Engine | None = None
        self._keys_existed = True

    def use(self, db: str) -> None:
        """The store a command's own ``--db`` names."""
        self.db, self.db_given = db, True

    def engine(self, create: bool = False) -> Engine:
        """The opened store. Only writing commands (``create``) make a new one; a reading command
        on a path that is not a csat store fails with one line."""
        if self._engine is None:
            if create and not os.path.exists(self.db):  # (a key file this command makes goes with its store)
                self._keys_existed = os.path.exists(key_store_path(self.db))
            self._engine = Engine.open(self.db, create=create)
        return self._engine

    def discard_new_store(self, existed: bool) -> None:
        """A command that created a store and then failed (or was interrupted) leaves no empty
        store behind: one this command created, that holds no event and that no other process
        is writing to, is removed."""
        engine, self._engine = self._engine, None
        if existed or not os.path.exists(self.db):  # (a database on a server is left as it is)
            if engine is not None:
                with contextlib.suppress(Exception):
                    engine.close()
            return
        try:
            store = engine.store if engine is not None else Store(self.db, create=False)
        except CsatError:  # (NoStore, "not a SQLite database") interrupted while it was being made: no log in it
            discard_new(self.db)
            self._discard_new_keys()
            return
        except Exception:  # noqa: BLE001 - whatever it is, it is kept
            return
        empty = False
        with contextlib.suppress(Exception):  # whatever fails here, the store is kept
            try:
                if store.conn.in_transaction:
                    store.rollback()
                if store.try_begin_write():  # not while another process writes to it
                    empty = store.max_position() == 0
                    store.rollback()
            finally:
                store.close()
        if empty:
            discard_new(self.db)
            self._discard_new_keys()

    def _discard_new_keys(self) -> None:
        """The key file this command created beside the store it removes (keys of events never
        appended; their owners' names with them)."""
        if not self._keys_existed:
            with contextlib.suppress(OSError):
                os.remove(key_store_path(self.db))

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


#: the exit status of a command stopped by Ctrl-C (SIGINT), as shells report it: 128 + 2
INTERRUPTED = 130


def interrupted(e: BaseException | None) -> bool:
    """Was ``e`` (or an error raised while handling it) caused by Ctrl-C?"""
    seen = 0
    while e is not None and seen < 20:
        if isinstance(e, KeyboardInterrupt):
            return True
        e, seen = e.__cause__ or e.__context__, seen + 1
    return False


def foreign_db_error(db: str, e: BaseException) -> str | None:
    """A database error that reached the command unwrapped — psycopg's, its pool's (PoolTimeout),
    eventsourcing's persistence errors — as one line (what went wrong, not what was kept); None
    for any other error."""
    module = type(e).__module__ or ""
    if not module.startswith(("psycopg", "eventsourcing.persistence")):
        return None
    first = (str(e).strip().splitlines() or [type(e).__name__])[0]
    return f"the PostgreSQL server at {display(db)} went away or cannot be reached ({first})"


def pause_for_test(moment: str) -> None:
    """A test seam, inert unless ``$CSAT_TEST_PAUSE_<moment>`` names a file (only the tests set
    it: tests/test_interrupts.py): at this moment the command creates ``<file>.reached`` and
    waits, up to a minute, until ``<file>`` exists — the test stops the server or sends Ctrl-C
    exactly then."""
    path = os.environ.get(f"CSAT_TEST_PAUSE_{moment}")
    if not path:
        return
    open(f"{path}.reached", "w").close()
    deadline = time.monotonic() + 60
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.01)


class CommitWatch:
    """What a write committed, known exactly: wraps ``store``'s ``begin_write`` and ``commit``
    (until :meth:`detach`) to note the log's end before and at the commit. Ctrl-C is held from
    the COMMIT until :meth:`detach` (then raised), so it can never fall between the commit and
    the caller knowing of it."""

    def __init__(self, store: Store):
        self.store = store
        self.start: int | None = None      #: the log's end when the write began
        self.position: int | None = None   #: the log's end at the commit (None: nothing committed)
        self._held: Any = None
        self._pending = False
        begin, commit = store.begin_write, store.commit

        def begin_write() -> None:
            begin()
            self.start = store.max_position()

        def committed(check: Callable[[], None] | None = None) -> None:
            last = store.max_position()
            pause_for_test("BEFORE_COMMIT")
            self._hold()
            commit(check)
            self.position = last
        store.begin_write, store.commit = begin_write, committed  # type: ignore[method-assign]

    @property
    def appended(self) -> int:
        return (self.position or 0) - (self.start or 0)

    def _hold(self) -> None:
        if threading.current_thread() is threading.main_thread():
            self._held = signal.signal(signal.SIGINT, lambda *_: setattr(self, "_pending", True))

    def detach(self) -> None:
        """The store as it was; a Ctrl-C held over the commit is raised now."""
        for name in ("begin_write", "commit"):
            self.store.__dict__.pop(name, None)
        if self._held is not None:
            signal.signal(signal.SIGINT, self._held)
            self._held = None
            if self._pending:
                raise KeyboardInterrupt


def fail(message: str, code: int = 1) -> None:
    click.echo(f"csat: {one_line(message)}", err=True)
    sys.exit(code)


def c_db(args: tuple[Any, ...]) -> str:
    return next((a.db for a in args if isinstance(a, Context)), "")


def handles_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Errors become one line on stderr (exit 1), never a traceback; Ctrl-C exits 130."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except KeyboardInterrupt:
            fail("interrupted", INTERRUPTED)
        except IngestFailed as e:
            for p in e.problems:
                click.echo(p, err=True)
            fail(str(e))
        except CsatError as e:
            if interrupted(e):  # (an error met while Ctrl-C unwound the command)
                fail("interrupted", INTERRUPTED)
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
        except Exception as e:
            line = foreign_db_error(c_db(args), e)
            if line is None:
                raise
            fail(f"{line}; nothing of this command's unfinished work was written: run it again")
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
        except click.Abort as e:  # a question answered no (or stdin closed): 1; Ctrl-C: 130
            fail("interrupted", INTERRUPTED) if interrupted(e) else fail("aborted", 1)
        except KeyboardInterrupt:
            fail("interrupted", INTERRUPTED)


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
