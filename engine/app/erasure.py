"""Personal data on the way out: opened for whoever holds the key store, erased on request.

:class:`PersonalData` is a part of :class:`~csat.engine.app.api.Engine`. Reading calls give
personal fields opened (:class:`~csat.engine.log.personal.Opener`): plain where the key store has
the key, ``[erased]`` after an erasure, the owner's pseudonym (``p-<key id>``) or ``[sealed]`` in
a store copied without its key store. Figures never depend on them.

Erasure (crypto-shredding): an ``erasure`` event naming only the key id and the counts is
appended, then the person's key is destroyed. The log's bytes, its chain and every figure stay as
they were; every sealed field of that person — in the log, the read models, any copy made
before or after — can no longer be read by anyone.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec

from ..errors import NotFound
from ..log.personal import Opener, is_sealed, key_of, pseudonym
from .privacy import erased_keys


def _strings(obj: Any) -> Iterator[str]:
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)


def _plain_fields(ev: dict[str, Any], person: str, theirs: set[str]) -> int:
    """How many fields of an event written before sealing hold ``person``'s data in plain form
    (``theirs``: the ids of their plain responses seen so far, extended here)."""
    kind = ev.get("type")
    texts = [*(ev.get("reasons") or {}).values(), ev.get("comment")]
    if kind == "response" and ev.get("respondent") == person:
        theirs.add(ev["id"])  # (written before csat told a unit's statement from a person's: all counted)
        return 1 + sum(1 for t in texts if t and not is_sealed(t))
    if kind == "correction" and ev.get("response") in theirs:
        return sum(1 for t in texts if t and not is_sealed(t))
    if kind == "unit" and ev.get("id") == person and ev.get("name") and not is_sealed(ev["name"]):
        return 1
    if kind == "round":
        return sum(1 for a in ev.get("assignments") or () for p in a.get("respondents") or () if p == person)
    return 0


class PersonalData:
    """Opening and erasing personal data (a part of :class:`~csat.engine.app.api.Engine`)."""

    store: Any

    def opener(self) -> Opener:
        """An opener for one output: the key store when there is one, and the erased keys."""
        keys = self.store.keys
        return Opener(keys if keys.exists() else None, erased_keys(self.store.conn))

    def _opened(self, obj: Any) -> Any:
        return self.opener().deep(obj)

    def _open_names(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Rows whose ``subject_name`` is a person's (sealed) with it opened; others untouched."""
        sealed = [r for r in rows if is_sealed(r.get("subject_name"))]
        if sealed:
            opener = self.opener()
            for r in sealed:
                r["subject_name"] = opener.text(r["subject_name"], "subject_name")
        return rows

    def erase(self, respondent: str, *, dry_run: bool = False) -> dict[str, Any]:
        """Erase a person's personal data: destroy their key, after recording an ``erasure``
        event that names no one. What a respondent's key holds: their name wherever it is sealed
        (responses, a person unit, rounds) and the reasons and comments they gave as a private
        person; never a rated unit's statement (a response for a unit seals its texts under the
        unit's key), a complaint or a rectification (docs/events.md §7).

        Returns ``pseudonym`` (None when nothing of theirs was sealed), ``fields`` (sealed fields
        made unreadable) of which ``names``, ``reasons``, ``comments`` and ``texts`` (any other),
        ``cited`` (how many of those reasons and comments belong to a response that an open
        complaint or rectification cites) and ``plain`` (fields of events written before csat
        sealed personal data that still hold theirs in plain form: the log is append-only).
        ``dry_run``: say so, erase nothing.

        :raises NotFound: no personal data of that person in the store.
        """
        keys = self.store.keys
        key_id = keys.owner_key(f"person:{respondent}")  # None: never sealed, or erased already
        found = {"names": 0, "reasons": 0, "comments": 0, "texts": 0, "cited": 0}
        plain = 0
        theirs: set[str] = set()
        if key_id is not None:
            self.catch_up()  # type: ignore[attr-defined]  # the open cases as the log has them now
        cited = _cited_responses(self.store.conn) if key_id is not None else set()
        for page in self.store.lenient_pages(0):
            for lg in page:
                if lg.event is None:
                    continue
                ev = msgspec.to_builtins(lg.event)
                if key_id is not None:
                    for kind, value, response in _sealed_fields(ev):
                        if is_sealed(value) and key_of(value) == key_id:
                            found[kind] += 1
                            found["cited"] += kind in ("reasons", "comments") and response in cited
                plain += _plain_fields(ev, respondent, theirs)
        if key_id is None and plain == 0:
            raise NotFound(f"no personal data of {respondent!r} in this store (or erased already)")
        fields = found["names"] + found["reasons"] + found["comments"] + found["texts"]
        if key_id is not None and not dry_run:
            self.append([{"type": "erasure", "id": f"erasure-{key_id}", "key": key_id, "fields": fields,
                          "plain": plain}])  # type: ignore[attr-defined]
            keys.destroy(key_id)
            self.catch_up()  # type: ignore[attr-defined]  # the read models know the key was erased
        return {"pseudonym": pseudonym(key_id) if key_id else None, "fields": fields, **found, "plain": plain}


def _sealed_fields(ev: dict[str, Any]) -> Iterator[tuple[str, Any, str | None]]:
    """An event's personal fields as (``names`` / ``reasons`` / ``comments`` / ``texts``, value,
    the response they belong to)."""
    kind = ev.get("type")
    if kind in ("response", "correction"):
        response = ev.get("id") if kind == "response" else ev.get("response")
        if kind == "response":
            yield "names", ev.get("respondent"), response
        for v in (ev.get("reasons") or {}).values():
            yield "reasons", v, response
        yield "comments", ev.get("comment"), response
    elif kind == "unit":
        yield "names", ev.get("name"), None
    elif kind == "round":
        for a in ev.get("assignments") or ():
            for p in a.get("respondents") or ():
                yield "names", p, None
    else:
        for s in _strings(ev):
            yield "texts", s, None


def _cited_responses(conn: Any) -> set[str]:
    """The responses an open complaint or an open rectification cites (directly, or through the
    complaint a rectification answers): their reasons are the case's evidence."""
    open_cases = "NOT EXISTS (SELECT 1 FROM rm_closures z WHERE z.complaint = c.id)"
    cited = {r for (r,) in conn.execute(f"SELECT c.response FROM rm_cases c WHERE c.response IS NOT NULL "
                                        f"AND {open_cases}")}
    for response, complaint in conn.execute(
            "SELECT r.response, r.complaint FROM rm_rectifications r WHERE NOT EXISTS (SELECT 1 FROM "
            "rm_rectification_updates u WHERE u.rectification = r.id AND u.status IN ('verified', 'cancelled'))"):
        if response:
            cited.add(response)
        if complaint:
            cited.update(r for (r,) in conn.execute("SELECT response FROM rm_cases WHERE id = ? AND response "
                                                    "IS NOT NULL", (complaint,)))
    return cited
