"""PostgreSQL's dialect of csat's SQL: statements written for SQLite, run on PostgreSQL (for
:mod:`csat.engine.log.postgres`, the PostgreSQL backend).

csat's modules speak one dialect (SQLite's) to a connection with
``sqlite3.Connection``'s methods. For a ``postgresql://`` store,
:class:`PgConnection` is that connection: it translates each statement once
(cached) and runs it with psycopg. What it translates:

* ``?`` placeholders → ``%s`` (and a literal ``%`` → ``%%``);
* ``INSERT OR IGNORE`` → ``INSERT … ON CONFLICT DO NOTHING``;
* ``INSERT OR REPLACE`` → ``INSERT … ON CONFLICT (primary key) DO UPDATE``
  (the table's columns and key read from the catalogue, once per table);
* ``BEGIN IMMEDIATE`` (SQLite's write lock) → ``BEGIN`` and a
  transaction-scoped advisory lock, the one write lock of the store;
  plain ``BEGIN`` (a read snapshot) → ``BEGIN ISOLATION LEVEL REPEATABLE READ``;
* ``rowid`` of the log → ``notification_id``; ``group_concat`` →
  ``string_agg``; the chain's head expression; ``BLOB`` → ``BYTEA``.

:class:`PgDatabase` is the part of sqlite-utils' ``Database`` the read-model
schema code uses (create, exists, insert, drop, atomic), with text columns
in the ``"C"`` collation so that rows sort as they do in SQLite.

Nothing but the PostgreSQL backend imports psycopg; it is imported only when a
PostgreSQL store is opened (``pip install 'csat[postgres]'``).
"""
from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from . import chain
from ..errors import PgIntegrityError, StoreError

PREFIXES = ("postgresql://", "postgres://")
#: the advisory lock that is the store's write lock (an arbitrary constant: "csat" in ASCII)
WRITE_LOCK = 0x63736174


def is_postgres(target: str) -> bool:
    return target.startswith(PREFIXES)


def redacted(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


class StoreLost(StoreError):
    """The server went away (a crash, a failover, the network): the open transaction was rolled
    back by the server; ``detail`` says what was lost, without the advice. ``at_commit``: it went
    away while a ``COMMIT`` was on its way, so whether that transaction was kept is unknown."""

    def __init__(self, detail: str, at_commit: bool = False):
        self.detail, self.at_commit = detail, at_commit
        kept = ("it went away during the commit: whether this command's work was written is unknown (a rerun "
                "skips what was)" if at_commit else "nothing of this command's unfinished work was written")
        super().__init__(f"{detail}; {kept}: run it again")


class PgDuplicateObject(StoreError):
    """A CREATE of something that exists already (a type, a schema)."""


def _failed(url: str, e: Exception) -> StoreError:
    """A psycopg error as one line in the words of a csat user."""
    psycopg = _psycopg()
    first = (str(e).strip().splitlines() or [type(e).__name__])[0]
    if isinstance(e, psycopg.errors.LockNotAvailable):
        return StoreError(f"the store {redacted(url)} is busy: another csat process has held its write lock "
                          "too long (a rebuild or a large ingest?); run the command again when it has finished, "
                          "or wait longer with CSAT_BUSY_TIMEOUT=SECONDS")
    if isinstance(e, psycopg.errors.DuplicateObject):
        return PgDuplicateObject(first)
    if isinstance(e, psycopg.IntegrityError):
        return PgIntegrityError(first)
    if isinstance(e, psycopg.OperationalError):
        return StoreLost(f"lost the PostgreSQL store {redacted(url)} ({first})")
    return StoreError(f"PostgreSQL store {redacted(url)}: {first}")


@contextlib.contextmanager
def _errors(url: str) -> Iterator[None]:
    psycopg = _psycopg()
    try:
        yield
    except psycopg.Error as e:
        raise _failed(url, e) from None


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise StoreError("a postgresql:// store needs psycopg: python -m pip install 'csat[postgres]' (in the "
                         "Python that runs csat)") from None
    return psycopg


_OR_IGNORE = re.compile(r"^\s*INSERT\s+OR\s+IGNORE\s+INTO\s+", re.I)
_OR_REPLACE = re.compile(r"^\s*INSERT\s+OR\s+REPLACE\s+INTO\s+\[?(\w+)\]?\s*(\(([^)]*)\))?", re.I)
_ROWID = re.compile(r"\browid\b")
#: rows per multi-row INSERT statement (PostgreSQL takes at most 65,535 parameters per statement)
ROWS_PER_INSERT = 1000


def _seam_connection(url: str) -> type:
    """psycopg's connection whose cursors (and so its ``execute``) fail as the seam's StoreError
    when the connection itself is gone."""
    psycopg = _psycopg()

    class SeamConnection(psycopg.Connection):  # type: ignore[misc, name-defined]
        def cursor(self, *args: Any, **kwargs: Any) -> Any:
            with _errors(url):
                return super().cursor(*args, **kwargs)
    return SeamConnection


def _seam_cursor(url: str) -> type:
    """psycopg's cursor whose every statement fails as the seam's one-line StoreError (the server
    gone, a lock timeout, a constraint): no psycopg error leaves a PostgreSQL store."""
    psycopg = _psycopg()

    class SeamCursor(psycopg.Cursor):  # type: ignore[misc, name-defined]
        def execute(self, *args: Any, **kwargs: Any) -> Any:
            with _errors(url):
                return super().execute(*args, **kwargs)

        def executemany(self, *args: Any, **kwargs: Any) -> Any:
            with _errors(url):
                return super().executemany(*args, **kwargs)
    return SeamCursor


class PgCursor:
    """A psycopg cursor with the sqlite3 cursor methods csat uses."""

    def __init__(self, owner: "PgConnection", cursor: Any):
        self._owner, self._cursor = owner, cursor

    def execute(self, sql: str, args: Sequence[Any] = ()) -> "PgCursor":
        self._cursor.execute(self._owner.translate(sql), _params(args))
        return self

    def fetchone(self) -> Any:
        return self._cursor.fetchone() if self._cursor.description else None

    def fetchall(self) -> list[Any]:
        return self._cursor.fetchall() if self._cursor.description else []

    def fetchmany(self, n: int) -> list[Any]:
        return self._cursor.fetchmany(n) if self._cursor.description else []

    def __iter__(self) -> Iterator[Any]:
        return iter(self._cursor) if self._cursor.description else iter(())

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def description(self) -> Any:
        return self._cursor.description


def _params(args: Sequence[Any] | dict[str, Any]) -> Any:
    if isinstance(args, dict):
        return args
    return tuple(bytes(a) if isinstance(a, memoryview) else a for a in args)


class PgConnection:
    """A PostgreSQL connection that runs csat's SQLite-dialect statements (see the module)."""

    def __init__(self, url: str, lock_timeout: float):
        psycopg = _psycopg()
        self.url = url
        try:
            self.raw = _seam_connection(url).connect(url, autocommit=True, cursor_factory=_seam_cursor(url))
        except psycopg.Error as e:
            raise StoreError(f"cannot connect to {redacted(url)}: {str(e).strip().splitlines()[0]}") from None
        self.raw.execute(f"SET lock_timeout = '{int(lock_timeout * 1000)}ms'")
        self._tables: dict[str, tuple[list[str], list[str]]] = {}

    # -- the sqlite3.Connection surface ----------------------------------------------

    @property
    def in_transaction(self) -> bool:
        from psycopg.pq import TransactionStatus  # a lost connection (UNKNOWN) has none to end
        return self.raw.info.transaction_status in (TransactionStatus.INTRANS, TransactionStatus.INERROR,
                                                     TransactionStatus.ACTIVE)

    def forget_shapes(self) -> None:
        """A table's shape changed (altered, dropped): the column types and batch statements built
        for it go."""
        self._tables.clear()
        self._bulk.cache_clear()

    def execute(self, sql: str, args: Sequence[Any] | dict[str, Any] = ()) -> PgCursor:
        head = sql.lstrip()[:16].upper()
        if head.startswith("BEGIN IMMEDIATE"):
            self.raw.execute("BEGIN")
            try:
                self.raw.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
            except StoreError:
                self.raw.execute("ROLLBACK")
                raise
            return PgCursor(self, self.raw.cursor())
        if head.startswith("PRAGMA"):
            return PgCursor(self, self.raw.cursor())
        if head.startswith(("COMMIT", "END")):
            try:
                return PgCursor(self, self.raw.cursor()).execute(sql, args)
            except StoreLost as e:  # the server may have committed before it went: no one can say
                raise StoreLost(e.detail, at_commit=True) from None
        if head.startswith(("ALTER", "DROP")):
            self.forget_shapes()
        cursor = PgCursor(self, self.raw.cursor())
        return cursor.execute(sql, args)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run ``sql`` for each row. A plain ``INSERT … VALUES (?, …)`` goes as one ``COPY``; an
        upsert (``ON CONFLICT``) as one statement per :data:`ROWS_PER_INSERT` rows inserting from
        ``unnest`` of one array per column, keeping the last row per key as SQLite's row-by-row
        ``INSERT OR REPLACE`` would. (psycopg's own executemany pipelines one statement per row
        and a multi-row ``VALUES`` is parsed in Python: both measured 3–4× slower than unnest;
        COPY's rows are formatted in C, 2.5× faster again.)"""
        batch = rows if isinstance(rows, list) else list(rows)
        if not batch:
            return
        plan = self._bulk(sql)
        with self.raw.cursor() as cur, _errors(self.url):  # (for COPY, whose errors come at its end)
            if plan is None:
                cur.executemany(self.translate(sql), [_params(r) for r in batch])
                return
            statement, key, copy = plan
            if copy is not None:
                with cur.copy(copy) as stream:
                    for row in batch:
                        stream.write_row(row)
                return
            if key is not None:
                batch = list({tuple(r[i] for i in key): r for r in batch}.values())
            for start in range(0, len(batch), ROWS_PER_INSERT):
                cur.execute(statement, [list(column) for column in zip(*batch[start:start + ROWS_PER_INSERT])])

    @functools.lru_cache(maxsize=256)  # noqa: B019 - one connection per store, statements are constants
    def _bulk(self, sql: str) -> tuple[str, tuple[int, ...] | None, str | None] | None:
        """``INSERT INTO t (cols) VALUES (?, …) suffix`` as ``INSERT INTO t (cols) SELECT * FROM
        unnest(%s::type[], …) suffix``, with the positions of the conflict key when the suffix
        updates, and the ``COPY`` that does the same when there is no suffix; None for any other
        statement (it runs row by row)."""
        s = self.translate(sql)
        m = re.match(r'\s*INSERT INTO "?(\w+)"?\s*(\(([^)]*)\))?\s*VALUES\s*\(([^()]*)\)(.*)$', s, re.S | re.I)
        if m is None or "RETURNING" in m.group(5).upper():
            return None
        table, suffix = m.group(1), m.group(5)
        items = [x.strip() for x in m.group(4).split(",")]
        if any(x != "%s" for x in items):
            return None
        shape = self.table_shape(table)
        columns = [c.strip().strip('"') for c in m.group(3).split(",")] if m.group(3) else shape.columns
        types = shape.types
        if len(columns) != len(items) or any(c not in types for c in columns):
            return None
        key = None
        if "DO UPDATE" in suffix.upper():
            conflict = re.search(r"ON CONFLICT \(([^)]*)\)", suffix)
            wanted = [c.strip().strip('"') for c in conflict.group(1).split(",")] if conflict else []
            if not wanted or not set(wanted) <= set(columns):
                return None
            key = tuple(columns.index(c) for c in wanted)
        arrays = ", ".join(f"%b::{types[c]}[]" for c in columns)
        head = s[:m.start(4)].rstrip()
        head = head[:head.upper().rindex("VALUES")].rstrip()
        quoted = ", ".join('"' + c + '"' for c in columns)
        copy = f'COPY "{table}" ({quoted}) FROM STDIN' if not suffix.strip() else None
        return f"{head} SELECT * FROM unnest({arrays}){suffix}", key, copy

    def cursor(self) -> PgCursor:
        return PgCursor(self, self.raw.cursor())

    @contextlib.contextmanager
    def savepoint(self) -> Iterator[None]:
        """A savepoint inside the open transaction: an error in it rolls back to it, the
        transaction goes on (psycopg's errors become the seam's)."""
        self.raw.execute("SAVEPOINT csat_step")
        try:
            yield
        except BaseException:
            self.raw.execute("ROLLBACK TO SAVEPOINT csat_step")
            raise
        self.raw.execute("RELEASE SAVEPOINT csat_step")

    def try_write_lock(self) -> bool:
        """Begin a write transaction if the write lock is free now; False (no transaction) if not."""
        self.raw.execute("BEGIN")
        (got,) = self.raw.execute("SELECT pg_try_advisory_xact_lock(%s)", (WRITE_LOCK,)).fetchone()
        if not got:
            self.raw.execute("ROLLBACK")
        return bool(got)

    def close(self) -> None:
        self.raw.close()

    # -- translation ---------------------------------------------------------------

    def translate(self, sql: str) -> str:
        return self._translate(sql)

    @functools.lru_cache(maxsize=512)  # noqa: B019 - one connection per store, statements are constants
    def _translate(self, sql: str) -> str:
        s = sql.strip()
        upper = s[:20].upper()
        if upper == "BEGIN" or upper.startswith("BEGIN;"):
            return "BEGIN ISOLATION LEVEL REPEATABLE READ"
        suffix = ""
        if _OR_IGNORE.match(s):
            s = _OR_IGNORE.sub("INSERT INTO ", s, count=1)
            suffix = " ON CONFLICT DO NOTHING"
        elif (m := _OR_REPLACE.match(s)):
            table = m.group(1)
            columns, key, _ = self.table_shape(table)
            named = [c.strip().strip("[]\"") for c in m.group(3).split(",")] if m.group(3) else columns
            s = "INSERT INTO " + s[m.start(1) - (1 if s[m.start(1) - 1] == "[" else 0):]
            update = [c for c in named if c not in key]
            suffix = (f" ON CONFLICT ({', '.join(key)}) DO UPDATE SET "
                      + ", ".join(f"{c} = EXCLUDED.{c}" for c in update)) if update else " ON CONFLICT DO NOTHING"
        s = s.replace(chain.HEAD, "convert_to(s.originator_id || chr(31) || s.topic, 'UTF8')")
        if "stored_events" in s:
            s = _ROWID.sub("notification_id", s)
        s = s.replace("group_concat(", "string_agg(")
        if upper.startswith("CREATE"):
            s = s.replace("INTEGER PRIMARY KEY", "BIGINT PRIMARY KEY").replace("BLOB", "BYTEA")
        s = s.replace("[", '"').replace("]", '"') if upper.startswith(("CREATE", "DELETE", "INSERT")) else s
        return (s + suffix).replace("%", "%%").replace("?", "%s")

    def table_shape(self, table: str) -> "Shape":
        """A table's columns in order, its primary key and its column types, as the search path
        resolves it (read from the catalogue once per table)."""
        shape = self._tables.get(table)
        if shape is None:
            typed = self.raw.execute(
                "SELECT attname, format_type(atttypid, NULL) FROM pg_attribute WHERE attrelid = to_regclass(%s) "
                "AND attnum > 0 AND NOT attisdropped ORDER BY attnum", (table,)).fetchall()
            key = [r[0] for r in self.raw.execute(
                "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = to_regclass(%s) AND i.indisprimary", (table,))]
            if not typed:
                raise StoreError(f"no table {table} in the PostgreSQL store")
            shape = self._tables[table] = Shape([c for c, _ in typed], key, dict(typed))
        return shape


class Shape(NamedTuple):
    columns: list[str]
    key: list[str]
    types: dict[str, str]


_TYPES = {str: 'TEXT COLLATE "C"', int: "BIGINT", bytes: "BYTEA", float: "DOUBLE PRECISION"}


class PgTable:
    def __init__(self, db: "PgDatabase", name: str):
        self.db, self.name = db, name

    def _qualified(self) -> str:
        """The name in the first schema of the search path only (a private snapshot's schema must
        never reach through to the published tables of the same name)."""
        (schema,) = self.db.conn.raw.execute("SELECT current_schema()").fetchone()
        return f'"{schema}"."{self.name}"'

    def exists(self) -> bool:
        return self.db.conn.raw.execute("SELECT to_regclass(%s)", (self._qualified(),)).fetchone()[0] is not None

    def create(self, columns: dict[str, type], pk: str | tuple[str, ...]) -> None:
        keys = (pk,) if isinstance(pk, str) else pk
        cols = ", ".join(f'"{c}" {_TYPES[t]}' + (" NOT NULL" if c in keys else "") for c, t in columns.items())
        self.db.conn.raw.execute(f'CREATE TABLE {self._qualified()} ({cols}, PRIMARY KEY ({", ".join(keys)}))')

    def insert(self, row: dict[str, Any]) -> None:
        self.insert_all([row])

    def insert_all(self, rows: Iterable[dict[str, Any]]) -> None:
        rows = list(rows)
        if rows:
            cols = list(rows[0])
            self.db.conn.executemany(f'INSERT INTO "{self.name}" ({", ".join(cols)}) VALUES '
                                     f'({", ".join("?" * len(cols))})', [[r[c] for c in cols] for r in rows])

    def drop(self, ignore: bool = False) -> None:
        self.db.conn.raw.execute(f'DROP TABLE {"IF EXISTS " if ignore else ""}{self._qualified()}')
        self.db.conn.forget_shapes()


class PgDatabase:
    """The part of sqlite-utils' ``Database`` the read-model schema code uses, on PostgreSQL."""

    def __init__(self, conn: PgConnection):
        self.conn = conn

    def __getitem__(self, name: str) -> PgTable:
        return PgTable(self, name)

    def execute(self, sql: str, args: Sequence[Any] = ()) -> PgCursor:
        return self.conn.execute(sql, args)

    @contextlib.contextmanager
    def atomic(self) -> Iterator[None]:
        if self.conn.in_transaction:
            with self.conn.savepoint():
                yield
        else:
            with _errors(self.conn.url), self.conn.raw.transaction():  # (its COMMIT is psycopg's own)
                yield
