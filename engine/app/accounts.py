"""Accounts of the web front: who may sign in, in which role, and the raters' links.

Kept in the store's database beside the log — never in it: a password hash has no place in an
append-only history, and an account is changed in place. Two tables, which a rebuild never
touches (they are not read models):

- ``csat_accounts``: name, role, the unit a manager manages, an argon2id password hash
  (argon2-cffi: memory-hard, the well-kept library), disabled or not;
- ``csat_links``: a rater's personal link to a round's questionnaire — only the SHA-256 of its
  token is kept (the token itself is shown once), with the assignment it opens (round, rater,
  respondent) and whether it was revoked. A link opens only while its round is open.
- ``csat_link_returns``: an anonymous round's links that have returned their questionnaire (one
  return per link). It holds the link's hash and a digest of the submitting page's one-time
  nonce — never the response: the response's id is another one-way digest of that nonce, so
  neither table leads to the other without the nonce, which is kept nowhere.

Roles: ``office`` (the quality office: everything), ``manager`` of a unit (that unit and the
units below it in the org chart as of each period), ``auditor`` (reads everything, changes nothing).
"""
from __future__ import annotations

import hashlib
import secrets
from typing import Any

from ..errors import CsatError, NotFound
from .threads import Gate, gated

ROLES = ("office", "manager", "auditor")
#: the shortest password an account may have
MIN_PASSWORD = 10


def _hasher() -> Any:
    from argon2 import PasswordHasher
    return PasswordHasher()  # argon2id, the library's current recommended parameters


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@gated
class Accounts:
    """The accounts and raters' links of one store.

    :param conn: the store's connection (SQLite dialect on both backends).
    :param gate: the engine's turn-taking on that connection (its calls and these take turns).
    """

    def __init__(self, conn: Any, gate: Gate | None = None):
        self.conn = conn
        self._gate = gate or Gate(self._recover)
        self._ready = False

    def _recover(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    def _tables(self) -> None:
        if self._ready:
            return
        self.conn.execute("CREATE TABLE IF NOT EXISTS csat_accounts (name TEXT PRIMARY KEY, role TEXT NOT NULL, "
                          "unit TEXT, hash TEXT NOT NULL, disabled INTEGER NOT NULL DEFAULT 0)")
        self.conn.execute("CREATE TABLE IF NOT EXISTS csat_links (hash TEXT PRIMARY KEY, round TEXT NOT NULL, "
                          "rater TEXT NOT NULL, respondent TEXT, revoked INTEGER NOT NULL DEFAULT 0)")
        self.conn.execute("CREATE TABLE IF NOT EXISTS csat_api_tokens (hash TEXT PRIMARY KEY, name TEXT NOT NULL)")
        self.conn.execute("CREATE TABLE IF NOT EXISTS csat_link_returns (hash TEXT PRIMARY KEY, mark TEXT NOT NULL)")
        self._ready = True

    # -- accounts -------------------------------------------------------------------

    @staticmethod
    def _checked(role: str, unit: str | None, password: str | None = None) -> None:
        if role not in ROLES:
            raise CsatError(f"unknown role {role!r} (expected one of {', '.join(ROLES)})")
        if (role == "manager") != (unit is not None):
            raise CsatError("a manager manages one unit (--unit UNIT); the other roles have none")
        if password is not None and len(password) < MIN_PASSWORD:
            raise CsatError(f"a password has at least {MIN_PASSWORD} characters")

    def add(self, name: str, role: str, password: str, unit: str | None = None) -> dict[str, Any]:
        """A new account. :raises CsatError: a name taken, an unknown role, a short password."""
        self._tables()
        self._checked(role, unit, password)
        if not name or name != name.strip() or len(name) > 64:
            raise CsatError("an account name is 1–64 characters, without surrounding spaces")
        if self.get(name) is not None:
            raise CsatError(f"there is an account {name!r} already")
        self.conn.execute("INSERT INTO csat_accounts (name, role, unit, hash, disabled) VALUES (?, ?, ?, ?, 0)",
                          (name, role, unit, _hasher().hash(password)))
        return self.get(name)  # type: ignore[return-value]

    def get(self, name: str) -> dict[str, Any] | None:
        """The account (``name``, ``role``, ``unit``, ``disabled``), or None."""
        self._tables()
        row = self.conn.execute("SELECT name, role, unit, disabled FROM csat_accounts WHERE name = ?",
                                (name,)).fetchone()
        return None if row is None else {"name": row[0], "role": row[1], "unit": row[2], "disabled": bool(row[3])}

    def list(self) -> list[dict[str, Any]]:
        self._tables()
        return [{"name": n, "role": r, "unit": u, "disabled": bool(d)} for n, r, u, d in self.conn.execute(
            "SELECT name, role, unit, disabled FROM csat_accounts ORDER BY name")]

    def set_role(self, name: str, role: str, unit: str | None = None) -> dict[str, Any]:
        self._checked(role, unit)
        if self.get(name) is None:
            raise NotFound(f"no account {name!r}")
        self.conn.execute("UPDATE csat_accounts SET role = ?, unit = ? WHERE name = ?", (role, unit, name))
        return self.get(name)  # type: ignore[return-value]

    def set_disabled(self, name: str, disabled: bool = True) -> dict[str, Any]:
        if self.get(name) is None:
            raise NotFound(f"no account {name!r}")
        self.conn.execute("UPDATE csat_accounts SET disabled = ? WHERE name = ?", (int(disabled), name))
        return self.get(name)  # type: ignore[return-value]

    def set_password(self, name: str, password: str) -> None:
        if self.get(name) is None:
            raise NotFound(f"no account {name!r}")
        if len(password) < MIN_PASSWORD:
            raise CsatError(f"a password has at least {MIN_PASSWORD} characters")
        self.conn.execute("UPDATE csat_accounts SET hash = ? WHERE name = ?", (_hasher().hash(password), name))

    def check(self, name: str, password: str) -> dict[str, Any] | None:
        """The account when ``password`` is its password and it is not disabled; else None (the
        same time spent whether the name exists or not)."""
        self._tables()
        from argon2.exceptions import VerificationError, InvalidHashError
        row = self.conn.execute("SELECT hash, disabled FROM csat_accounts WHERE name = ?", (name,)).fetchone()
        hasher = _hasher()
        stored = row[0] if row else _DUMMY[0] or _dummy(hasher)
        try:
            hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return None
        if row is None or row[1]:
            return None
        if hasher.check_needs_rehash(stored):
            self.conn.execute("UPDATE csat_accounts SET hash = ? WHERE name = ?", (hasher.hash(password), name))
        return self.get(name)

    def new_token(self, name: str) -> str:
        """A new API token for an account (``Authorization: Bearer …``; shown once)."""
        if self.get(name) is None:
            raise NotFound(f"no account {name!r}")
        token = "csat_" + secrets.token_urlsafe(32)
        self.conn.execute("INSERT INTO csat_api_tokens (hash, name) VALUES (?, ?)", (token_hash(token), name))
        return token

    def by_token(self, token: str) -> dict[str, Any] | None:
        """The account an API token belongs to, when it is not disabled; else None."""
        self._tables()
        row = self.conn.execute("SELECT name FROM csat_api_tokens WHERE hash = ?", (token_hash(token),)).fetchone()
        acct = self.get(row[0]) if row else None
        return acct if acct is not None and not acct["disabled"] else None

    # -- raters' links --------------------------------------------------------------------

    def new_link(self, round_id: str, rater: str, respondent: str | None = None) -> str:
        """A new personal link's token for an assignment (shown once: only its hash is kept)."""
        self._tables()
        token = secrets.token_urlsafe(32)
        self.conn.execute("INSERT INTO csat_links (hash, round, rater, respondent, revoked) VALUES (?, ?, ?, ?, 0)",
                          (token_hash(token), round_id, rater, respondent))
        return token

    def link(self, token: str) -> dict[str, Any] | None:
        """The assignment a token opens (``round``, ``rater``, ``respondent``), or None (unknown or
        revoked: the caller checks the round is still open)."""
        self._tables()
        row = self.conn.execute("SELECT round, rater, respondent FROM csat_links WHERE hash = ? AND revoked = 0",
                                (token_hash(token),)).fetchone()
        return None if row is None else {"round": row[0], "rater": row[1], "respondent": row[2]}

    def revoke(self, round_id: str, rater: str, respondent: str | None = None) -> int:
        """Revoke an assignment's links; returns how many."""
        self._tables()
        rows = self.conn.execute("SELECT hash FROM csat_links WHERE round = ? AND rater = ? AND revoked = 0 AND "
                                 "COALESCE(respondent, '') = ?", (round_id, rater, respondent or "")).fetchall()
        for (h,) in rows:
            self.conn.execute("UPDATE csat_links SET revoked = 1 WHERE hash = ?", (h,))
        return len(rows)


    # -- an anonymous link's one return ---------------------------------------------------

    def claim_return(self, token: str, nonce: str) -> bool:
        """Claim an anonymous link's one return for the page sent with ``nonce``: True when it is
        this page's (claimed now, or by this same page before: a retry or a double click), False
        when the link has returned another page already. Two pages sent at once: one wins."""
        self._tables()
        h, mark = token_hash(token), _return_mark(nonce)
        self.conn.execute("INSERT OR IGNORE INTO csat_link_returns (hash, mark) VALUES (?, ?)", (h, mark))
        row = self.conn.execute("SELECT mark FROM csat_link_returns WHERE hash = ?", (h,)).fetchone()
        return row is not None and row[0] == mark

    def release_return(self, token: str, nonce: str) -> None:
        """Give the claim back (what it would have sent was refused: nothing was recorded)."""
        self._tables()
        self.conn.execute("DELETE FROM csat_link_returns WHERE hash = ? AND mark = ?",
                          (token_hash(token), _return_mark(nonce)))

    def returned(self, token: str) -> bool:
        """Whether an anonymous link has returned its questionnaire."""
        self._tables()
        return self.conn.execute("SELECT 1 FROM csat_link_returns WHERE hash = ?",
                                 (token_hash(token),)).fetchone() is not None


def _return_mark(nonce: str) -> str:
    return hashlib.sha256(f"return:{nonce}".encode("utf-8")).hexdigest()


_DUMMY: list[str | None] = [None]


def _dummy(hasher: Any) -> str:
    """A hash to verify against when the account does not exist (so the answer takes as long)."""
    _DUMMY[0] = hasher.hash(secrets.token_urlsafe(16))
    return _DUMMY[0]
