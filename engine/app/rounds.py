"""Assessment rounds: who rates whom in a rule set's month, and the returns by the due date.

A round (``round`` event) names its rule set, month and due date, and who rates whom: a list of
assignments, or a rule over the org chart as of the month (every unit of one kind rates every
unit of another). Each (rater, subject) of it is then, as of a date:

- ``answered`` — a completed, not withdrawn response of the rule set and month from that rater
  about that subject was received by then (``late`` when received after the due date): received
  on its ``received`` day when it names one (a return handed in before it was keyed in), else on
  the day it was recorded (UTC);
- ``declined`` — the rater said it had no dealings with the subject that month (``no_dealings``):
  neither an answer nor a missing return;
- ``missing`` — neither: the return to chase.

The response rate (回收率) is answered / (assigned − declined), per rater, per subject and overall.
Whether a late answer counts in a score is the rule set's parameter ``late_answers`` to say
(:func:`csat.engine.read.settle.late_due`); here it is only marked.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import msgspec

from ..errors import NotFound
from ..log.backend import EVENTS
from ..log.events import RoundOpened
from ..log.store import Recorded
from ..read.readmodel import Org, decode_state
from ..read.cases import ROUND_SPEC
from ..read.settle import exclusion


def assignments_of(spec: RoundOpened, org: Org) -> list[tuple[str, str, list[str]]]:
    """(rater, subject, respondents) of a round: its list, or its rule over the org chart (the
    units' kinds as last declared, in the order the org chart lists them)."""
    if spec.rule is None:
        return [(a.rater, s, list(a.respondents)) for a in spec.assignments for s in a.subjects]
    units = org.units()
    raters = [u for u in units if org.kind(u, spec.period) == spec.rule.raters]
    subjects = [u for u in units if org.kind(u, spec.period) == spec.rule.subjects]
    return [(r, s, []) for r in raters for s in subjects if r != s]


_RECORDED = msgspec.json.Decoder(Recorded)


def received_days(conn: Any, positions: list[int]) -> dict[int, str]:
    """position → the ``received`` day of the responses stored there that name one (a row that
    does not decode is left out: ``csat verify`` names it)."""
    out: dict[int, str] = {}
    for i in range(0, len(positions), 500):
        chunk = positions[i:i + 500]
        for position, state in conn.execute(
                f"SELECT rowid, state FROM {EVENTS} WHERE rowid IN ({','.join('?' * len(chunk))})", chunk):
            try:
                day = getattr(_RECORDED.decode(bytes(state)).event, "received", None)
            except (msgspec.DecodeError, msgspec.ValidationError, RecursionError, TypeError):
                continue
            if day:
                out[position] = day
    return out


def _rate(answered: int, expected: int) -> str | None:
    return None if expected == 0 else f"{100 * answered / expected:.1f}"


def round_status(conn: Any, org: Org, recorded_at: Any, round_id: str, as_of: str | None = None,
                 held: Iterable[tuple[str, str, str]] = ()) -> dict[str, Any]:
    """The round's returns as of ``as_of`` (a date ``YYYY-MM-DD``; default: everything recorded):
    a return counts from the day it was received (its ``received`` day, else its recording day).
    ``held``: an anonymous round's returns not yet released to the log, as (rater, subject, day)
    — answered, with no response id yet.

    :param recorded_at: ``positions -> {position: recording time}`` (the log's, ``…Z`` UTC).
    """
    rows = conn.execute("SELECT kind, rater, subject, date, spec, position FROM rm_rounds WHERE round = ? "
                        "ORDER BY position", (round_id,)).fetchall()
    opened = next((r for r in rows if r[0] == "opened"), None)
    if opened is None:
        raise NotFound(f"no round {round_id!r} in the log")
    spec = ROUND_SPEC.decode(opened[4])
    until = f"{as_of}T99" if as_of else None  # a recording time on or before that day
    when = recorded_at([r[5] for r in rows])
    declined = {(r[1], r[2]): r[3] for r in rows if r[0] == "declined" and (until is None or when[r[5]] <= until)}
    closed = next((r[3] for r in rows if r[0] == "closed" and (until is None or when[r[5]] <= until)), None)
    responses = [(pos, decode_state(bytes(blob))) for pos, blob in conn.execute(
        "SELECT position, state FROM rm_responses WHERE ruleset = ? AND period = ? ORDER BY position",
        (spec.ruleset, spec.period))]
    times = recorded_at([pos for pos, _ in responses])
    day = {pos: at[:10] for pos, at in times.items()}
    cut = min(spec.due, as_of) if as_of else spec.due  # a received day matters only for those recorded after
    day.update(received_days(conn, [pos for pos, s in responses if s.rater is not None and day[pos] > cut]))
    answered: dict[tuple[str, str], tuple[str, str, str]] = {}  # (rater, subject) -> (id, recorded, received)
    for pos, state in responses:
        if state.rater is None or exclusion(state) is not None or (as_of is not None and day[pos] > as_of):
            continue
        answered.setdefault((state.rater, state.subject), (state.id, times[pos], day[pos]))
    for rater, subject, on in held:
        if as_of is None or on <= as_of:
            answered.setdefault((rater, subject), (None, None, on))  # type: ignore[arg-type]
    out_rows = []
    for rater, subject, respondents in assignments_of(spec, org):
        hit = answered.get((rater, subject))
        status = "answered" if hit else "declined" if (rater, subject) in declined else "missing"
        late = bool(hit and hit[2] > spec.due)
        out_rows.append({"rater": rater, "subject": subject, "subject_name": org.name(subject, spec.period),
                         "status": status, "late": late, "response": hit[0] if hit else None,
                         "recorded": hit[1] if hit else None, "received": hit[2] if hit else None,
                         **({"respondents": respondents} if respondents else {})})
    return {"round": round_id, "ruleset": spec.ruleset, "period": spec.period, "due": spec.due, "closed": closed,
            "as_of": as_of, "assignments": out_rows, "raters": _rates(out_rows, "rater"),
            "subjects": _rates(out_rows, "subject"), "overall": _rates(out_rows, None)[0]}


def _rates(rows: list[dict[str, Any]], by: str | None) -> list[dict[str, Any]]:
    """回收率 by rater, by subject, or overall (``by`` None)."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[r[by] if by else "overall"].append(r)
    out = []
    for key, rs in groups.items():
        n = {s: sum(1 for r in rs if r["status"] == s) for s in ("answered", "declined", "missing")}
        late = sum(1 for r in rs if r["late"])
        expected = len(rs) - n["declined"]
        out.append({**({by: key} if by else {}), "assigned": len(rs), **n, "late": late,
                    "rate": _rate(n["answered"], expected)})
    if not out and by is None:  # a round with nobody assigned yet
        out.append({"assigned": 0, "answered": 0, "declined": 0, "missing": 0, "late": 0, "rate": None})
    return out
