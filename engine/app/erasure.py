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
        theirs.add(ev["id"])
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

    def erase(self, respondent: str) -> dict[str, Any]:
        """Erase a person's personal data: destroy their key, after recording an ``erasure``
        event that names no one. Returns ``pseudonym`` (None when nothing of theirs was sealed),
        ``fields`` (sealed fields made unreadable) and ``plain`` (fields of events written before
        csat sealed personal data that still hold theirs in plain form: the log is append-only).

        :raises NotFound: no personal data of that person in the store.
        """
        keys = self.store.keys
        key_id = keys.owner_key(f"person:{respondent}")  # None: never sealed, or erased already
        fields = plain = 0
        theirs: set[str] = set()
        for page in self.store.lenient_pages(0):
            for lg in page:
                if lg.event is None:
                    continue
                ev = msgspec.to_builtins(lg.event)
                if key_id is not None:
                    fields += sum(1 for s in _strings(ev) if is_sealed(s) and key_of(s) == key_id)
                plain += _plain_fields(ev, respondent, theirs)
        if key_id is None and plain == 0:
            raise NotFound(f"no personal data of {respondent!r} in this store (or erased already)")
        if key_id is not None:
            self.append([{"type": "erasure", "id": f"erasure-{key_id}", "key": key_id, "fields": fields,
                          "plain": plain}])  # type: ignore[attr-defined]
            keys.destroy(key_id)
            self.catch_up()  # type: ignore[attr-defined]  # the read models know the key was erased
        return {"pseudonym": pseudonym(key_id) if key_id else None, "fields": fields, "plain": plain}
