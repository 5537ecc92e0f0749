"""The org chart as the reference for the units an ingested event names (issue 31).

Ids. Every event's ``id`` and every unit an event names (``subject``, ``rater``, ``roles``, a
round's assignments, a unit's ``parent``) may not contain ``/ \\ ? #`` or control characters:
they name pages, links and files. Events already in the log are never re-checked.

Units. A rule set's *subjects* are checked against the org chart once it holds them: once a
subject of the rule set — of a response, a complaint, a rectification or a round's assignments,
in the log or in the same input — is a declared unit, every subject the rule set's events name
must be a unit as of the event's month (a unit exists from the ``from`` of its first ``unit``
event; one declared later in the same input counts). The units its responses credit in
``roles`` likewise, once one of them is a unit; and its *raters*, once one of its raters is: a
workshop that rates is checked, a customer called back (dealership-cs, iso-100) or a function the
chart does not hold is free. A complaint or
rectification without a rule set is checked once the org chart holds any rule set's subjects. A
store without ``unit`` events keeps free ids.

Names. Where the store has units, a value that is no unit's id but the name of exactly one
unit as of the month (财务部) is taken for that unit and stored as its id; the name of several
is refused, listing them. A value that is not a unit is refused with the closest ids or names
(difflib), or the units as of the month.

Cost: per event a few dictionary lookups; the log is read once per rule set and role, at the
end of the ingest, and only when a value unknown to the org chart needs it.
"""
from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from typing import Any

import msgspec

from ..log.events import (ComplaintFiled, Event, RectificationRequired, ResponseRecorded, RoundOpened,
                          UnitDeclared)
from ..read.readmodel import Org

#: characters an id may not hold: they break the pages, links and file names an id becomes
_BAD = re.compile(r"[/\\?#\x00-\x1f\x7f]")
_BAD_TEXT = "an id may not contain / \\ ? # or control characters (it names pages, links and files)"


class _Rater(msgspec.Struct):
    rater: str | None = None


_RATER = msgspec.json.Decoder(_Rater)

# (field, value, month, rule set, role) of one unit an event names
Ref = tuple[str, str, str, "str | None", str]


def _refs(ev: Event) -> list[Ref]:
    if type(ev).__struct_config__.tag == "response":  # the bulk of every file
        refs = [("subject", ev.subject, ev.period, ev.ruleset, "subject")]
        if ev.rater is not None:
            refs.append(("rater", ev.rater, ev.period, ev.ruleset, "rater"))
        if ev.roles:
            refs += [(f"roles.{role}", u, ev.period, ev.ruleset, "roles")
                     for role, units in ev.roles.items() for u in units]
        return refs
    if isinstance(ev, (ComplaintFiled, RectificationRequired)):
        return [("subject", ev.subject, ev.period, ev.ruleset, "subject")]
    if isinstance(ev, RoundOpened):
        return [ref for i, a in enumerate(ev.assignments) for ref in (
            (f"assignments[{i}].rater", a.rater, ev.period, ev.ruleset, "rater"),
            *((f"assignments[{i}].subjects", s, ev.period, ev.ruleset, "subject") for s in a.subjects))]
    return []


class OrgCheck:
    """One ingest call's checks of ids and of the units its events name. ``org`` is the ingest's
    own copy of the org chart, which its ``unit`` lines join as they are accepted; ``report``
    takes (source, line, message)."""

    def __init__(self, conn: Any, org: Org, report: Callable[[str, int, str], None]):
        self.conn = conn
        self.org = org
        self.report = report
        #: (rule set, role) -> whether the org chart holds that rule set's subjects / raters
        self.charted: dict[tuple[str | None, str], bool] = {}
        #: values no unit as of their month when their line was read, by (rule set, role)
        self.pending: dict[tuple[str | None, str], list[tuple[str, int, str, str, str]]] = {}
        self._names: dict[str, dict[str, list[str]]] = {}  # month -> name -> unit ids
        self._as_of: dict[str, set[str]] = {}  # month -> the units then
        self._ids: set[str] | None = None  # every unit ever
        #: the event last named, its refs and which are units (refs None: a response naming units by id)
        self._last: tuple[Event | None, list[Ref] | None, list[bool] | None] = (None, [], None)

    def _units(self, month: str) -> set[str]:
        units = self._as_of.get(month)
        if units is None:
            units = self._as_of[month] = {u for u in self.org.units() if self.org.link(u, month) is not None}
        return units

    # -- per line -------------------------------------------------------------------

    def named(self, ev: Event, source: str, number: int) -> Event | None:
        """``ev`` with the units it names by an unambiguous name (as of its month) named by their
        id; None when a name is several units' (reported)."""
        if type(ev).__struct_config__.tag == "response" and not ev.roles:  # the bulk: named by their ids
            units = self._as_of.get(ev.period)
            if units is None:
                units = self._units(ev.period)
            if ev.subject in units and (ev.rater is None or ev.rater in units):
                self._last = (ev, None, None)
                return ev
        refs = _refs(ev)
        known: list[bool] = []  # each ref: a unit as of its month
        found: dict[tuple[str, str], str] = {}  # (field, name) -> id
        for field, value, month, _, _ in refs:
            units = self._as_of.get(month)
            if units is None:
                units = self._units(month)
            known.append(value in units)
            if known[-1]:
                continue
            if self._ids is None:
                self._ids = set(self.org.units())
            if not self._ids or value in self._ids:
                continue  # no units; or a unit's id, not as of the month: said at the end
            ids = self._index(month).get(value)
            if not ids:
                continue
            if len(ids) > 1:
                listed = ", ".join(f"{u} ({value})" for u in ids)
                self.report(source, number, f"field `{field}`: {value!r} is the name of {len(ids)} units as of "
                                            f"{month}: give the id of one — {listed}")
                return None
            found[(field, value)] = ids[0]
            known[-1] = True
        if found:
            ev = self._rewrite(ev, found)
            refs = _refs(ev)
        self._last = (ev, refs, known)
        return ev

    def problems(self, ev: Event, source: str, number: int) -> list[str]:
        """An id that breaks links (refused now); the units named that are not units as of their
        month are kept for :meth:`finish` (a later line may declare them)."""
        unit = type(ev).__struct_config__.tag == "unit"
        if unit:  # the units and names as of each month may change
            self._names.clear()
            self._as_of.clear()
            self._ids = None
        last, refs, known = self._last
        if last is not ev:
            refs, known = _refs(ev), None
        if refs is None:  # a response naming units by their ids
            if _BAD.search(ev.id):
                return [f"field `id`: {ev.id!r} contains {_BAD.search(ev.id).group()!r}: {_BAD_TEXT}"]
            self.charted[(ev.ruleset, "subject")] = True
            if ev.rater is not None:
                self.charted[(ev.ruleset, "rater")] = True
            return []
        fields = [("id", ev.id), *((ref[0], ref[1]) for ref in refs)]
        if unit and ev.parent:
            fields.append(("parent", ev.parent))
        if _BAD.search(" ".join([value for _, value in fields])):
            return [f"field `{field}`: {value!r} contains {m.group()!r}: {_BAD_TEXT}"
                    for field, value in fields if (m := _BAD.search(value))]
        for i, (field, value, month, ruleset, role) in enumerate(refs):
            if known[i] if known is not None else value in self._units(month):
                self.charted[(ruleset, role)] = True
            else:
                self.pending.setdefault((ruleset, role), []).append((source, number, field, value, month))
        return []

    # -- at the end ------------------------------------------------------------------

    def finish(self, problems: list[tuple[str, int, str]]) -> None:
        """Report the units named that are still no units as of their month, where the org chart
        is the reference for them (nothing is appended then)."""
        pending, self.pending = self.pending, {}
        if not pending or not self.org.units():
            return
        refused = {(p[0], p[1]) for p in problems}
        self._as_of.clear()
        for (ruleset, role), refs in pending.items():
            if not self._is_charted(ruleset, role):
                continue
            for source, number, field, value, month in refs:
                if (source, number) not in refused and value not in self._units(month):
                    self.report(source, number, self._unknown(field, value, month, ruleset, role))

    def _is_charted(self, ruleset: str | None, role: str) -> bool:
        key = (ruleset, role)
        if key not in self.charted:
            if ruleset is None:  # a complaint or rectification of no rule set: where any rule set's are
                self.charted[key] = any(v for (_, r), v in self.charted.items() if r == "subject") or \
                    self.conn.execute("SELECT 1 FROM rm_responses WHERE subject IN (SELECT id FROM rm_units) "
                                      "LIMIT 1").fetchone() is not None
            elif role == "subject":
                self.charted[key] = self.conn.execute(  # (units of this input: by its own lines)
                    "SELECT 1 FROM rm_responses WHERE ruleset = ? AND subject IN (SELECT id FROM rm_units) LIMIT 1",
                    (ruleset,)).fetchone() is not None
            elif role == "roles":
                self.charted[key] = self.conn.execute(
                    "SELECT 1 FROM rm_credits WHERE ruleset = ? AND role != 'subject' AND via = '' AND subject IN "
                    "(SELECT id FROM rm_units) LIMIT 1", (ruleset,)).fetchone() is not None
            else:
                units = set(self.org.units())
                self.charted[key] = False
                for (blob,) in self.conn.execute("SELECT state FROM rm_responses WHERE ruleset = ?", (ruleset,)):
                    if _RATER.decode(bytes(blob)).rater in units:
                        self.charted[key] = True
                        break
        return self.charted[key]

    def _unknown(self, field: str, value: str, month: str, ruleset: str | None, role: str) -> str:
        whose = f"{ruleset}'s {'credited units' if role == 'roles' else role + 's'}" if ruleset else "complaints and rectifications"
        head = f"field `{field}`: {value!r} is not a unit as of {month} (the org chart is the reference for {whose})"
        history = self.org.history(value)
        if history:
            return f"{head}: it is declared from {history[0].from_} — csat units --as-of {month}"
        units = [u for u in self.org.units() if self.org.link(u, month) is not None]
        by_text: dict[str, str] = {}
        for u in units:
            by_text.setdefault(u, u)
            if (name := self.org.name(u, month)):
                by_text.setdefault(name, u)
        close = difflib.get_close_matches(value, list(by_text), n=3, cutoff=0.6)
        seen = list(dict.fromkeys(by_text[t] for t in close))
        if seen:
            return f"{head} — did you mean {' or '.join(self._label(u, month) for u in seen)}?"
        some = ", ".join(self._label(u, month) for u in units[:5]) + (", …" if len(units) > 5 else "")
        return (f"{head} — expected one of the {len(units)} units as of {month} ({some}): "
                f"csat units --as-of {month}")

    # -- helpers ---------------------------------------------------------------------

    def _label(self, unit: str, month: str) -> str:
        name = self.org.name(unit, month)
        return f"{unit} ({name})" if name else unit

    def _index(self, month: str) -> dict[str, list[str]]:
        index = self._names.get(month)
        if index is None:
            index = {}
            for u in self.org.units():
                if self.org.link(u, month) is not None and (name := self.org.name(u, month)):
                    index.setdefault(name, []).append(u)
            self._names[month] = index
        return index

    @staticmethod
    def _rewrite(ev: Event, found: dict[tuple[str, str], str]) -> Event:
        def one(field: str, value: str) -> str:
            return found.get((field, value), value)

        if isinstance(ev, RoundOpened):
            assignments = [msgspec.structs.replace(
                a, rater=one(f"assignments[{i}].rater", a.rater),
                subjects=[one(f"assignments[{i}].subjects", s) for s in a.subjects])
                for i, a in enumerate(ev.assignments)]
            return msgspec.structs.replace(ev, assignments=assignments)
        changes: dict[str, Any] = {"subject": one("subject", ev.subject)}  # type: ignore[attr-defined]
        if isinstance(ev, ResponseRecorded):
            if ev.rater is not None:
                changes["rater"] = one("rater", ev.rater)
            if ev.roles:
                changes["roles"] = {role: [one(f"roles.{role}", u) for u in units] for role, units in ev.roles.items()}
        return msgspec.structs.replace(ev, **changes)
