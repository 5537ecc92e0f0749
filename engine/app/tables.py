"""Tables in and out: the API's rows as Arrow tables and pandas DataFrames, and a DataFrame of
survey responses appended as a CSV sheet of them would be.

pyarrow and pandas are optional (``pip install 'csat[frames]'``): nothing here imports them until
a table is asked for, so ``import csat.engine`` never does.

Out (``output="arrow"`` or ``"pandas"`` on :meth:`~csat.engine.Engine.scores`,
:meth:`~csat.engine.Engine.whatif`, :meth:`~csat.engine.Engine.items` and
:meth:`~csat.engine.Engine.round_status`): each result has a **fixed schema** — the same columns of
the same types in the same order whatever the rows hold, an empty result included — so code that
reads one month's table reads every month's. Figures are ``decimal128(38, s)``: exact, never a
float, and to pandas they come as :class:`decimal.Decimal` objects with every published digit
(``Decimal('83.10')``). The scale ``s`` of a score table is the largest ``precision`` its rule
sets publish at in this store — the shipped defaults' and every adoption's (2 where a rule set has
no such parameter, as the engine rounds) — so every published figure fits exactly; a figure with
more places than that (a rule set no longer installed) widens it rather than lose a digit. The
keys a rule set adds to its rows (``events.md`` §4) go in one ``extras`` column as JSON text, with
Decimals as exact numbers (read it with ``json.loads(text, parse_float=Decimal)``).

In (:meth:`~csat.engine.Engine.append_frame`): a DataFrame is read as ``csat ingest`` reads a CSV
sheet (:mod:`csat.engine.app.readers`): the same column names, Chinese headers, ``reason:<item>``,
``role:<role>``, item labels as headers and ``columns`` maps. A missing cell (NaN, None, NA, NaT)
is an empty cell: no answer; a cell equal to ``na`` is not applicable; numbers stay numbers.
"""
from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from .. import periods
from ..errors import CsatError, IngestFailed, InvalidParams
from ..jsonable import encoder
from ..read.scoreviews import ANNOUNCED
from .readers import Line, _sheet_rows, _text, column_map

if TYPE_CHECKING:
    import pyarrow as pa

Output = Literal["rows", "pandas", "arrow"]
OUTPUTS = ("rows", "pandas", "arrow")
#: digits of every decimal column (Arrow's decimal128 holds up to 38)
DIGITS = 38
#: places of the items' ``points`` and ``possible`` (sums of answers' points; never a published figure)
ITEM_PLACES = 6
#: places of an item's ``attainment`` (:mod:`csat.engine.read.items` rounds it to 2)
ATTAINMENT_PLACES = 2
_EXTRAS = encoder("number")


def _pa() -> Any:
    try:
        import pyarrow
    except ImportError:
        raise CsatError("tables need pyarrow (and pandas for DataFrames): pip install 'csat[frames]'") from None
    return pyarrow


def check_output(output: str) -> None:
    """Refuse an ``output`` other than ``rows``, ``pandas`` or ``arrow`` (CsatError)."""
    if output not in OUTPUTS:
        raise CsatError(f"output: expected one of {', '.join(OUTPUTS)}, got {output!r}")


def as_pandas(table: pa.Table) -> Any:
    """A table as a pandas DataFrame: decimals as :class:`decimal.Decimal` objects (every digit
    kept), text as strings, ``None`` where a value is missing."""
    try:
        import pandas  # noqa: F401 - to_pandas needs it; say so plainly
    except ImportError:
        raise CsatError("DataFrames need pandas: pip install 'csat[frames]'") from None
    return table.to_pandas()


def shaped(table: pa.Table, output: Output) -> Any:
    """``table`` as ``output`` asks: the Arrow table itself, or a DataFrame."""
    return as_pandas(table) if output == "pandas" else table


def places(value: Decimal | None) -> int:
    """The decimal places a value is written with (``83.10``: 2; None: 0)."""
    if value is None or not value.is_finite():
        return 0
    return max(0, -int(value.as_tuple().exponent))


def precision_of(engine: Any, ruleset: str | None = None) -> int:
    """The places the figures of ``ruleset`` are published at in this store — of every rule set
    installed or in the log, without one: the largest ``precision`` of the shipped defaults and of
    every adoption (2 where the parameters have no ``precision``, as the engine rounds)."""
    adoptions = engine.projection.state()[0]
    ids = [ruleset] if ruleset is not None else sorted({*engine.rulesets, *engine.projection.missing()})
    found = [0]
    for rid in ids:
        found += [getattr(a.params, "precision", 2) for a in adoptions.of(rid)]
        rs = engine.rulesets.get(rid)
        if rs is not None:
            try:
                found.append(getattr(rs.decode_params(rs.default_params()), "precision", 2))
            except Exception:  # noqa: BLE001 - a plugin whose defaults do not decode: the engine's default
                found.append(2)
    return max(p for p in found if isinstance(p, int))


def _decimal(places_: int) -> Any:
    return _pa().decimal128(DIGITS, places_)


def _table(schema: pa.Schema, rows: list[dict[str, Any]]) -> pa.Table:
    pa = _pa()
    try:
        return pa.Table.from_pylist(rows, schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:  # a value that does not fit its column
        raise CsatError(f"cannot make the table: {e}") from None


# -- scores -------------------------------------------------------------------------

#: the score table's columns beside the figures, in order (``extras``: the rule set's own keys, JSON)
SCORE_TEXT = ("ruleset", "adoption", "period", "kind", "subject", "subject_name", "metric")
SCORE_FIGURES = ("score", "before", "delta", "announced", "announced_delta")


def score_schema(scale: int) -> pa.Schema:
    """The score table's schema (the same for every call at the same scale)."""
    pa = _pa()
    dec = _decimal(scale)
    return pa.schema([*((c, pa.string()) for c in SCORE_TEXT), ("score", dec), ("grade", pa.string()),
                      ("grade_label", pa.string()), ("responses", pa.int64()), ("before", dec), ("delta", dec),
                      ("announced", dec), ("announced_delta", dec), ("announced_on", pa.string()),
                      ("announced_events", pa.list_(pa.string())), ("announcement", pa.string()),
                      ("extras", pa.string())])


def score_table(rows: list[dict[str, Any]], *, scale: int) -> pa.Table:
    """Score rows (:meth:`~csat.engine.Engine.scores`) as a table of :func:`score_schema`; the
    scale is widened to the places of any figure that has more (no digit is ever lost)."""
    scale = max([scale, *(places(r.get(k)) for r in rows for k in SCORE_FIGURES)])
    schema = score_schema(scale)
    fixed = set(schema.names) | set(ANNOUNCED)
    out = []
    for r in rows:
        row = {k: r.get(k) for k in schema.names}
        if row["kind"] is None and r.get("period"):
            row["kind"] = periods.kind(r["period"])
        extras = {k: v for k, v in r.items() if k not in fixed}
        row["extras"] = _EXTRAS.encode(extras).decode() if extras else None
        out.append(row)
    return _table(schema, out)


# -- what-if, items, rounds -----------------------------------------------------------

def whatif_schema(scale: int) -> pa.Schema:
    """The what-if table's schema: a figure before and after, and the grades."""
    pa = _pa()
    dec = _decimal(scale)
    return pa.schema([("ruleset", pa.string()), ("period", pa.string()), ("kind", pa.string()),
                      ("subject", pa.string()), ("metric", pa.string()), ("before", dec), ("after", dec),
                      ("delta", dec), ("grade_before", pa.string()), ("grade_after", pa.string())])


def whatif_table(rows: list[dict[str, Any]], *, ruleset: str, scale: int) -> pa.Table:
    """What-if rows (:meth:`~csat.engine.Engine.whatif`) of ``ruleset`` as a table (the scale
    widened to any figure with more places: a what-if of a higher ``precision``)."""
    scale = max([scale, *(places(r.get(k)) for r in rows for k in ("before", "after", "delta"))])
    return _table(whatif_schema(scale), [{**r, "ruleset": ruleset, "kind": periods.kind(r["period"])} for r in rows])


def items_schema() -> pa.Schema:
    """The items table's schema (:func:`csat.engine.read.items.item_rows`)."""
    pa = _pa()
    return pa.schema([("ruleset", pa.string()), ("period", pa.string()), ("kind", pa.string()),
                      ("item", pa.string()), ("label", pa.string()), ("attainment", _decimal(ATTAINMENT_PLACES)),
                      ("points", _decimal(ITEM_PLACES)), ("possible", _decimal(ITEM_PLACES)),
                      ("responses", pa.int64()), ("response_ids", pa.list_(pa.string()))])


def items_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Item rows (:meth:`~csat.engine.Engine.items`) as a table of :func:`items_schema`."""
    return _table(items_schema(), [{**r, "kind": periods.kind(r["period"])} for r in rows])


def round_schema() -> pa.Schema:
    """The round-status table's schema: one row per assignment, with its round's fields."""
    pa = _pa()
    return pa.schema([("round", pa.string()), ("ruleset", pa.string()), ("period", pa.string()),
                      ("kind", pa.string()), ("due", pa.string()), ("closed", pa.string()), ("as_of", pa.string()),
                      ("rater", pa.string()), ("subject", pa.string()), ("subject_name", pa.string()),
                      ("status", pa.string()), ("late", pa.bool_()), ("response", pa.string()),
                      ("recorded", pa.string()), ("respondents", pa.list_(pa.string()))])


def round_table(status: dict[str, Any]) -> pa.Table:
    """A round's status (:meth:`~csat.engine.Engine.round_status`) as one row per assignment
    (answered, declined or missing; late), each with the round's fields; the response rates
    (回收率) are a ``groupby`` of it away."""
    head = {k: status[k] for k in ("round", "ruleset", "period", "due", "closed", "as_of")}
    head["kind"] = periods.kind(status["period"])
    return _table(round_schema(), [{**head, **a} for a in status["assignments"]])


# -- the API's outputs ---------------------------------------------------------------

def scores_out(engine: Any, rows: list[dict[str, Any]], output: Output, ruleset: str | None) -> Any:
    """:meth:`~csat.engine.Engine.scores`'s rows as ``output`` asks (``rows``: as they are)."""
    if output == "rows":
        return rows
    return shaped(score_table(rows, scale=precision_of(engine, ruleset)), output)


def whatif_out(engine: Any, rows: list[dict[str, Any]], output: Output, ruleset: str) -> Any:
    """:meth:`~csat.engine.Engine.whatif`'s rows as ``output`` asks."""
    if output == "rows":
        return rows
    return shaped(whatif_table(rows, ruleset=ruleset, scale=precision_of(engine, ruleset)), output)


def items_out(rows: list[dict[str, Any]], output: Output) -> Any:
    """:meth:`~csat.engine.Engine.items`'s rows as ``output`` asks."""
    return rows if output == "rows" else shaped(items_table(rows), output)


def round_out(status: dict[str, Any], output: Output) -> Any:
    """:meth:`~csat.engine.Engine.round_status` as ``output`` asks (a table: the assignments)."""
    return status if output == "rows" else shaped(round_table(status), output)


# -- a DataFrame in -------------------------------------------------------------------

class _FrameRows:
    """A DataFrame's rows as a csv reader gives them (lists of text, ``line_num``), each cell as
    the text a CSV export of it would hold."""

    def __init__(self, frame: Any, na: Any):
        self._header = [str(c) for c in frame.columns]
        self._rows = frame.itertuples(index=False, name=None)
        self._na = None if na is None else str(na).strip()
        self.line_num = 0

    def __iter__(self) -> "_FrameRows":
        return self

    def __next__(self) -> list[str]:
        if self.line_num == 0:
            self.line_num = 1
            return self._header
        row = next(self._rows)
        self.line_num += 1
        return [self._cell(v) for v in row]

    def _cell(self, value: Any) -> str:
        if _missing(value):
            return ""
        if type(value).__module__ == "numpy" and hasattr(value, "item"):
            value = value.item()  # numpy's int64, float64, bool_, str_: the plain value
        text = str(value) if isinstance(value, Decimal) else _text(value)
        return "N/A" if self._na is not None and text.strip() == self._na else text


def _missing(value: Any) -> bool:
    """None, NaN, pandas' NA and NaT: an empty cell."""
    if value is None:
        return True
    if isinstance(value, float):
        return value != value
    if type(value).__name__ in ("NAType", "NaTType"):
        return True
    try:
        return bool(value != value)  # numpy's NaN; a list or an array is a value, not missing
    except (TypeError, ValueError):
        return False


def frame_columns(columns: dict[str, str] | str | os.PathLike[str] | None) -> dict[str, str] | None:
    """``columns`` as ``csat ingest --columns`` takes it: a dict, or a TOML file's ``[columns]``."""
    if columns is None or isinstance(columns, dict):
        return columns
    from ..scoring.params import read_toml
    try:
        return column_map(read_toml(columns), os.fspath(columns))
    except InvalidParams as e:
        raise CsatError(e.problems[0]) from None
    except ValueError as e:
        raise CsatError(str(e)) from None


def frame_lines(frame: Any, *, na: Any = "N/A", columns: dict[str, str] | None = None,
                source: str = "frame") -> tuple[Iterator[Line], Callable[[str], str]]:
    """A DataFrame's rows as ingest lines (a CSV sheet's, row by row), and the function that
    turns a problem's ``SOURCE:N:`` into ``SOURCE:row LABEL:`` (LABEL: the row's index label; a
    problem of the columns themselves: ``SOURCE: columns: …``).

    The lines are named ``SOURCE.csv`` so that ingest reads them as a sheet (item labels may
    head item columns); the renaming takes that back out of every message.
    """
    if not hasattr(frame, "itertuples") or not hasattr(frame, "columns"):
        raise CsatError(f"append_frame: expected a pandas DataFrame, got {type(frame).__name__}")
    sheet = f"{source}.csv"
    labels = list(frame.index)
    reader = _FrameRows(frame, na)

    def lines() -> Iterator[Line]:
        for path, number, raw in _sheet_rows(sheet, reader, columns, "columns"):
            yield path, number - 1, raw  # the row's position in the frame, from 1 (the header is 0)

    where = re.compile(re.escape(sheet) + r":(\d+): ")

    def named(message: str) -> str:
        def label(m: re.Match[str]) -> str:
            n = int(m.group(1))
            return f"{source}: " if n == 0 else f"{source}:row {labels[n - 1]}: "
        return where.sub(label, message, count=1)
    return lines(), named


def append_frame(engine: Any, frame: Any, *, na: Any = "N/A", columns: Any = None, source: str = "frame",
                 dry_run: bool = False, actor: Any = None) -> Any:
    """:meth:`csat.engine.Engine.append_frame`'s body: the frame's rows ingested as a sheet's."""
    from .ingest import Ingest
    lines, named = frame_lines(frame, na=na, columns=frame_columns(columns), source=source)
    try:
        report = Ingest(engine.store, engine.rulesets, engine.projection).run(lines, dry_run=dry_run, actor=actor)
    except IngestFailed as e:
        raise IngestFailed([named(p) for p in e.problems]) from None
    report.warnings[:] = [named(w) for w in report.warnings]
    return report
