"""One renderer for every command: ``table`` for people, ``json`` and ``csv`` for programs.

Tables align by display width, so Chinese labels (two columns each) line up.
JSON numbers are written from the exact decimals (``720.00`` stays ``720.00``).
"""
from __future__ import annotations

import contextlib
import csv
import io
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from decimal import ROUND_DOWN, Decimal
from typing import Any

import click
import msgspec

from csat.engine.render.sheets import flat, write_xlsx

FORMATS = ("table", "json", "csv")
_JSON = msgspec.json.Encoder(decimal_format="number")


_FOR = {"table": "table for people", "text": "text for people", "json": "json", "csv": "csv",
        "xlsx": "xlsx for spreadsheets (with -o FILE.xlsx)"}


def format_option(*choices: str, default: str = "table"):
    """The shared ``--format`` option; its help names only the formats the command offers."""
    choices = choices or FORMATS
    people = [_FOR[c] for c in choices if c in ("table", "text")]
    scripts = "/".join(c for c in choices if c in ("json", "csv"))
    said = ", ".join([*people, *([f"{scripts} for scripts"] if scripts else []),
                      *(_FOR[c] for c in choices if c == "xlsx")])
    return click.option("--format", "fmt", type=click.Choice(choices), default=default,
                        show_default=True, help=f"Output format: {said}.")


def output_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``-o/--output FILE``: write there instead of stdout (``-``: stdout)."""
    return click.option("--output", "-o", metavar="FILE", type=click.Path(dir_okay=False, allow_dash=True),
                        help="Write to FILE instead of stdout (- is stdout; a CSV file gets a UTF-8 BOM).")(fn)


def file_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``-o/--output FILE`` and ``--bom``, for the commands whose rows go to spreadsheets."""
    fn = click.option("--bom", is_flag=True,
                      help="Start CSV on stdout with a UTF-8 BOM, so Excel reads Chinese right "
                           "(a CSV written with -o always has one).")(fn)
    return click.option("--output", "-o", metavar="FILE", type=click.Path(dir_okay=False, allow_dash=True),
                        help="Write to FILE instead of stdout (- is stdout; a file is needed for --format xlsx).")(fn)


@contextlib.contextmanager
def opened(output: str | None, bom: bool = False) -> Iterator[Callable[[str], None]]:
    """An ``echo`` that writes lines to ``output`` (a file; a CSV one starts with a UTF-8 BOM), or
    to stdout when there is none or it is ``-``."""
    if output is None or output == "-":
        yield click.echo
        return
    with open(output, "w", encoding="utf-8-sig" if bom else "utf-8", newline="") as f:
        yield lambda line: f.write(line + "\n")


def emit(rows: Sequence[dict[str, Any]], fmt: str, output: str | None, bom: bool, text: Callable[[], str],
         columns: Callable[[], Sequence[str]], title: str) -> None:
    """Put rows where they were asked for: an xlsx workbook, a file (CSV with a BOM: Excel on a
    Chinese Windows reads UTF-8 without one as mojibake), or stdout."""
    if output == "-":
        output = None
    if fmt == "xlsx":
        if not output:
            raise click.UsageError("--format xlsx writes a workbook: give -o FILE.xlsx")
        write_xlsx(rows, columns(), output, title)
        return
    body = text()
    if output:
        with open(output, "w", encoding="utf-8-sig" if fmt == "csv" else "utf-8", newline="") as f:
            f.write(body + "\n")
        return
    click.echo(("\ufeff" if bom and fmt == "csv" else "") + body)


_EXTRA: dict[str, int] = {}  # a non-ASCII character -> columns it takes beyond one


def width(text: str) -> int:
    """Columns ``text`` takes in a terminal: 2 for CJK wide characters, 0 for combining marks."""
    if text.isascii():
        return len(text)
    n = len(text)
    for ch in set(text):  # each distinct character measured once (a long formula repeats a few)
        if ch >= "\x80":
            extra = _EXTRA.get(ch)
            if extra is None:
                extra = _EXTRA[ch] = (1 if unicodedata.east_asian_width(ch) in "WF"
                                      else -1 if unicodedata.combining(ch) else 0)
            if extra:
                n += extra * text.count(ch)
    return n


def pad(text: str, w: int, right: bool = False, own: int | None = None) -> str:
    gap = " " * max(0, w - (width(text) if own is None else own))
    return gap + text if right else text + gap


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return " ".join(f"{k}={cell(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ",".join(cell(v) for v in value)
    return str(value)


def to_json(data: Any) -> str:
    return msgspec.json.format(_JSON.encode(data), indent=1).decode()


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    texts = [[cell(r.get(c)) for c in columns] for r in rows]
    sizes = [[width(v) for v in t] for t in texts]  # measured once: a cell is measured, then padded
    numeric = [all(isinstance(r.get(c), (int, float, Decimal)) and not isinstance(r.get(c), bool)
                   for r in rows if r.get(c) is not None) for c in columns]
    widths = [max([width(c)] + [n[i] for n in sizes]) for i, c in enumerate(columns)]
    lines = ["  ".join(pad(c, widths[i], numeric[i]) for i, c in enumerate(columns)).rstrip(),
             "  ".join("-" * (w if i < len(widths) - 1 else min(w, 80)) for i, w in enumerate(widths))]
    for t, n in zip(texts, sizes):
        lines.append("  ".join(pad(v, widths[i], numeric[i], n[i]) for i, v in enumerate(t)).rstrip())
    return "\n".join(lines)


def columns_of(rows: Sequence[dict[str, Any]], first: Sequence[str] = (), last: Sequence[str] = ()) -> list[str]:
    cols = [c for c in first]
    for r in rows:
        for k in r:
            if k not in cols and k not in last:
                cols.append(k)
    return cols + [c for c in last if any(c in r for r in rows)]


def render(rows: Sequence[dict[str, Any]], fmt: str, first: Sequence[str] = (), last: Sequence[str] = (),
           empty: str = "(no rows)") -> str:
    """Rows as the chosen format; columns in ``first`` order, then any others, then ``last``."""
    if fmt == "json":
        return to_json(list(rows))
    cols = columns_of(rows, first, last)
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(cols)
        for r in rows:
            w.writerow([_csv_value(r.get(c)) for c in cols])
        return buf.getvalue().rstrip("\n")
    if not rows:
        return empty
    return table(rows, cols)


def _csv_value(value: Any) -> Any:
    return "" if value is None else flat(value)


def render_stream(rows: Iterable[dict[str, Any]], fmt: str, emit: Callable[[str], None], columns: Sequence[str],
                  empty: str = "(no rows)", chunk: int = 200) -> None:
    """Rows written as they come (``csat log`` of a million events starts at once and never holds
    them all): JSON as one array, CSV row by row, a table in chunks whose columns only ever widen."""
    if fmt == "json":
        first = True
        for r in rows:
            emit(("[\n" if first else ",\n") + " " + to_json(r).replace("\n", "\n ").rstrip())
            first = False
        emit("[]" if first else "\n]")
        return
    if fmt == "csv":
        emit(",".join(columns))
        for r in rows:
            buf = io.StringIO()
            csv.writer(buf, lineterminator="").writerow([_csv_value(r.get(c)) for c in columns])
            emit(buf.getvalue())
        return
    widths = [width(c) for c in columns]
    batch: list[dict[str, Any]] = []
    shown = False

    def flush() -> None:
        nonlocal shown
        texts = [[cell(r.get(c)) for c in columns] for r in batch]
        for t in texts:
            for i, v in enumerate(t):
                widths[i] = max(widths[i], width(v))
        numeric = [c == "position" for c in columns]
        if not shown:
            emit("  ".join(pad(c, widths[i], numeric[i]) for i, c in enumerate(columns)).rstrip())
            emit("  ".join("-" * w for w in widths))
            shown = True
        for t in texts:
            emit("  ".join(pad(v, widths[i], numeric[i]) for i, v in enumerate(t)).rstrip())
        batch.clear()

    for r in rows:
        batch.append(r)
        if len(batch) >= chunk:
            flush()
    if batch:
        flush()
    if not shown:
        emit(empty)


SCORE_FIRST = ("ruleset", "period", "subject", "subject_name", "metric", "score", "announced", "announced_delta",
               "announced_on", "announced_events", "before", "delta", "grade", "grade_label", "responses")
_OPTIONAL = ("subject_name", "before", "delta", "announced", "announced_delta", "announced_on", "announced_events")


def score_first(rows: Sequence[dict[str, Any]]) -> tuple[str, ...]:
    """The leading score columns; the optional ones only where a row has a value in them (every
    score row has the announced keys, None where nothing moved since the announcement)."""
    return tuple(c for c in SCORE_FIRST if c not in _OPTIONAL or any(r.get(c) is not None for r in rows))


def score_columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    return columns_of(rows, score_first(rows), ("adoption",))


def render_scores(rows: list[dict[str, Any]], fmt: str) -> str:
    """Score rows; a table gets one section per rule set, each with its own extra columns (and no
    name column when no subject has a name)."""
    if fmt == "table":  # for people: no empty name column, no announced columns where nothing moved, no kind
        drop = {"kind", *(c for c in _OPTIONAL if all(r.get(c) is None for r in rows))}
        rows = [{k: v for k, v in r.items() if k not in drop} for r in rows]
    first = score_first(rows)
    if fmt != "table" or len({r["ruleset"] for r in rows}) < 2:
        return render(rows, fmt, first=first, last=("adoption",), empty="(no scores)")
    sections = []
    for rs in dict.fromkeys(r["ruleset"] for r in rows):
        part = [{k: v for k, v in r.items() if k != "ruleset"} for r in rows if r["ruleset"] == rs]
        sections.append(f"{rs}\n" + render(part, fmt, first=first[1:], last=("adoption",)))
    return "\n\n".join(sections)


def _short(value: Any) -> Any:
    """A long decimal cut to 8 places for people (JSON output keeps every digit)."""
    if isinstance(value, Decimal) and value.as_tuple().exponent < -8:
        return f"{value.quantize(Decimal('1e-8'), rounding=ROUND_DOWN)}…"
    return value


def explanation_text(x: dict[str, Any]) -> str:
    fixed = {"ruleset", "adoption", "period", "subject", "subject_name", "metric", "score", "grade", "grade_label",
             "responses",
             "params_hash", "adoption_from", "steps", "events", "log_position", "log_head", "params_upgraded_from",
             "revised_since_announced"}
    name = f" {x['subject_name']}" if x.get("subject_name") else ""
    head = f"{x['ruleset']} · {x['subject']}{name} · {x['period']} · {x['metric']}"
    grade = f"   grade {x['grade']} {x['grade_label'] or ''}".rstrip() if x.get("grade") else ""
    extras = "   ".join(f"{k} {cell(v)}" for k, v in x.items() if k not in fixed)
    lines = [head, f"score {cell(x['score'])}{grade}   responses {x['responses']}" + (f"   {extras}" if extras else ""),
             f"parameters: adoption {x['adoption']} (from {x['adoption_from']}), {x['params_hash']}"
             + (f", upgraded from v{x['params_upgraded_from']}" if x.get("params_upgraded_from") else ""),
             "", "Steps"]
    lines += ["  " + line for line in table(
        [{"step": s["label"], "value": _short(s["value"]), "formula": s["formula"]} for s in x["steps"]],
        ["step", "value", "formula"]).splitlines()]  # the formula last: a long one pads no other line
    lines += ["", "Events read"]
    lines += ["  " + line for line in table(
        [{"position": e["position"], "type": e["type"], "id": e["id"], "used": e["used"], "why": e.get("why")}
         for e in x["events"]], ["position", "type", "id", "used", "why"]).splitlines()]
    if (r := x.get("revised_since_announced")):
        since = ", ".join(f"{e['type']} {e['id']} (position {e['position']})" for e in r["events"]) or "none read"
        lines += ["", f"revised since announced on {r['on']} ({r['announcement']}): announced {r['score']}, now "
                      f"{x['score']}" + (f" ({r['delta']:+})" if r["delta"] is not None else "")
                  + f"; events since: {since}"]
    if "log_position" in x:
        lines += ["", f"log position {x['log_position']} · head {x['log_head']}"]
    return "\n".join(lines)


def event_summary(event: dict[str, Any]) -> str:
    if "damaged" in event:
        return f"key={event['key']} — {event['damaged']} (csat verify)"
    keys = ("ruleset", "period", "subject", "response", "from", "reason")
    return " ".join(f"{k}={event[k]}" for k in keys if event.get(k) is not None)
