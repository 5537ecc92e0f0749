"""The report's charts as plain SVG: no script, no random id, the same figures give the same bytes.

Three kinds, chosen by the data:

- :func:`trend` — each subject's figure month by month, up to the report's period and never
  beyond; a subject with one month is a dot, a line needs two. When no subject has two months the
  chart is :func:`dots` instead (one row per subject), since a line chart of one period says
  nothing a dot plot does not.
- :func:`dots` — one period's figures as a dot per subject, on the same kind of value axis.
- :func:`grades` — how many subjects reached each grade: whole-number ticks, one colour per
  grade, best first (the same grade the same colour wherever it is drawn).

Value axes include every figure, start and end on round numbers, and never span less than a
tenth of the largest figure's size, so a 2-point spread between 83 and 85 is not drawn as a
cliff.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal
from html import escape

#: line and dot colours, in order (colour-blind safe: Okabe–Ito, then darker tones)
SERIES = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#8C564B",
          "#7F7F7F", "#B8860B")
#: grade colours from the best grade to the worst (a rule set's grades are spread over them)
GRADES = ("#1a7f37", "#7cb342", "#fbc02d", "#fb8c00", "#e53935", "#8e24aa")
FONT = 'font-family="Noto Sans CJK SC, WenQuanYi Micro Hei, Microsoft YaHei, sans-serif"'


def _num(x: float) -> str:
    """A coordinate, short and stable."""
    return f"{x:.1f}".rstrip("0").rstrip(".")


def _label(v: Decimal) -> str:
    return format(v.normalize(), "f") if v == v.to_integral_value() else format(v, "f")


def nice_axis(values: Sequence[Decimal], ticks: int = 5, whole: bool = False) -> list[Decimal]:
    """Round tick values covering ``values``: steps of 1, 2 or 5 × 10ⁿ, spanning at least a tenth
    of the largest magnitude (whole numbers only, with ``whole``)."""
    lo, hi = min(values), max(values)
    span = max(hi - lo, abs(hi) / 10, abs(lo) / 10, Decimal(1) if whole else Decimal("0.1"))
    if hi - lo < span:  # widen around the figures (not below 0 when none is negative)
        mid = (lo + hi) / 2
        lo, hi = mid - span / 2, mid + span / 2
        if lo < 0 <= min(values):
            lo, hi = Decimal(0), span
    raw = span / ticks
    exp = math.floor(math.log10(raw))
    step = next(m * Decimal(10) ** exp for m in (1, 2, 5, 10) if m * Decimal(10) ** exp >= raw)
    if whole:
        step = max(step, Decimal(1)).to_integral_value(rounding="ROUND_CEILING")
    start = (lo / step).to_integral_value(rounding="ROUND_FLOOR") * step
    if lo >= 0 > start:
        start = Decimal(0)
    out = [start]
    while out[-1] < hi:
        out.append(out[-1] + step)
    if len(out) == 1:
        out.append(start + step)
    return out


def _svg(width: int, height: int, title: str, body: list[str]) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
            f'height="{height}" role="img" aria-label="{escape(title)}" {FONT} font-size="13">'
            f"<title>{escape(title)}</title>"
            f'<rect width="{width}" height="{height}" fill="white"/>'
            f'<text x="{width // 2}" y="18" text-anchor="middle" font-size="14">{escape(title)}</text>'
            + "".join(body) + "</svg>")


def _legend(names: Sequence[str], top: int, width: int) -> tuple[list[str], int]:
    """Legend entries in rows under the plot; returns the elements and the height used."""
    out, x, y = [], 10, top
    for i, name in enumerate(names):
        w = 22 + 7 * sum(2 if ord(ch) > 0x2E7F else 1 for ch in name)
        if x + w > width and x > 10:
            x, y = 10, y + 18
        out.append(f'<rect x="{x}" y="{y - 9}" width="12" height="10" fill="{SERIES[i % len(SERIES)]}"/>'
                   f'<text x="{x + 16}" y="{y}">{escape(name)}</text>')
        x += w
    return out, y - top + 18


def trend(title: str, months: Sequence[str], lines: dict[str, dict[str, Decimal]]) -> str:
    """Each line's figures over ``months`` (the axis ends at the last of them: later months of a
    line are not drawn); a dot plot when no line has two months."""
    lines = {name: {m: v for m, v in series.items() if m in months} for name, series in lines.items()}
    lines = {name: series for name, series in lines.items() if series}
    if not any(len(series) > 1 for series in lines.values()):
        last = {name: series[max(series)] for name, series in lines.items()}
        return dots(title, last)
    width, left, right, top, plot_h = 640, 56, 16, 32, 240
    axis = nice_axis([v for series in lines.values() for v in series.values()])
    legend, legend_h = _legend(list(lines), top + plot_h + 50, width)
    height = top + plot_h + 50 + legend_h
    x_of = {m: left + (width - left - right) * (i + 0.5) / len(months) for i, m in enumerate(months)}

    def y(v: Decimal) -> float:
        return top + plot_h - float((v - axis[0]) / (axis[-1] - axis[0])) * plot_h

    body = []
    for t in axis:
        body.append(f'<line x1="{left}" x2="{width - right}" y1="{_num(y(t))}" y2="{_num(y(t))}" stroke="#ddd"/>'
                    f'<text x="{left - 6}" y="{_num(y(t) + 4)}" text-anchor="end" class="tick">{_label(t)}</text>')
    for m, x in x_of.items():
        body.append(f'<text x="{_num(x)}" y="{top + plot_h + 18}" text-anchor="middle">{escape(m)}</text>')
    for i, (name, series) in enumerate(lines.items()):
        colour = SERIES[i % len(SERIES)]
        points = [(m, x_of[m], y(series[m])) for m in months if m in series]
        runs: list[list[tuple[float, float]]] = [[]]  # a month without a figure breaks the line
        for m in months:
            if m in series:
                runs[-1].append((x_of[m], y(series[m])))
            elif runs[-1]:
                runs.append([])
        for run in runs:
            if len(run) > 1:
                body.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="'
                            + " ".join(f"{_num(a)},{_num(b)}" for a, b in run) + '"/>')
        for m, a, b in points:
            body.append(f'<circle cx="{_num(a)}" cy="{_num(b)}" r="3.5" fill="{colour}">'
                        f"<title>{escape(name)} {escape(m)}: {series[m]}</title></circle>")
    return _svg(width, height, title, body + legend)


def dots(title: str, values: dict[str, Decimal]) -> str:
    """One figure per name as a dot on a value axis, a row each, best first."""
    rows = sorted(values.items(), key=lambda kv: (-kv[1], kv[0]))
    width, left, right, top, row_h = 640, 200, 24, 40, 28
    axis = nice_axis([v for _, v in rows])
    plot_h = row_h * len(rows)
    height = top + plot_h + 30

    def x(v: Decimal) -> float:
        return left + float((v - axis[0]) / (axis[-1] - axis[0])) * (width - left - right)

    body = []
    for t in axis:
        body.append(f'<line x1="{_num(x(t))}" x2="{_num(x(t))}" y1="{top}" y2="{top + plot_h}" stroke="#ddd"/>'
                    f'<text x="{_num(x(t))}" y="{top + plot_h + 16}" text-anchor="middle" class="tick">{_label(t)}</text>')
    for i, (name, v) in enumerate(rows):
        cy = top + row_h * i + row_h / 2
        short = name if len(name) <= 28 else name[:27] + "…"
        body.append(f'<text x="{left - 8}" y="{_num(cy + 4)}" text-anchor="end">{escape(short)}</text>'
                    f'<line x1="{left}" x2="{_num(x(v))}" y1="{_num(cy)}" y2="{_num(cy)}" stroke="#eee"/>'
                    f'<circle cx="{_num(x(v))}" cy="{_num(cy)}" r="4.5" fill="{SERIES[0]}">'
                    f"<title>{escape(name)}: {v}</title></circle>"
                    f'<text x="{_num(x(v) + 8)}" y="{_num(cy + 4)}" font-size="11">{v}</text>')
    return _svg(width, height, title, body)


def grade_colour(place: int, grades: int) -> str:
    """The colour of the grade at ``place`` (0: the best) of a rule set's ``grades``."""
    return GRADES[round(place * (len(GRADES) - 1) / (grades - 1)) if grades > 1 else 0]


def grades(title: str, counts: Sequence[tuple[str, int, int, int]]) -> str:
    """Subjects per grade, best grade first, as ``(label, count, place, of)``: a bar each in the
    colour of its grade's place among the rule set's ``of`` grades (the same grade the same colour
    in every chart), whole-number ticks."""
    width, left, right, top, plot_h = 480, 40, 16, 32, 220
    axis = nice_axis([Decimal(0), *(Decimal(c[1]) for c in counts)], whole=True)
    height = top + plot_h + 40
    slot = (width - left - right) / max(len(counts), 1)

    def y(v: Decimal) -> float:
        return top + plot_h - float(v / axis[-1]) * plot_h

    body = []
    for t in axis:
        body.append(f'<line x1="{left}" x2="{width - right}" y1="{_num(y(t))}" y2="{_num(y(t))}" stroke="#ddd"/>'
                    f'<text x="{left - 6}" y="{_num(y(t) + 4)}" text-anchor="end" class="tick">{_label(t)}</text>')
    for i, (grade, n, place, of) in enumerate(counts):
        x0 = left + slot * i + slot * 0.15
        body.append(f'<rect x="{_num(x0)}" y="{_num(y(Decimal(n)))}" width="{_num(slot * 0.7)}" '
                    f'height="{_num(plot_h - (y(Decimal(n)) - top))}" fill="{grade_colour(place, of)}">'
                    f"<title>{escape(grade)}: {n}</title></rect>"
                    f'<text x="{_num(x0 + slot * 0.35)}" y="{top + plot_h + 18}" text-anchor="middle">'
                    f"{escape(grade)}</text>")
    return _svg(width, height, title, body)
