"""One return per assignment of a round, and the day a return was received (issue 31).

**One return per assignment.** A round's return is one per (round, rater[, respondent],
subject[, form]), whatever the channel — JSON Lines, a CSV or a round's workbook, the web. At
ingest, a completed ``response`` whose rater and subject are an assignment of a round of its rule
set and month (open or closed), when a completed, not withdrawn response of the same assignment is
already in the log or earlier in the same input under another id (the *first*), is never recorded
as a second response:

- the round allows changes (``changes``, default true) and the second return is received (its
  ``received`` day, else the day it is recorded) on or before the due date: it is recorded as a
  ``correction`` of the first — its answers, reasons and comment replace the first's; the first's
  status, roles, respondent and recording time stay. The correction's id is the second's id and
  ``~`` and 8 hex digits of its answers' digest, so sending the same return again appends nothing;
- otherwise it is refused with one line naming the first:
  ``a return for (round R, rater X, subject Y) is already in the log: response ID (recorded DATE);
  send a correction of it instead``.

The respondent is part of the assignment when the round names respondents for that rater (each
answers for themselves); an anonymous round's responses name none, and there each link's one
return is the guard. A response outside every round's assignments is recorded as before.

**Received.** A response may say the day it was received (``received``, ``YYYY-MM-DD``): between
the first day of its month and the day it is recorded (UTC), else one line. ``csat ingest
--received DATE`` (:func:`receiving`) gives it to every response of the input that names none and
is not in the log already (a response sent again without one keeps the stored one's, so a re-run
appends nothing). A round's lateness and ``round status --as-of`` go by it
(:mod:`csat.engine.app.rounds`).

The lookup is built once per ingest call and rule-set month: the rounds from ``rm_rounds``, the
first returns from ``rm_responses`` (current inside the ingest's write transaction), this call's
own responses added as they are accepted.
"""
from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

import msgspec

from ..log.events import Event, ResponseCorrected, ResponseRecorded, RoundOpened
from ..log.personal import is_sealed, key_of
from ..read.cases import ROUND_SPEC
from ..read.readmodel import decode_state
from .rounds import assignments_of

_RECEIVED: ContextVar[str | None] = ContextVar("csat_received", default=None)
#: where the first return came from: this input (no recording time yet)
_HERE = ""


@contextlib.contextmanager
def receiving(day: str | None) -> Iterator[None]:
    """Within the block, ingests give ``received = day`` to the responses that name none
    (``csat ingest --received DATE``)."""
    token = _RECEIVED.set(day)
    try:
        yield
    finally:
        _RECEIVED.reset(token)


class _Round:
    def __init__(self, spec: RoundOpened):
        self.spec = spec
        self.pairs: set[tuple[str, str]] | None = None   # (rater, subject), resolved on first use
        self.named: set[str] = {a.rater for a in spec.assignments if a.respondents}


class Returns:
    """One ingest call's rounds and their first returns.

    :param store: the store (its read models current; its key store for a named respondent's key
        id, never created here).
    :param org: the org chart the call is checked against (a rule's units).
    :param withdrawn: the call's withdrawals (response id → withdrawal id), as they are accepted.
    :param at: the call's recording time.
    """

    def __init__(self, store: Any, org: Any, withdrawn: dict[str, str], at: str):
        self.store, self.conn, self.org, self.withdrawn = store, store.conn, org, withdrawn
        self.day = at[:10]
        self.default = _RECEIVED.get()
        self.rounds: dict[tuple[str, str], list[_Round]] = {}  # open and closed rounds alike
        #: (rule set, month) → {(rater, subject, form, who): (response id, recorded day or _HERE)}
        self._firsts: dict[tuple[str, str], dict[tuple[Any, ...], tuple[str, str]]] = {}
        self._key_ids: dict[str, str | None] = {}
        for (spec,) in self.conn.execute("SELECT spec FROM rm_rounds WHERE kind = 'opened' ORDER BY position"):
            self._add(ROUND_SPEC.decode(spec))

    def _add(self, spec: RoundOpened) -> None:
        self.rounds.setdefault((spec.ruleset, spec.period), []).append(_Round(spec))

    # -- received ------------------------------------------------------------------------

    def given(self, ev: ResponseRecorded, stored: Event | None) -> ResponseRecorded:
        """The response as this call takes it: one sent again without ``received`` keeps the stored
        one's; a new one without it gets ``--received``'s day (:func:`receiving`)."""
        if ev.received is not None:
            return ev
        if stored is not None:
            day = getattr(stored, "received", None)
            return msgspec.structs.replace(ev, received=day) if day else ev
        return msgspec.structs.replace(ev, received=self.default) if self.default else ev

    def _received_problem(self, ev: ResponseRecorded) -> str | None:
        first = f"{ev.period}-01"
        if ev.received < first:
            return (f"field `received`: {ev.received} is before its month {ev.period} began (expected a day from "
                    f"{first} to {self.day}, the day it is recorded)")
        if ev.received > self.day:
            return (f"field `received`: {ev.received} is after the day it is recorded ({self.day}): a return is "
                    f"received on or before the day it is keyed in (expected a day from {first} to {self.day})")
        return None

    # -- one return per assignment --------------------------------------------------------

    def route(self, ev: Event) -> Event | str:
        """What to record for ``ev`` (a valid ``response`` or ``round`` of this call): itself, a
        correction of the assignment's first return, or a problem line (str)."""
        if isinstance(ev, RoundOpened):
            self._add(ev)
            return ev
        if ev.received is not None and (problem := self._received_problem(ev)):
            return problem
        if ev.rater is None or ev.status != "completed" or not self.rounds:
            return ev
        found = self._round_of(ev)
        if found is None:
            return ev
        rnd, who = found
        firsts = self._firsts_of(ev.ruleset, ev.period)
        key = (ev.rater, ev.subject, ev.form, who)
        first = self._first(firsts, key, ev)
        if first is None:
            self._note(firsts, ev.rater, ev.subject, ev.form, ("plain", ev.respondent) if ev.respondent else None,
                       (ev.id, _HERE))
            return ev
        first_id, recorded = first
        spec = rnd.spec
        what = f"round {spec.id}, rater {ev.rater}, subject {ev.subject}" + (f", form {ev.form}" if ev.form else "")
        where = (f"earlier in this input: response {first_id!r}" if recorded == _HERE
                 else f"in the log: response {first_id!r} (recorded {recorded})")
        day = ev.received or self.day
        if not spec.changes:
            return f"a return for ({what}) is already {where}; send a correction of it instead"
        if day > spec.due:
            return (f"a return for ({what}) is already {where}, and changes close with the due date {spec.due} "
                    f"(this one {'received' if ev.received else 'recorded'} {day}); send a correction of it instead")
        body = msgspec.json.encode([ev.answers, ev.reasons, ev.comment], order="sorted")
        return ResponseCorrected(id=f"{ev.id}~{hashlib.sha256(body).hexdigest()[:8]}", response=first_id,
                                 answers=ev.answers, reasons=ev.reasons, comment=ev.comment,
                                 reason=f"a second return for round {spec.id} ({ev.id!r}): it corrects the first")

    def _round_of(self, ev: ResponseRecorded) -> tuple[_Round, Any] | None:
        """The first round of the response's month whose assignments hold it, and who answers in it
        (None: the rater as a whole; else the named respondent) — or None."""
        for rnd in self.rounds.get((ev.ruleset, ev.period), ()):
            if (ev.rater, ev.subject) not in self._pairs(rnd):
                continue
            if ev.rater in rnd.named:
                if not ev.respondent:
                    return None  # an anonymous round's respondents: each link's one return guards it
                return rnd, ev.respondent
            return rnd, None
        return None

    def _pairs(self, rnd: _Round) -> set[tuple[str, str]]:
        if rnd.pairs is None:
            rnd.pairs = {(r, s) for r, s, _ in assignments_of(rnd.spec, self.org)}
        return rnd.pairs

    def _first(self, firsts: dict[tuple[Any, ...], tuple[str, str]], key: tuple[Any, ...],
               ev: ResponseRecorded) -> tuple[str, str] | None:
        rater, subject, form, who = key
        candidates = [(rater, subject, form, None)] if who is None else [(rater, subject, form, ("plain", who))]
        if who is not None:
            if who not in self._key_ids:
                self._key_ids[who] = self.store.keys.owner_key(f"person:{who}")
            if self._key_ids[who] is not None:
                candidates.append((rater, subject, form, ("key", self._key_ids[who])))
        for k in candidates:
            hit = firsts.get(k)
            if hit is not None and hit[0] != ev.id and hit[0] not in self.withdrawn:
                return hit
        return None

    def _firsts_of(self, ruleset: str, period: str) -> dict[tuple[Any, ...], tuple[str, str]]:
        found = self._firsts.get((ruleset, period))
        if found is not None:
            return found
        found: dict[tuple[Any, ...], tuple[str, str]] = {}
        for (blob,) in self.conn.execute("SELECT state FROM rm_responses WHERE ruleset = ? AND period = ? "
                                         "ORDER BY position", (ruleset, period)):
            s = decode_state(bytes(blob))
            if s.rater is None or s.withdrawn is not None or s.status != "completed":
                continue
            who = None if not s.respondent else ("key", key_of(s.respondent)) if is_sealed(s.respondent) \
                else ("plain", s.respondent)
            self._note(found, s.rater, s.subject, s.form, who, (s.id, (s.recorded or "")[:10] or "?"))
        self._firsts[(ruleset, period)] = found
        return found

    def _note(self, firsts: dict[tuple[Any, ...], tuple[str, str]], rater: str, subject: str, form: str | None,
              who: tuple[str, str] | None, first: tuple[str, str]) -> None:
        """A response as its assignment's first return, under the rater's key and (when it names
        one) its respondent's — unless a first not withdrawn is there already. Every response of
        the month in the log is noted, so a round opened in the input finds them (this input's own
        are noted once a round of their month holds them)."""
        for k in ((rater, subject, form, None), *(((rater, subject, form, who),) if who else ())):
            hit = firsts.get(k)
            if hit is None or hit[0] in self.withdrawn:
                firsts[k] = first
