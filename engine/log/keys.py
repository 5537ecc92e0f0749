"""The key store: one key per person (or per owner of personal text), kept apart from the log.

Personal fields are stored in the log sealed (AES-GCM, :mod:`csat.engine.log.personal`) under
their owner's key. The keys live here — never in the log, never under its hash chain — so
destroying a key (erasure: crypto-shredding) makes that owner's fields unreadable everywhere
they were copied, while every event's bytes, and so ``verify``, stay as they were.

Owners are never stored by name: a row holds the owner's HMAC digest (under a secret of this key
store), a random key id — which sealed values carry, and which is the owner's pseudonym — and the
key. One interface, one class per backend:

- :class:`SQLiteKeyStore` — a file of its own beside the store (``csat.db`` → ``csat.keys``;
  ``$CSAT_KEYS`` names another). ``secure_delete`` and a rollback journal: a destroyed key's
  bytes are overwritten in the file, not left in a free page or a WAL.
- :class:`PgKeyStore` — the table ``csat_keys`` in the store's database (grant it apart from the
  log's tables), on a connection of its own; a destroyed key's row is vacuumed away at once.

Back the key store up apart from the log: a store without it publishes the same figures and
shows pseudonyms for the people in it; an erased person's key must not come back from a backup.
"""
from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ..errors import StoreError

KEYS_ENV = "CSAT_KEYS"


def key_store_path(target: str) -> str:
    """The key file of a SQLite store: ``$CSAT_KEYS``, else beside it (``x/csat.db`` → ``x/csat.keys``)."""
    if os.environ.get(KEYS_ENV):
        return os.environ[KEYS_ENV]
    p = Path(target)
    return str(p.with_suffix(".keys") if p.suffix else p.with_name(p.name + ".keys"))


class KeyStore(ABC):
    """Keys by owner and by key id. Keys are 32 bytes (AES-256-GCM); key ids 12 hex digits."""

    def __init__(self) -> None:
        self._secret: bytes | None = None
        self._open = False  # a transaction of several new keys (one ingest's), committed at once

    # -- one transaction for many keys ------------------------------------------------

    def begin(self) -> None:
        """Hold the keys made from now on in one transaction, until :meth:`commit` (an ingest
        commits its keys just before its events: never an event without its key)."""
        if not self._open:
            self._create()
            self._begin()
            self._open = True

    def commit(self) -> None:
        if self._open:
            self._open = False
            self._end("COMMIT")

    def rollback(self) -> None:
        if self._open:
            self._open = False
            self._end("ROLLBACK")

    @abstractmethod
    def _begin(self) -> None: ...

    @abstractmethod
    def _end(self, how: str) -> None: ...

    # -- what each backend provides ---------------------------------------------------

    @abstractmethod
    def exists(self) -> bool:
        """Is there a key store (without creating one)?"""

    @abstractmethod
    def _create(self) -> None:
        """Create the tables if missing."""

    @abstractmethod
    def _execute(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run one statement (SQLite dialect, ``?`` marks) in its own committed transaction."""

    @abstractmethod
    def _shred(self) -> None:
        """After a key was deleted: make sure its bytes are gone from the storage too."""

    @abstractmethod
    def close(self) -> None: ...

    # -- the keys ---------------------------------------------------------------------

    def _digest(self, owner: str) -> bytes:
        if self._secret is None:
            self._create()
            row = self._execute("SELECT value FROM csat_key_meta WHERE name = 'secret'")
            if not row:
                self._execute("INSERT INTO csat_key_meta (name, value) VALUES ('secret', ?) ON CONFLICT DO NOTHING",
                              (secrets.token_bytes(32),))
                row = self._execute("SELECT value FROM csat_key_meta WHERE name = 'secret'")
            self._secret = bytes(row[0][0])
        return hmac.new(self._secret, owner.encode("utf-8"), hashlib.sha256).digest()

    def for_owners(self, owners: Iterable[str], create: bool = True) -> dict[str, tuple[str, bytes]]:
        """owner → (key id, key); with ``create``, a new key for an owner that has none."""
        out: dict[str, tuple[str, bytes]] = {}
        for owner in dict.fromkeys(owners):
            digest = self._digest(owner)
            row = self._execute("SELECT id, key FROM csat_keys WHERE owner = ?", (digest,))
            if not row and create:
                self._execute("INSERT INTO csat_keys (id, owner, key) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                              (secrets.token_hex(6), digest, secrets.token_bytes(32)))
                row = self._execute("SELECT id, key FROM csat_keys WHERE owner = ?", (digest,))
            if row:
                out[owner] = (row[0][0], bytes(row[0][1]))
        return out

    def by_ids(self, ids: Iterable[str]) -> dict[str, bytes]:
        """key id → key, of the ids that have one (a destroyed or unknown key has none)."""
        if not self.exists():
            return {}
        wanted = list(dict.fromkeys(ids))
        out: dict[str, bytes] = {}
        for i in range(0, len(wanted), 500):
            chunk = wanted[i:i + 500]
            out.update((k, bytes(v)) for k, v in self._execute(
                f"SELECT id, key FROM csat_keys WHERE id IN ({','.join('?' * len(chunk))})", tuple(chunk)))
        return out

    def owner_key(self, owner: str) -> str | None:
        """The key id of an owner, or None (never creates)."""
        if not self.exists():
            return None
        return next(iter(self.for_owners([owner], create=False).values()), (None,))[0]

    def destroy(self, key_id: str) -> bool:
        """Destroy a key (its owner's digest with it); True when there was one."""
        if not self.exists() or not self._execute("SELECT 1 FROM csat_keys WHERE id = ?", (key_id,)):
            return False
        self._execute("DELETE FROM csat_keys WHERE id = ?", (key_id,))
        self._shred()
        return True

    def rows(self) -> Iterator[tuple[str, bytes, bytes]]:
        """Every (key id, owner digest, key), for a copy of the store."""
        if self.exists():
            yield from ((i, bytes(o), bytes(k)) for i, o, k in self._execute("SELECT id, owner, key FROM csat_keys"))

    def secret(self) -> bytes:
        self._digest("")
        assert self._secret is not None
        return self._secret

    def take(self, secret: bytes, rows: Iterable[tuple[str, bytes, bytes]]) -> None:
        """Take over another key store's secret and keys (a new store's, for ``csat copy``)."""
        self._create()
        self._execute("DELETE FROM csat_key_meta")
        self._execute("INSERT INTO csat_key_meta (name, value) VALUES ('secret', ?)", (secret,))
        self._secret = None
        for row in rows:
            self._execute("INSERT INTO csat_keys (id, owner, key) VALUES (?, ?, ?) ON CONFLICT DO NOTHING", row)


class SQLiteKeyStore(KeyStore):
    """A key store in a SQLite file of its own."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path
        self._conn: sqlite3.Connection | None = None

    def exists(self) -> bool:
        return self._conn is not None or os.path.exists(self.path)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            try:
                conn = sqlite3.connect(self.path, isolation_level=None, timeout=30, check_same_thread=False)
                conn.execute("PRAGMA journal_mode=DELETE")  # no WAL keeps an old page
                conn.execute("PRAGMA secure_delete=ON")  # a deleted row's bytes are overwritten
            except sqlite3.Error as e:
                raise StoreError(f"cannot open the key store {self.path}: {e}") from None
            if os.name == "posix":
                with contextlib.suppress(OSError):
                    os.chmod(self.path, 0o600)
            self._conn = conn
        return self._conn

    def _create(self) -> None:
        conn = self._connection()
        conn.execute("CREATE TABLE IF NOT EXISTS csat_key_meta (name TEXT PRIMARY KEY, value BLOB NOT NULL)")
        conn.execute("CREATE TABLE IF NOT EXISTS csat_keys (id TEXT PRIMARY KEY, owner BLOB NOT NULL UNIQUE, "
                     "key BLOB NOT NULL)")

    def _execute(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._connection().execute(sql, args).fetchall()
        except sqlite3.Error as e:
            raise StoreError(f"the key store {self.path}: {e}") from None

    def _begin(self) -> None:
        self._execute("BEGIN IMMEDIATE")

    def _end(self, how: str) -> None:
        self._execute(how)

    def _shred(self) -> None:
        self._execute("VACUUM")  # rewrites the file: no freed page of the old key survives

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class PgKeyStore(KeyStore):
    """A key store in the ``csat_keys`` table of a PostgreSQL store's database."""

    def __init__(self, url: str):
        super().__init__()
        self.url = url
        self._conn: Any = None

    def _connection(self) -> Any:
        if self._conn is None:
            from .pgsql import PgConnection
            self._conn = PgConnection(self.url, 30.0)
        return self._conn

    def exists(self) -> bool:
        return self._connection().execute("SELECT to_regclass('csat_keys')").fetchone()[0] is not None

    def _create(self) -> None:
        conn = self._connection()
        conn.raw.execute("CREATE TABLE IF NOT EXISTS csat_key_meta (name TEXT PRIMARY KEY, value BYTEA NOT NULL)")
        conn.raw.execute("CREATE TABLE IF NOT EXISTS csat_keys (id TEXT PRIMARY KEY, owner BYTEA NOT NULL UNIQUE, "
                         "key BYTEA NOT NULL)")

    def _execute(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        cur = self._connection().execute(sql, args)
        return cur.fetchall() if sql.lstrip().upper().startswith("SELECT") else []

    def _begin(self) -> None:
        self._connection().raw.execute("BEGIN")

    def _end(self, how: str) -> None:
        self._connection().raw.execute(how)

    def _shred(self) -> None:
        self._connection().raw.execute("VACUUM csat_keys")  # the dead row's bytes leave the table's pages

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
