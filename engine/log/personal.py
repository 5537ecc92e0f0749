"""Personal fields: which they are, sealed on the way into the log, opened on the way out.

Personal (``docs/events.md`` §7): a response's ``respondent``, its ``reasons`` and ``comment`` (and
a correction's); a complaint's ``text``, a closure's ``note``, a rectification's ``issue`` and an
update's ``note``; a ``unit`` of kind ``person``'s ``name``; the ``respondents`` named in a round.
Not personal: the rater unit, subjects, answers, figures, ids, dates, and the office's own notes
(a correction's or withdrawal's ``reason``, a round's, an adoption's).

A personal value is stored as ``sealed:1:<key id>:<base64url(nonce ‖ AES-256-GCM ciphertext)>``
under the key of its *owner*:

- a response's ``respondent``: that person (``person:<respondent>``);
- a response's (and its corrections') ``reasons`` and ``comment``: whoever made the statement
  (:meth:`Sealer.texts_key`) — its rater unit (``rater:<rater>``) when it answered for a unit (a
  workshop's reasons are the unit's statement, the evidence it is held to, not the private data
  of the person who filled in the form); the respondent when they answered as a private person
  (no rater, or a rater unit of kind ``person``); else the response itself. Events written before
  this rule sealed a rated unit's texts under its respondent's key, and stay so (the log is
  append-only);
- a person unit's name: that person (``person:<unit id>``) — the namespace respondents share;
- a complaint's or rectification's texts (and their closures' and updates' notes): the case.

The key id is the owner's pseudonym (``p-<key id>``): stable across the owner's events, the same
with or without the key store, and never derived from the name. Blank values are left as they are
(a rule set may test a reason's presence, never its content).
"""
from __future__ import annotations

import base64
import os
from collections.abc import Callable
from typing import Any

import msgspec

from .events import (Assignment, ComplaintClosed, ComplaintFiled, Event, RectificationRequired, RectificationUpdated,
                     ResponseCorrected, ResponseRecorded, RoundOpened, UnitDeclared)
from .keys import KeyStore

PREFIX = "sealed:1:"
ERASED = "[erased]"
SEALED = "[sealed]"
#: output fields whose sealed value, without its key, shows as the owner's pseudonym (else "[sealed]")
PERSON_FIELDS = frozenset({"respondent", "respondents", "name", "subject_name"})


def is_sealed(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


def key_of(value: str) -> str:
    """The key id a sealed value was sealed under."""
    return value[len(PREFIX):].split(":", 1)[0]


def pseudonym(key_id: str) -> str:
    return f"p-{key_id}"


def person_of(value: str | None) -> str | None:
    """A respondent as rule sets may compare it: its pseudonym when sealed, else as given."""
    return pseudonym(key_of(value)) if is_sealed(value) else value


def _aead(key: bytes) -> Any:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    return AESGCM(key)


class Sealer:
    """Seals the personal fields of events on their way into the log (one ingest call).

    :param keys: the key store; keys are created there for new owners.
    """

    def __init__(self, keys: KeyStore):
        self.keys = keys
        self._owners: dict[str, str] = {}       # owner -> key id
        self._aeads: dict[str, Any] = {}        # key id -> AESGCM
        self._nonces = b""
        self._next = 0
        #: (key id, value) -> its sealed form, this call: a person's name (or a text they repeat) is
        #: sealed once and the same ciphertext reused — it tells no more than the key id already does
        self._sealed: dict[tuple[str, str], str] = {}

    def _nonce(self) -> bytes:
        if self._next + 12 > len(self._nonces):
            self._nonces, self._next = os.urandom(12 * 256), 0  # one system call per 256 values
        self._next += 12
        return self._nonces[self._next - 12:self._next]

    def key_for(self, owner: str) -> str:
        key_id = self._owners.get(owner)
        if key_id is None:
            self.keys.begin()  # the call's new keys in one transaction (committed by the caller)
            key_id, key = self.keys.for_owners([owner])[owner]
            self._owners[owner] = key_id
            self._aeads[key_id] = _aead(key)
        return key_id

    def _aead_of(self, key_id: str) -> Any:
        aead = self._aeads.get(key_id)
        if aead is None:
            key = self.keys.by_ids([key_id]).get(key_id)
            if key is None:
                return None
            aead = self._aeads[key_id] = _aead(key)
        return aead

    def seal_value(self, value: str, key_id: str) -> str:
        done = self._sealed.get((key_id, value))
        if done is not None:
            return done
        if len(self._sealed) > 100_000:  # memory stays bounded however long the call
            self._sealed.clear()
        done = self._sealed[(key_id, value)] = self._seal(value, key_id)
        return done

    def _seal(self, value: str, key_id: str) -> str:
        aead = self._aead_of(key_id)
        if aead is None:  # the owner's key was destroyed: nothing of theirs is written again
            return f"{PREFIX}{key_id}:"
        nonce = self._nonce()
        sealed = aead.encrypt(nonce, value.encode("utf-8"), key_id.encode())
        return f"{PREFIX}{key_id}:{base64.urlsafe_b64encode(nonce + sealed).rstrip(b'=').decode()}"

    def _text(self, value: str | None, key: Callable[[], str]) -> str | None:
        if value is None or not value.strip() or is_sealed(value):
            return value
        return self.seal_value(value, key())

    def seal(self, ev: Event, target: ResponseRecorded | None = None, person_unit: bool = False,
             is_person: Callable[[str], bool] = lambda unit: False) -> Event:
        """``ev`` with its personal fields sealed; ``target``: the response a correction amends;
        ``person_unit``: a ``unit`` event of a unit of kind person; ``is_person``: is a unit of
        kind person (a rater that is a private person)?"""
        tag = type(ev).__struct_config__.tag
        if tag == "response":
            if ev.respondent is None and not ev.reasons and not ev.comment:
                return ev  # the bulk of a file: nothing personal, no key
            who = lambda: self.key_for(f"person:{ev.respondent}")  # noqa: E731 — made only when something is sealed
            said = lambda: self.texts_key(ev, is_person)  # noqa: E731
            return msgspec.structs.replace(ev, respondent=self._text(ev.respondent, who),
                                           reasons={k: self._text(v, said) for k, v in ev.reasons.items()}
                                           if ev.reasons else ev.reasons, comment=self._text(ev.comment, said))
        if isinstance(ev, ResponseCorrected):
            if not ev.reasons and not ev.comment:
                return ev
            key = lambda: (self.texts_key(target, is_person) if target is not None  # noqa: E731
                           else self.key_for(f"response:{ev.response}"))
            return msgspec.structs.replace(ev, reasons={k: self._text(v, key) for k, v in ev.reasons.items()},
                                           comment=self._text(ev.comment, key))
        if isinstance(ev, ComplaintFiled):
            return msgspec.structs.replace(ev, text=self._text(ev.text, lambda: self.key_for(f"complaint:{ev.id}")))
        if isinstance(ev, ComplaintClosed):
            return msgspec.structs.replace(ev, note=self._text(ev.note, lambda: self.key_for(f"complaint:{ev.complaint}")))
        if isinstance(ev, RectificationRequired):
            return msgspec.structs.replace(ev, issue=self._text(ev.issue,
                                                                lambda: self.key_for(f"rectification:{ev.id}")))
        if isinstance(ev, RectificationUpdated):
            return msgspec.structs.replace(ev, note=self._text(
                ev.note, lambda: self.key_for(f"rectification:{ev.rectification}")))
        if isinstance(ev, UnitDeclared) and (person_unit or ev.kind == "person"):
            return msgspec.structs.replace(ev, name=self._text(ev.name, lambda: self.key_for(f"person:{ev.id}")))
        if isinstance(ev, RoundOpened) and any(a.respondents for a in ev.assignments):
            return msgspec.structs.replace(ev, assignments=[
                Assignment(a.rater, a.subjects, [self._text(p, lambda p=p: self.key_for(f"person:{p}")) for p in
                                                 a.respondents]) for a in ev.assignments])
        return ev

    def texts_key(self, response: ResponseRecorded, is_person: Callable[[str], bool]) -> str:
        """The key a response's reasons and comment (and its corrections') are sealed under: its
        rater unit's when it answered for a unit (the unit's statement: a respondent's erasure
        leaves it); the respondent's when they answered as a private person (no rater, or a rater
        of kind person); else the response's own. ``response`` may be one stored, sealed."""
        if response.rater and not is_person(response.rater):
            return self.key_for(f"rater:{response.rater}")
        if is_sealed(response.respondent):
            return key_of(response.respondent)
        if response.respondent:
            return self.key_for(f"person:{response.respondent}")
        if response.rater:
            return self.key_for(f"person:{response.rater}")  # a person unit, rating as themselves
        return self.key_for(f"response:{response.id}")


class Opener:
    """Opens sealed values for output: the plain value where the key store has the key, ``[erased]``
    where the key was destroyed by an erasure, else the owner's pseudonym (a person's field) or
    ``[sealed]`` (a copy of the store without its key store).

    :param keys: the key store, or None (not available).
    :param erased: the key ids destroyed by erasures in the log.
    """

    def __init__(self, keys: KeyStore | None, erased: set[str]):
        self.keys = keys
        self.erased = erased
        self._aeads: dict[str, Any] = {}
        self._opened: dict[str, str | None] = {}

    def plain(self, value: str) -> str | None:
        """The plain text of a sealed value, or None when it cannot be opened."""
        if value in self._opened:
            return self._opened[value]
        key_id, _, body = value[len(PREFIX):].partition(":")
        out = None
        if key_id not in self._aeads:
            key = self.keys.by_ids([key_id]).get(key_id) if self.keys is not None and key_id not in self.erased \
                else None
            self._aeads[key_id] = _aead(key) if key is not None else None
        aead = self._aeads[key_id]
        if aead is not None and body:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            try:
                out = aead.decrypt(raw[:12], raw[12:], key_id.encode()).decode("utf-8")
            except Exception:  # noqa: BLE001 — a value altered by hand does not open
                out = None
        self._opened[value] = out
        return out

    def text(self, value: Any, field: str | None = None) -> Any:
        if not is_sealed(value):
            return value
        out = self.plain(value)
        if out is not None:
            return out
        key_id = key_of(value)
        if key_id in self.erased:
            return ERASED
        return pseudonym(key_id) if field in PERSON_FIELDS else SEALED

    def deep(self, obj: Any, field: str | None = None) -> Any:
        """``obj`` (dicts and lists, changed in place) with every sealed string opened."""
        if isinstance(obj, str):
            return self.text(obj, field)
        if isinstance(obj, dict):
            for k, v in obj.items():
                if isinstance(v, (str, dict, list)):
                    obj[k] = self.deep(v, k)
            return obj
        if isinstance(obj, list):
            for i, v in enumerate(obj):
                if isinstance(v, (str, dict, list)):
                    obj[i] = self.deep(v, field)
            return obj
        return obj


def same_opened(stored: Any, given: Any) -> bool:
    """Is an event as stored (opened, to builtins) the event given again? A value whose key was
    destroyed (``[erased]``) matches anything: an erased person's data is not taken in again."""
    if stored == ERASED or (isinstance(stored, str) and stored == SEALED):
        return True
    if isinstance(stored, dict) and isinstance(given, dict):
        return stored.keys() == given.keys() and all(same_opened(stored[k], given[k]) for k in stored)
    if isinstance(stored, list) and isinstance(given, list):
        return len(stored) == len(given) and all(same_opened(a, b) for a, b in zip(stored, given))
    return stored == given
