"""`csat copy SOURCE TARGET`: a whole log moved between stores (SQLite ↔ PostgreSQL) keeps every
position, recording time and chain hash, and the target publishes the same scores."""
from __future__ import annotations

import json
import os

import pytest

from conftest import EXAMPLES, Cli, connect


@pytest.fixture
def source(tmp_path) -> Cli:
    """A SQLite store holding every worked example, a correction and an adoption."""
    cli = Cli(str(tmp_path / "source.db"))
    cli("ingest", *sorted(str(p) for p in EXAMPLES.glob("*.jsonl")))
    return cli


def published(cli: Cli) -> tuple[dict, list, list]:
    return cli.json("verify"), cli.json("scores"), cli.json("log")


def test_a_round_trip_through_postgresql_keeps_the_log_and_the_scores(source, pg_url, tmp_path):
    back = str(tmp_path / "back.db")
    out = source.runner.invoke(source.group, ["copy", source.db, pg_url, "--format", "json"])
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout)
    before = published(source)
    assert result["head_hash"] == before[0]["head_hash"] and result["events"] == before[0]["events"]
    assert result["rebuilt"] == result["events"]
    on_pg = published(Cli(pg_url))
    assert source.runner.invoke(source.group, ["copy", pg_url, back]).exit_code == 0
    again = published(Cli(back))
    assert before == on_pg == again  # the same head, the same scores, the same log (positions, recording times)
    assert before[0]["intact"] and before[0]["events"] > 40


def test_a_copy_into_a_store_that_holds_events_writes_nothing(source, db):
    target = Cli(db)
    target("ingest", str(EXAMPLES / "iso-100.jsonl"))
    head = target.json("verify")
    out = source("copy", source.db, db, expect=1)
    assert "already holds" in out.stderr and "Traceback" not in out.stderr
    assert target.json("verify") == head


def test_a_source_that_does_not_verify_is_refused_and_nothing_is_left(source, db):
    with connect(source.db) as conn:  # an event edited by hand
        conn.execute("UPDATE stored_events SET state = CAST(CAST(state AS TEXT) || ' ' AS BLOB) WHERE rowid = 5")
    out = source("copy", source.db, db, expect=1)
    assert "does not verify" in out.stderr and "position 5" in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    if not db.startswith("postgresql://"):
        assert not os.path.exists(db)  # the new store it would have made is not left behind
    else:
        with connect(db) as conn:
            assert conn.execute("SELECT COUNT(*) FROM stored_events").fetchone()[0] == 0


def test_copy_onto_itself_is_refused(source):
    out = source("copy", source.db, source.db, expect=1)
    assert "onto itself" in out.stderr
