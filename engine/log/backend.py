"""The one interface between csat and the database it runs on.

Everything that differs between the embedded SQLite store and a PostgreSQL store shared by
several sites is a method of :class:`Backend`, implemented once per backend —
:class:`csat.engine.log.sqlite.SQLiteBackend` and :class:`csat.engine.log.postgres.PostgresBackend` — and
chosen once, where a store is opened (:func:`csat.engine.log.store.backend_for`). As in eventsourcing (one persistence
module per database behind one recorder interface), no other module asks which database it is on.

A backend gives csat a connection with ``sqlite3.Connection``'s surface (``execute``,
``executemany``, ``in_transaction``) in SQLite's dialect; the PostgreSQL backend translates.
"""
from __future__ import annotations

import contextlib
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import Any

#: the log's table (eventsourcing's application recorder's), its notification id the position
EVENTS = "stored_events"
BUSY_ENV = "CSAT_BUSY_TIMEOUT"
#: a writer waits this long for the write lock by default (a long rebuild)
DEFAULT_BUSY_TIMEOUT = 600.0


def busy_timeout() -> float:
    """How long a writer waits for the write lock: ``$CSAT_BUSY_TIMEOUT`` seconds, default 600."""
    try:
        return max(0.0, float(os.environ.get(BUSY_ENV) or DEFAULT_BUSY_TIMEOUT))
    except ValueError:
        return DEFAULT_BUSY_TIMEOUT


class Backend(ABC):
    """What csat needs of a database, and what differs between databases.

    :param target: the store as the user named it (a path, a ``postgresql://`` URL).
    """

    #: the connection csat's own SQL runs on (the log's batches, the read models)
    conn: Any
    #: eventsourcing's application and tracking recorders of the log
    recorder: Any
    tracking: Any
    #: the statement that appends one row to the log (key, version, topic, state)
    insert_statement: str

    def __init__(self, target: str):
        self.target = target
        #: the store as messages name it (a URL without its password)
        self.display = target

    # -- opening and closing ---------------------------------------------------

    @abstractmethod
    def open(self, create: bool) -> None:
        """Connect and make the recorders (``create`` false: a target that is not a store raises
        :class:`~csat.engine.errors.NoStore`, before anything is created)."""

    @abstractmethod
    def missing_tables(self, names: Sequence[str]) -> list[str]:
        """Which of the tables ``names`` do not exist yet."""

    @abstractmethod
    def create_recorder_table(self, recorder: Any) -> None:
        """Create one of eventsourcing's tables with its recorder's own statements (inside the
        caller's write transaction)."""

    @abstractmethod
    def not_a_store(self) -> str:
        """What to say when the target holds no csat log."""

    @abstractmethod
    def close(self) -> None:
        """Close the connection and the recorders' resources."""

    @abstractmethod
    def discard(self) -> None:
        """Remove the store just created here by a command that then failed (nothing was written):
        a file goes; a database is left as it is (its tables are empty)."""

    @abstractmethod
    def key_store(self) -> Any:
        """The store's key store (:mod:`csat.engine.log.keys`), kept apart from the log."""

    # -- the write lock ------------------------------------------------------------

    def begin_write(self) -> None:
        """Begin a write transaction, taking the write lock (waiting for it)."""
        self.conn.execute("BEGIN IMMEDIATE")

    def log_continues_after(self, position: int) -> None:
        """Inside the write transaction: the next event appended takes position ``position + 1``."""

    @abstractmethod
    def try_begin_write(self) -> bool:
        """Begin a write transaction if the write lock is free now; False (and no transaction)
        when another process holds it — never waits."""

    # -- tracking (eventsourcing's table) ---------------------------------------------

    @abstractmethod
    def tracked(self, name: str, conn: Any) -> int:
        """The last log position the named projection processed, on ``conn`` (0: none)."""

    @abstractmethod
    def track(self, position: int, name: str, conn: Any) -> None:
        """Record, inside ``conn``'s open transaction, that ``name`` processed up to ``position``."""

    @abstractmethod
    def create_tracking_table(self, conn: Any) -> None:
        """eventsourcing's tracking table on another connection (private read models)."""

    # -- sessions ---------------------------------------------------------------------

    @abstractmethod
    def session(self) -> str:
        """This connection's session, as another process can check it is still there."""

    @abstractmethod
    def session_alive(self, session: str) -> bool:
        """Is the session named by :meth:`session` (of any process) still there? True when it
        cannot be told."""

    # -- the chain --------------------------------------------------------------------

    def verify_file(self) -> str | None:
        """A file whose second half another process may walk while this one walks the first
        (``csat verify`` of a long log), or None."""
        return None

    # -- the read models --------------------------------------------------------------

    @abstractmethod
    def database(self, conn: Any) -> Any:
        """The read models' schema handle on ``conn`` (sqlite-utils' ``Database`` or its
        counterpart: ``create``, ``exists``, ``insert``, ``drop``, ``atomic``)."""

    #: what makes a table keep no order of its own beyond its key (SQLite: ``WITHOUT ROWID``, its
    #: rows in key order; PostgreSQL: nothing — a heap table with no serial column)
    unordered_table: str = ""

    #: a rebuild empties the published tables instead of dropping them (a reader then keeps its
    #: snapshot of the old rows instead of waiting for the rebuild's commit)
    empties_on_rebuild: bool = False

    @abstractmethod
    @contextlib.contextmanager
    def private_views(self, prefix: str) -> Iterator[Any]:
        """A connection to empty read models of its own, gone afterwards (``--as-of``, what-if)."""

    @abstractmethod
    @contextlib.contextmanager
    def published(self, conn: Any) -> Iterator[tuple[str, str]]:
        """On a private views connection, read access to the published read models, in one read
        snapshot: yields (the prefix of their tables, the name of their tracking table)."""

    @abstractmethod
    def columns(self, conn: Any, table: str) -> list[str]:
        """The columns of a read-model table on ``conn``."""
