"""An adoption checked against the answers already logged for the months it would govern.

Parameters that narrow what an answer may be (a maximum lowered from 15 to 10) would score the
responses already logged under the old ones outside the method's scale (106.67 on a 100-point
survey). So an adoption from month M is refused while a logged response of M or later — current
(its corrections applied), not withdrawn, up to the month the next adoption of the rule set takes
over — has an answer the new parameters refuse: one line per such response (at most
:data:`LISTED`, then a count), naming it, its month and subject, and what the rule set's own
answer check says. The user corrects or withdraws those responses, or adopts from a later month.

What is checked is the rule set's :meth:`~csat.engine.scoring.ruleset.RuleSet.check_response`
under the adopted parameters, kept to the answers a response gives to items the adopted
questionnaire still asks: an item the adoption adds (not answered by older responses) or removes
(then not scored) refuses nothing, nor does a reason the adoption newly requires; a problem the
response already had under the parameters in force is not the adoption's doing.

The responses are read from the read models (``rm_responses``: one row per response, its state
after corrections and withdrawal, indexed by rule set and month); an ingest call passes the
states of its own earlier lines, which the read models do not hold yet.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from ..errors import IngestFailed, RuleSetFailed
from ..log.events import NA, ResponseCorrected, ResponseRecorded, ResponseWithdrawn
from ..read.readmodel import Adoptions, decode_state, load_states
from ..scoring.guard import guarded
from ..scoring.ruleset import ResponseState, RuleSet

#: the responses named one by one before the rest are counted
LISTED = 20


def refusals(conn: Any, rs: RuleSet, from_: str, params: Any, adoptions: Adoptions,
             own: Mapping[str, ResponseState | None] | None = None) -> list[str]:
    """One line per logged response of ``rs`` that ``params`` (decoded), adopted from ``from_``,
    would score outside its scale (at most :data:`LISTED`, then one line counting the rest and
    saying what to do); none when it may be adopted. ``adoptions`` are those in force before this
    one; ``own``: responses of the caller's own pending input by id (None: withdrawn), over the
    read models' rows."""
    until = next((a.from_ for a in adoptions.of(rs.id) if a.from_ > from_), None)
    lines: list[str] = []
    count = 0
    for state in _current(conn, rs.id, from_, until, own or {}):
        found = _new_problems(rs, state, params, adoptions)
        if found:
            count += 1
            if count <= LISTED:
                lines.append(f"logged response {state.id} ({state.period}, {state.subject}): "
                             + "; ".join(f"{field}: {message}" for field, message in found) + " under these parameters")
    if count:
        more = f"{count - LISTED} more logged responses and " if count > LISTED else ""
        lines.append(f"{more}{'that response' if count == 1 else f'those {count} responses'} would be scored "
                     f"outside the method's scale from {from_} on: correct or withdraw "
                     f"{'it' if count == 1 else 'them'} first, or adopt from a later month")
    return lines


def ingested(store: Any, rulesets: Mapping[str, RuleSet], adoptions: Adoptions, ev: Any, after: int,
             pending: Iterable[Any] | None) -> list[str]:
    """:func:`refusals` for an adoption event an ingest call is about to append (its parameters
    complete): ``after`` the log position the call started from, ``pending`` its records not yet
    written (None: the call has changed no response of that rule set so far)."""
    rs = rulesets.get(ev.ruleset)
    if rs is None or ev.ruleset in adoptions.failed:
        return []
    params = guarded(rs, f"decoding the parameters of adoption {ev.id}", rs.decode_params, ev.params)
    own = own_states(store, after, pending, ev.ruleset) if pending is not None else None
    return refusals(store.conn, rs, ev.from_, params, adoptions, own)


def refuse(conn: Any, rs: RuleSet, from_: str, complete: dict[str, Any], adoptions: Adoptions,
           source: str | Any = "params") -> None:
    """Raise :class:`IngestFailed` (``source: line`` each) when :func:`refusals` finds any
    for ``complete`` parameters (plain data); the what-if says so before it computes anything."""
    if not isinstance(source, str):
        source = "params" if isinstance(source, dict) else str(source)
    params = guarded(rs, "decoding the parameters", rs.decode_params, complete, source)
    lines = refusals(conn, rs, from_, params, adoptions)
    if lines:
        raise IngestFailed([f"{source}: {line}" for line in lines])


def own_states(store: Any, after: int, pending: Iterable[Any], ruleset: str) -> dict[str, ResponseState | None]:
    """The responses of ``ruleset`` an ingest call has written so far (the log's positions after
    ``after``, then its ``pending`` records), as they stand after the call's own corrections and
    withdrawals (None: withdrawn) — the read models do not hold them until the call commits."""
    states: dict[str, ResponseState | None] = {}

    def fold(ev: Any, position: int) -> None:
        if isinstance(ev, ResponseRecorded):
            if ev.ruleset == ruleset:
                states[ev.id] = ResponseState.of(ev, position)
            return
        if not isinstance(ev, (ResponseCorrected, ResponseWithdrawn)):
            return
        state = states[ev.response] if ev.response in states else load_states(store.conn, [ev.response]).get(
            ev.response)
        if state is None or state.ruleset != ruleset:
            return
        states[ev.response] = (None if isinstance(ev, ResponseWithdrawn) else msgspec.structs.replace(
            state, answers=ev.answers, reasons=ev.reasons, comment=ev.comment))

    last = store.max_position()
    for start in range(after + 1, last + 1, 2000):
        found = store.at_positions(range(start, min(start + 2000, last + 1)))
        for position in sorted(found):
            fold(found[position].event, position)
    for recorded in pending:
        fold(recorded.event, last + 1)
    return states


def _current(conn: Any, ruleset: str, from_: str, until: str | None,
             own: Mapping[str, ResponseState | None]) -> Iterable[ResponseState]:
    """The current, not withdrawn responses of ``ruleset`` in months [from_, until)."""
    sql = "SELECT state FROM rm_responses WHERE ruleset = ? AND period >= ?"
    args: list[Any] = [ruleset, from_]
    if until is not None:
        sql += " AND period < ?"
        args.append(until)
    for (blob,) in conn.execute(sql + " ORDER BY position", args):
        state = decode_state(blob)
        if state.id in own:
            continue
        if state.withdrawn is None:
            yield state
    for state in own.values():
        if (state is not None and state.ruleset == ruleset and state.period >= from_
                and (until is None or state.period < until)):
            yield state


def _asked(rs: RuleSet, params: Any, form: str | None) -> set[str] | None:
    """The items the questionnaire under ``params`` asks on ``form`` (None: the rule set publishes none)."""
    q = rs.per_params("adoption_check_asked", params,
                      lambda p: guarded(rs, "building its questionnaire", rs.questionnaire, p))
    if q is None:
        return None
    return {i.id for i in q.items if i.form is None or i.form == form}


def _problems(rs: RuleSet, state: ResponseState, params: Any) -> list[tuple[str, str]]:
    response = ResponseRecorded(id=state.id, ruleset=state.ruleset, period=state.period, subject=state.subject,
                                answers=state.answers, form=state.form, rater=state.rater,
                                respondent=state.respondent, roles=state.roles, status=state.status,
                                reasons=state.reasons, comment=state.comment)
    where = f"checking response {state.id}"
    found = guarded(rs, where, rs.check_response, response, params)
    if not isinstance(found, (list, tuple)) or not all(
            isinstance(p, tuple) and len(p) == 2 and all(isinstance(x, str) for x in p) for p in found):
        raise RuleSetFailed(rs.id, where, f"check_response: expected a list of Problem(field, message), "
                            f"got {found!r:.80}")
    return [(p[0], p[1]) for p in found]


def _new_problems(rs: RuleSet, state: ResponseState, params: Any, adoptions: Adoptions) -> list[tuple[str, str]]:
    """The problems ``params`` find with the answers ``state`` gives to items still asked, that
    the parameters in force for its month did not find."""
    given = [(field, message) for field, message in _problems(rs, state, params)
             if (item := field.removeprefix("answers.")) != field and item in state.answers
             and state.answers[item] != NA]  # answers given: not an item added, a reason now required, …
    if not given:
        return []
    asked = _asked(rs, params, state.form)
    found = [(f, m) for f, m in given if asked is None or f.removeprefix("answers.") in asked]
    if not found:
        return []
    before = adoptions.in_force(rs.id, state.period)
    if before is not None and not isinstance(before.params, dict):
        had = {f for f, _ in _problems(rs, state, before.params)}
        found = [(f, m) for f, m in found if f not in had]
    return found
