"""The options and parameter types every command shares, checked once by click.

A value click refuses is a usage error: one line and exit status 2 (``csat scores --period 2026-13``,
``csat adopt --from 2026-3``, ``csat rectifications --as-of 2026-02-30``). Every command accepts
``--db`` (after its name too: ``csat scores --db csat-demo.db``) and ``$CSAT_DB``.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from csat.engine import periods
from csat.engine.app.api import DB_ENV
from csat.engine.read.months import default_jobs

DB_HELP = ("The store: a SQLite file, or postgresql://USER[:PASS]@HOST[:PORT]/DBNAME for a store shared by "
           "several sites. Default: ./csat.db.")


class _Checked(click.ParamType):
    """A text value checked by ``problem`` (a function returning why it is wrong, or None)."""

    def __init__(self, name: str, problem: Callable[[str], str | None]):
        self.name = name
        self._problem = problem

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        value = str(value)
        if (why := self._problem(value)) is not None:
            self.fail(why, param, ctx)
        return value


def _period_problem(value: str) -> str | None:
    try:
        periods.kind(value)
    except ValueError:
        return f"expected a month YYYY-MM (01-12), a quarter YYYY-Qn or a year YYYY, got {value!r}"
    return None


def _as_of_problem(value: str) -> str | None:
    if periods.valid_as_of(value):
        return None
    return f"expected a log position or a real time YYYY-MM-DD[THH:MM[:SS]], got {value!r}"


#: ``YYYY-MM``, ``YYYY-Qn`` or ``YYYY``
PERIOD = _Checked("period", _period_problem)
#: a real month ``YYYY-MM``
MONTH = _Checked("month", periods.month_problem)
#: a real date ``YYYY-MM-DD``
DATE = _Checked("date", periods.date_problem)
#: a log position, or a real recording time
AS_OF = _Checked("as-of", _as_of_problem)


def as_of_option(what: str = "As published"):
    """``--as-of N|TIME``: a log position or a recording time."""
    return click.option("--as-of", "as_of", metavar="N|TIME", type=AS_OF,
                        help=f"{what} when the log ended at position N or at recording time TIME "
                             "(YYYY-MM-DD[THH:MM[:SS]], UTC).")


def jobs_option(what: str):
    """``--jobs N``: the processes scoring rule-set months at once (default: the machine's cores)."""
    return click.option("--jobs", "-j", type=click.IntRange(min=1), default=default_jobs,
                        show_default="the machine's cores", help=f"Processes scoring {what} at once "
                                                                 "(the same figures as one).")


def _set_db(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.obj.use(value)


def db_param() -> click.Option:
    """``--db TARGET`` as a command's own option: it overrides ``csat --db`` and ``$CSAT_DB``."""
    return click.Option(["--db"], metavar="TARGET", expose_value=False, callback=_set_db, is_eager=True,
                        help=DB_HELP.replace("Default:", f"Default: ${DB_ENV}, else"))


def add_db_option(group: click.Group, skip: tuple[str, ...] = ()) -> None:
    """Give every command of ``group`` (but ``skip``) its own ``--db``."""
    for name, command in group.commands.items():
        if name not in skip and not any(p.name == "db" for p in command.params):
            command.params.insert(0, db_param())
        if isinstance(command, click.Group):  # and each of its own commands (csat round status … --db)
            add_db_option(command)
