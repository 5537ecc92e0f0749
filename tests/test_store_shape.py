"""Pins the eventsourcing table shapes csat's batch paths rely on (engine/store.py)."""
from __future__ import annotations

import sqlite3

import pytest

from eventsourcing.persistence import StoredEvent

from csat.engine.events import ResponseWithdrawn
from csat.engine.log.postgres import PgIntegrityError
from csat.engine.log.store import MAPPER, Recorded, Store

from conftest import connect


@pytest.mark.sqlite_only("reads SQLite's table_info")
def test_stored_events_and_tracking_tables_have_the_shape_csat_writes(db):
    Store(db).close()
    with sqlite3.connect(db) as conn:
        cols = [(r[1], r[2], r[5]) for r in conn.execute("PRAGMA table_info(stored_events)")]
        assert cols == [("originator_id", "TEXT", 1), ("originator_version", "INTEGER", 2),
                        ("topic", "TEXT", 0), ("state", "BLOB", 0)]
        tracking = [(r[1], r[2], r[5]) for r in conn.execute("PRAGMA table_info(tracking)")]
        assert tracking == [("application_name", "TEXT", 1), ("notification_id", "INTEGER", 0)]
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_batch_append_is_what_eventsourcing_reads_back(db):
    store = Store(db)
    events = [ResponseWithdrawn(id=f"w{i}", response=f"r{i}", reason="dup") for i in range(3)]
    store.begin_write()
    store.append([Recorded("2026-01-01T00:00:00Z", e) for e in events])
    store.commit()
    notifications = store.recorder.select_notifications(start=1, limit=10)  # eventsourcing's own reader
    assert [n.id for n in notifications] == [1, 2, 3]
    assert [n.originator_id for n in notifications] == ["withdrawal:w0", "withdrawal:w1", "withdrawal:w2"]
    assert all(n.originator_version == 1 and n.topic == "withdrawal" for n in notifications)
    assert [MAPPER.to_domain_event(n).event for n in notifications] == events
    assert store.recorder.max_notification_id() == 3
    # eventsourcing's uniqueness guarantee holds for our writes: a key appears once
    store.begin_write()
    try:
        store.append([Recorded("x", events[0])])
    except (sqlite3.IntegrityError, PgIntegrityError):
        pass
    else:
        raise AssertionError("a second event under the same key was accepted")
    finally:
        store.rollback()
    store.close()


def test_postgresql_tables_are_eventsourcing_recorders_tables(pg_url):
    """On PostgreSQL the log and tracking tables are the ones eventsourcing's recorder creates."""
    Store(pg_url).close()
    with connect(pg_url) as conn:
        cols = conn.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = "
                            "'stored_events' ORDER BY ordinal_position").fetchall()
        assert cols == [("originator_id", "text"), ("originator_version", "bigint"), ("topic", "text"),
                        ("state", "bytea"), ("notification_id", "bigint")]
        tracking = conn.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = "
                                "'tracking' ORDER BY ordinal_position").fetchall()
        assert tracking == [("application_name", "text"), ("notification_id", "bigint")]


def test_tracking_goes_through_eventsourcing_and_only_forward(db):
    store = Store(db)
    store.begin_write()
    store.track(5)
    store.commit()
    assert store.tracking.max_tracking_id("csat-views") == 5 == store.tracked()
    store.begin_write()
    try:
        store.track(4)
    except Exception as e:  # eventsourcing refuses to move tracking backwards
        assert "tracking" in str(e).lower()
    else:
        raise AssertionError("tracking moved backwards")
    finally:
        store.rollback()
    store.close()


def test_mapper_round_trip():
    ev = ResponseWithdrawn(id="w", response="r", reason="x")
    stored = MAPPER.to_stored_event(Recorded("t", ev))
    assert isinstance(stored, StoredEvent) and stored.originator_id == "withdrawal:w"
    assert MAPPER.to_domain_event(stored) == Recorded("t", ev)


def test_stored_events_stay_forward_compatible(db):
    """A log written by a newer csat (an event with a field this version does not know) still reads."""
    store = Store(db)
    state = b'["2026-01-01T00:00:00Z",{"type":"withdrawal","id":"w","response":"r","reason":"x","approved_by":"qa"}]'
    store.begin_write()  # appended (and chained) as the newer csat would
    store.conn.execute("INSERT INTO stored_events VALUES (?, 1, 'withdrawal', ?)", ("withdrawal:w", state))
    store.commit()
    (logged,) = store.read(0, 10)
    assert logged.event == ResponseWithdrawn(id="w", response="r", reason="x")
    store.close()


def test_input_rejects_what_the_store_tolerates():
    from csat.engine.events import decode_line
    try:
        decode_line(b'{"type":"withdrawal","id":"w","response":"r","reason":"x","approved_by":"qa"}')
    except ValueError as e:
        assert str(e) == "unknown field `approved_by`"
    else:
        raise AssertionError("unknown input field accepted")


def test_batch_writes_mean_the_same_on_both_backends(db):
    """The seam's bulk path (unnest arrays on PostgreSQL) keeps SQLite's row-by-row meaning:
    OR IGNORE keeps the first row of a key, OR REPLACE the last, NULLs and bytes survive."""
    Store(db).close()
    with connect(db) as conn:
        conn.execute("CREATE TABLE t (k TEXT NOT NULL, n INTEGER, b BLOB, PRIMARY KEY (k))")
        conn.executemany("INSERT OR IGNORE INTO t (k, n, b) VALUES (?, ?, ?)",
                         [("a", 1, b"\x00\x01"), ("b", None, None), ("a", 2, b"x")])
        conn.executemany("INSERT OR REPLACE INTO t (k, n, b) VALUES (?, ?, ?)",
                         [("c", 3, b""), ("c", 4, b"y"), ("b", 5, None)])
        conn.executemany("INSERT INTO t VALUES (?, ?, ?)", [(f"z{i}", i, None) for i in range(2500)])
        rows = [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r)
                for r in conn.execute("SELECT k, n, b FROM t WHERE k NOT LIKE 'z%' ORDER BY k")]
        assert rows == [("a", 1, b"\x00\x01"), ("b", 5, None), ("c", 4, b"y")]
        assert conn.execute("SELECT COUNT(*), SUM(n) FROM t WHERE k LIKE 'z%'").fetchone() == (2500, sum(range(2500)))
