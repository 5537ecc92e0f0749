"""Accounts of the web front: who may sign in, in which role, and the raters' links.

Kept in the store's database beside the log — never in it: a password hash has no place in an
append-only history, and an account is changed in place. Two tables, which a rebuild never
touches (they are not read models):

- ``csat_accounts``: name, role, the unit a manager manages, an argon2id password hash
  (argon2-cffi: memory-hard, the well-kept library), disabled or not, and its session version —
  a web session carries the version it was signed in under and ends when the version moves on
  (signing out, a role changed, disabled, a new password, removed);
- ``csat_links``: a rater's personal link to a round's questionnaire — only the SHA-256 of its
  token is kept (the token itself is shown once), with the assignment it opens (round, rater,
  respondent) and whether it was revoked. A link opens only while its round is open.
- an anonymous round's links' returns are not here: :mod:`csat.engine.app.anonymous` keeps them
  (marks no stored hash joins to a link). ``csat_link_returns`` (one row per link, its hash: what
  csat before 31.17 wrote) is only read, by that module, and never written.

Every change (an account added, its role, disabled or enabled, its password, removed, its API
tokens made or revoked, its sessions ended; raters' links made or revoked) appends a row to the
chained audit trail (:mod:`csat.engine.app.audit`) in the same transaction, naming the ``actor``
(an embedding application that names nobody: ``api``).

Roles: ``office`` (the quality office: everything), ``manager`` of a unit (that unit and the
units below it in the org chart as of each period), ``auditor`` (reads everything, changes nothing).
"""
from __future__ import annotations

import contextlib
import hashlib
import secrets
from collections.abc import Iterator
from typing import Any

from ..errors import CsatError, NotFound
from . import audit
from .threads import Gate, gated

ROLES = ("office", "manager", "auditor")
#: who made a change, when the caller names nobody
NOBODY = "api"
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
        audit.ensure(self.conn)
        if not self._has_column("csat_accounts", "session_version"):  # a store made before sessions had versions
            try:
                self.conn.execute("ALTER TABLE csat_accounts ADD COLUMN session_version INTEGER NOT NULL DEFAULT 0")
            except Exception:  # noqa: BLE001 — another process added it first
                if not self._has_column("csat_accounts", "session_version"):
                    raise
        self._ready = True

    def _has_column(self, table: str, column: str) -> bool:
        return column in [d[0] for d in self.conn.execute(f"SELECT * FROM {table} LIMIT 0").description]

    @contextlib.contextmanager
    def _write(self) -> Iterator[None]:
        """One write transaction (the store's write lock) for a change and its audit row — or the
        caller's, when one is open already."""
        self._tables()
        if self.conn.in_transaction:
            yield
            return
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def _audit(self, actor: str | None, action: str, target: str, **details: Any) -> None:
        audit.record(self.conn, actor or NOBODY, action, target, details)

    def _existing(self, name: str) -> dict[str, Any]:
        acct = self.get(name)
        if acct is None:
            raise NotFound(f"no account {name!r}")
        return acct

    def _next_session(self, name: str) -> None:
        self.conn.execute("UPDATE csat_accounts SET session_version = session_version + 1 WHERE name = ?", (name,))

    # -- accounts -------------------------------------------------------------------

    @staticmethod
    def _checked(role: str, unit: str | None, password: str | None = None) -> None:
        if role not in ROLES:
            raise CsatError(f"unknown role {role!r} (expected one of {', '.join(ROLES)})")
        if (role == "manager") != (unit is not None):
            raise CsatError("a manager manages one unit (--unit UNIT); the other roles have none")
        if password is not None and len(password) < MIN_PASSWORD:
            raise CsatError(f"a password has at least {MIN_PASSWORD} characters")

    def add(self, name: str, role: str, password: str, unit: str | None = None, *,
            actor: str | None = None) -> dict[str, Any]:
        """A new account. :raises CsatError: a name taken, an unknown role, a short password."""
        self._tables()
        self._checked(role, unit, password)
        if not name or name != name.strip() or len(name) > 64:
            raise CsatError("an account name is 1–64 characters, without surrounding spaces")
        hashed = _hasher().hash(password)
        with self._write():
            if self.get(name) is not None:
                raise CsatError(f"there is an account {name!r} already")
            self.conn.execute("INSERT INTO csat_accounts (name, role, unit, hash, disabled) VALUES (?, ?, ?, ?, 0)",
                              (name, role, unit, hashed))
            self._audit(actor, "account.add", name, role=role, unit=unit)
        return self.get(name)  # type: ignore[return-value]

    def get(self, name: str) -> dict[str, Any] | None:
        """The account (``name``, ``role``, ``unit``, ``disabled``, ``session_version``), or None."""
        self._tables()
        row = self.conn.execute("SELECT name, role, unit, disabled, session_version FROM csat_accounts "
                                "WHERE name = ?", (name,)).fetchone()
        return None if row is None else {"name": row[0], "role": row[1], "unit": row[2], "disabled": bool(row[3]),
                                         "session_version": row[4]}

    def list(self) -> list[dict[str, Any]]:
        self._tables()
        return [{"name": n, "role": r, "unit": u, "disabled": bool(d)} for n, r, u, d in self.conn.execute(
            "SELECT name, role, unit, disabled FROM csat_accounts ORDER BY name")]

    def set_role(self, name: str, role: str, unit: str | None = None, *, actor: str | None = None) -> dict[str, Any]:
        """Change an account's role (and a manager's unit); its sessions end."""
        self._checked(role, unit)
        with self._write():
            was = self._existing(name)
            self.conn.execute("UPDATE csat_accounts SET role = ?, unit = ? WHERE name = ?", (role, unit, name))
            self._next_session(name)
            self._audit(actor, "account.role", name, role=role, unit=unit, was=[was["role"], was["unit"]])
        return self.get(name)  # type: ignore[return-value]

    def set_disabled(self, name: str, disabled: bool = True, *, actor: str | None = None) -> dict[str, Any]:
        """Disable (or enable again) an account; its sessions end either way."""
        with self._write():
            self._existing(name)
            self.conn.execute("UPDATE csat_accounts SET disabled = ? WHERE name = ?", (int(disabled), name))
            self._next_session(name)
            self._audit(actor, "account.disable" if disabled else "account.enable", name)
        return self.get(name)  # type: ignore[return-value]

    def set_password(self, name: str, password: str, *, old: str | None = None, actor: str | None = None) -> None:
        """Set an account's password (the office's reset; with ``old``, its owner's change, which
        ``old`` must match); its sessions end.

        :raises CsatError: a short password, or ``old`` that is not the password.
        """
        self._existing(name)
        if len(password) < MIN_PASSWORD:
            raise CsatError(f"a password has at least {MIN_PASSWORD} characters")
        if old is not None and not self._matches(name, old):
            raise CsatError("the current password is not right")
        hashed = _hasher().hash(password)
        with self._write():
            self._existing(name)
            self.conn.execute("UPDATE csat_accounts SET hash = ? WHERE name = ?", (hashed, name))
            self._next_session(name)
            self._audit(actor, "account.password", name, by="owner" if old is not None else "reset")

    def remove(self, name: str, *, actor: str | None = None) -> None:
        """Remove an account and its API tokens (its sessions end with it)."""
        with self._write():
            was = self._existing(name)
            revoked = self.conn.execute("SELECT COUNT(*) FROM csat_api_tokens WHERE name = ?", (name,)).fetchone()[0]
            self.conn.execute("DELETE FROM csat_api_tokens WHERE name = ?", (name,))
            self.conn.execute("DELETE FROM csat_accounts WHERE name = ?", (name,))
            self._audit(actor, "account.remove", name, role=was["role"], unit=was["unit"], revoked=revoked)

    def end_sessions(self, name: str, *, actor: str | None = None) -> None:
        """End every web session of an account (signing out signs out everywhere)."""
        with self._write():
            self._existing(name)
            self._next_session(name)
            self._audit(actor, "account.signout", name)

    def _matches(self, name: str, password: str) -> bool:
        from argon2.exceptions import InvalidHashError, VerificationError
        row = self.conn.execute("SELECT hash FROM csat_accounts WHERE name = ?", (name,)).fetchone()
        try:
            return row is not None and _hasher().verify(row[0], password)
        except (VerificationError, InvalidHashError):
            return False

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

    def new_token(self, name: str, *, actor: str | None = None) -> str:
        """A new API token for an account (``Authorization: Bearer …``; shown once)."""
        token = "csat_" + secrets.token_urlsafe(32)
        with self._write():
            self._existing(name)
            self.conn.execute("INSERT INTO csat_api_tokens (hash, name) VALUES (?, ?)", (token_hash(token), name))
            self._audit(actor, "token.new", name)
        return token

    def revoke_tokens(self, name: str, *, actor: str | None = None) -> int:
        """Revoke every API token of an account; returns how many."""
        with self._write():
            self._existing(name)
            n = self.conn.execute("SELECT COUNT(*) FROM csat_api_tokens WHERE name = ?", (name,)).fetchone()[0]
            self.conn.execute("DELETE FROM csat_api_tokens WHERE name = ?", (name,))
            self._audit(actor, "token.revoke", name, revoked=n)
        return int(n)

    def by_token(self, token: str) -> dict[str, Any] | None:
        """The account an API token belongs to, when it is not disabled; else None."""
        self._tables()
        row = self.conn.execute("SELECT name FROM csat_api_tokens WHERE hash = ?", (token_hash(token),)).fetchone()
        acct = self.get(row[0]) if row else None
        return acct if acct is not None and not acct["disabled"] else None

    # -- raters' links --------------------------------------------------------------------

    def new_link(self, round_id: str, rater: str, respondent: str | None = None, *,
                 actor: str | None = None) -> str:
        """A new personal link's token for an assignment (shown once: only its hash is kept)."""
        return self.new_links(round_id, [(rater, respondent)], actor=actor)[0]

    def new_links(self, round_id: str, who: list[tuple[str, str | None]], *, actor: str | None = None) -> list[str]:
        """New links for several assignments of a round (``(rater, respondent)`` each), in one
        transaction with one audit row; their tokens, in order."""
        tokens = [secrets.token_urlsafe(32) for _ in who]
        with self._write():
            for token, (rater, respondent) in zip(tokens, who):
                self.conn.execute("INSERT INTO csat_links (hash, round, rater, respondent, revoked) "
                                  "VALUES (?, ?, ?, ?, 0)", (token_hash(token), round_id, rater, respondent))
            self._audit(actor, "links.new", round_id, raters=sorted({r for r, _ in who}), links=len(who))
        return tokens

    def link(self, token: str) -> dict[str, Any] | None:
        """The assignment a token opens (``round``, ``rater``, ``respondent``), or None (unknown or
        revoked: the caller checks the round is still open)."""
        self._tables()
        row = self.conn.execute("SELECT round, rater, respondent FROM csat_links WHERE hash = ? AND revoked = 0",
                                (token_hash(token),)).fetchone()
        return None if row is None else {"round": row[0], "rater": row[1], "respondent": row[2]}

    def revoke(self, round_id: str, rater: str, respondent: str | None = None, *, actor: str | None = None) -> int:
        """Revoke an assignment's links; returns how many (none revoked: nothing recorded)."""
        with self._write():
            rows = self.conn.execute("SELECT hash FROM csat_links WHERE round = ? AND rater = ? AND revoked = 0 AND "
                                     "COALESCE(respondent, '') = ?", (round_id, rater, respondent or "")).fetchall()
            for (h,) in rows:
                self.conn.execute("UPDATE csat_links SET revoked = 1 WHERE hash = ?", (h,))
            if rows:
                self._audit(actor, "links.revoke", round_id, rater=rater, named=respondent is not None,
                            links=len(rows))
        return len(rows)

    # -- the audit trail -------------------------------------------------------------------

    def audit(self) -> list[dict[str, Any]]:
        """The audit trail, oldest first: ``position``, ``at``, ``actor``, ``action``, ``target``,
        ``details``, ``hash`` (:mod:`csat.engine.app.audit`)."""
        self._tables()
        return audit.rows(self.conn)

    def verify_audit(self) -> dict[str, Any]:
        """Whether the audit trail's chain is unbroken (:func:`csat.engine.app.audit.verify`)."""
        return audit.verify(self.audit())


_DUMMY: list[str | None] = [None]


def _dummy(hasher: Any) -> str:
    """A hash to verify against when the account does not exist (so the answer takes as long)."""
    _DUMMY[0] = hasher.hash(secrets.token_urlsafe(16))
    return _DUMMY[0]
