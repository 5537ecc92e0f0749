"""A log an auditor can trust (events.md §6 "Tamper evidence", §3 `csat verify`): every way of
changing history by hand is found by `csat verify` at the right position and refused by catch-up and
rebuild, while what is already published keeps answering."""
from __future__ import annotations

import json

import pytest

from conftest import EXAMPLES, write_jsonl, connect

from csat.engine.log import chain
from csat.engine.events import ResponseRecorded
from csat.engine.log.store import Recorded, _STATE_ENCODER

AIRLINE = EXAMPLES / "airline-1000.jsonl"


@pytest.fixture(params=["one pass", "two halves"])
def store(request, cli, monkeypatch):
    """The airline example ingested, and the scores it published; verified in one pass, or (as long
    logs are) in two halves by two processes — every break must be found either way."""
    if request.param == "two halves":
        monkeypatch.setattr(chain, "PARALLEL_FROM", 1)
    cli("ingest", str(AIRLINE))
    return cli, cli.json("scores")


def sql(cli, statement: str, *args) -> list[tuple]:
    with connect(cli.db) as conn:
        return conn.execute(statement, args).fetchall()


def verify(cli, expect: int, *args: str) -> dict:
    r = cli("verify", "--format", "json", *args, expect=expect)
    return json.loads(r.stdout)


def assert_found(cli, published, position: int, words: str) -> None:
    """verify names the position; a rebuild refuses naming it; the published scores stay."""
    result = verify(cli, 1)
    assert (result["intact"], result["broken_at"]) == (False, position) and words in result["problem"], result
    r = cli("verify", expect=1)
    assert r.stderr == f"csat: the log does not chain at position {position}: {result['problem']}\n"
    r = cli("rebuild", expect=1)
    assert r.stderr.startswith(f"csat: the log does not chain at position {position}: ")
    assert "csat verify" in r.stderr and r.stderr.count("\n") == 1
    assert cli.json("scores") == published


def test_an_intact_log_verifies_and_its_head_is_printed_where_people_look(store):
    cli, _ = store
    result = verify(cli, 0)
    (n,) = sql(cli, "SELECT COUNT(*) FROM stored_events")[0]
    assert result["intact"] and result["events"] == result["head_position"] == n
    assert result["head_hash"].startswith("sha256:") and len(result["head_hash"]) == 71
    footer = cli("scores").stdout.splitlines()[-1]
    assert footer == f"log position {n} · head {result['head_hash']}"
    x = cli.json("explain", "-r", "airline-1000", "-s", "finance", "-p", "2026-03")
    assert (x["log_position"], x["log_head"]) == (n, result["head_hash"])
    assert cli("explain", "-r", "airline-1000", "-s", "finance", "-p", "2026-03").stdout.splitlines()[-1] == footer
    assert cli("verify").stdout == f"{n} events · head position {n} · head {result['head_hash']}\n"


def test_an_edited_answer_is_found(store):
    cli, published = store
    (position, state), = sql(cli, "SELECT rowid, state FROM stored_events WHERE originator_id = 'response:air-2026-03-3'")
    sql(cli, "UPDATE stored_events SET state = ? WHERE rowid = ?", state.replace(b'"C"', b'"A"'), position)
    assert_found(cli, published, position, "differs from what was appended")


def test_a_deleted_event_is_found(store):
    cli, published = store
    sql(cli, "DELETE FROM stored_events WHERE rowid = 4")
    assert_found(cli, published, 4, "position 4 is missing")
    # re-ingesting the original file adds the event again at the end; the gap still shows
    cli("ingest", str(AIRLINE))
    assert verify(cli, 1)["broken_at"] == 4


def test_the_last_event_deleted_is_found(store):
    cli, published = store
    (last,), = sql(cli, "SELECT MAX(rowid) FROM stored_events")
    sql(cli, "DELETE FROM stored_events WHERE rowid = ?", last)
    assert_found(cli, published, last, "its chain hash is still stored")  # a rebuild refuses too


def test_a_forged_row_is_found_and_never_scored(store, tmp_path):
    cli, published = store
    forged = ResponseRecorded(id="forged", ruleset="airline-1000", period="2026-03", subject="finance",
                              answers={"professionalism": "Z"})  # one ingest refuses: grade Z, no rater
    sql(cli, "INSERT INTO stored_events VALUES ('response:forged', 1, 'response', ?)",
        _STATE_ENCODER.encode(Recorded("2026-03-31T00:00:00Z", forged)))
    (position,), = sql(cli, "SELECT rowid FROM stored_events WHERE originator_id = 'response:forged'")
    r = cli("scores", "--format", "json")  # what is published keeps answering, with a warning
    assert json.loads(r.stdout) == json.loads(json.dumps(published, default=str)) or r.stdout
    assert r.stderr.startswith(f"csat: warning: the log does not chain at position {position}: the row has no chain "
                               "hash") and r.stderr.count("\n") == 1
    assert cli.json("scores") == published
    x = cli.json("explain", "-r", "airline-1000", "-s", "finance", "-p", "2026-03")
    assert "forged" not in {e["id"] for e in x["events"]}
    assert_found(cli, published, position, "no chain hash")
    assert "csat verify" in cli("ingest", write_jsonl(tmp_path / "u.jsonl", [{"type": "unit", "id": "u"}]),
                                expect=1).stderr


def test_a_row_reinserted_below_the_tracked_position_is_found(store):
    cli, published = store
    (state,), = sql(cli, "SELECT state FROM stored_events WHERE rowid = 3")
    sql(cli, "DELETE FROM stored_events WHERE rowid = 3")
    sql(cli, "INSERT INTO stored_events (rowid, originator_id, originator_version, topic, state) "
             "VALUES (3, 'response:again', 1, 'response', ?)", state)
    assert_found(cli, published, 3, "differs from what was appended")


def test_reordered_rows_are_found(store):
    cli, published = store
    (a,), (b,) = sql(cli, "SELECT state FROM stored_events WHERE rowid IN (2, 3) ORDER BY rowid")
    sql(cli, "UPDATE stored_events SET state = ? WHERE rowid = 2", b)
    sql(cli, "UPDATE stored_events SET state = ? WHERE rowid = 3", a)
    assert_found(cli, published, 2, "differs from what was appended")


def test_an_undecodable_row_never_bricks_the_store(store, tmp_path):
    cli, published = store
    with connect(cli.db) as conn:  # garbage appended by someone who also recomputed the chain
        (last,), = conn.execute("SELECT MAX(rowid) FROM stored_events").fetchall()
        conn.execute("INSERT INTO stored_events VALUES ('junk', 1, 'response', ?)", (b"\xde\xad\xbe\xef",))
        chain.seal(conn, last)
    position = last + 1
    listed = cli.json("log", "--tail", "1")
    assert listed[0]["position"] == position and listed[0]["type"] == "damaged"
    assert "cannot be decoded" in cli("log", "--tail", "1").stdout
    r = cli("scores", "--format", "json")
    assert f"position {position}" in r.stderr and "csat verify" in r.stderr
    assert cli.json("scores") == published
    assert cli.json("complaints") == [] and cli.json("units", "--as-of", "2026-03") is not None
    assert_found(cli, published, position, "cannot be decoded")


def test_a_published_head_proves_history_up_to_it(store, tmp_path):
    cli, published = store
    head = verify(cli, 0)
    published_head = f"{head['head_position']}:{head['head_hash']}"
    more = write_jsonl(tmp_path / "more.jsonl", [{"type": "unit", "id": "finance", "name": "财务部"}])
    cli("ingest", more)
    assert verify(cli, 0, "--head", published_head)["head_matches"] is True
    # someone edits history *and* rewrites the whole chain after it: only the published head shows it
    with connect(cli.db) as conn:
        (state,), = conn.execute("SELECT state FROM stored_events WHERE rowid = 5").fetchall()
        conn.execute("UPDATE stored_events SET state = ? WHERE rowid = 5", (state.replace(b'"B"', b'"A"'),))
        conn.execute("DELETE FROM event_hashes WHERE position >= 5")
        chain.seal(conn, 4)
    assert verify(cli, 0)["intact"]
    result = verify(cli, 1, "--head", published_head)
    assert result["head_matches"] is False
    r = cli("verify", "--head", published_head, expect=1)
    assert "NOT on this chain" in r.stdout and "history up to it was changed" in r.stderr
    assert cli("verify", "--head", "12:md5:abc", expect=2).stderr.count("POSITION:sha256") == 1


@pytest.mark.parametrize("schema", [6, 8])
def test_a_store_of_the_previous_version_is_chained_once(store, schema):
    cli, published = store
    (n,), = sql(cli, "SELECT COUNT(*) FROM stored_events")
    with connect(cli.db) as conn:  # what an earlier release left: no chain, read models v6 or v8
        conn.execute("DROP TABLE event_hashes")
        conn.execute("DROP TABLE rm_explained")
        if schema == 6:
            conn.execute("DROP TABLE rm_rulesets")
            conn.execute("ALTER TABLE rm_adoptions DROP COLUMN version")
        conn.execute("UPDATE rm_meta SET value = ? WHERE key = 'schema'", (str(schema),))
    r = cli("scores", "--format", "json")
    assert r.stderr == (f"csat: note: chained the {n} events of this log written by an earlier csat (once; "
                        "csat verify checks the chain from now on)\n")
    assert cli.json("scores") == published
    assert verify(cli, 0)["events"] == n
    assert "note" not in cli("scores").stderr
    row = published[0]
    args = ("explain", "-r", row["ruleset"], "-s", row["subject"], "-p", row["period"], "-m", row["metric"],
            "--format", "json")
    assert cli(*args).stdout == cli(*args).stdout  # explained afresh, then from the stored explanation
    assert sql(cli, "SELECT COUNT(*) FROM rm_explained") == [(1,)]


def test_the_chain_is_the_documented_function(store):
    cli, _ = store
    rows = sql(cli, "SELECT s.rowid, s.originator_id, s.topic, s.state, h.hash FROM stored_events s "
                    "JOIN event_hashes h ON h.position = s.rowid ORDER BY s.rowid")
    import hashlib
    import struct
    previous = hashlib.sha256(b"csat event log, hash chain v1").digest()
    for position, key, topic, state, stored in rows:
        head = f"{key}\x1f{topic}".encode()
        previous = hashlib.sha256(previous + struct.pack(">Q", position) + struct.pack(">I", len(head)) + head
                                  + struct.pack(">I", len(state)) + state).digest()
        assert stored == previous
    assert verify(cli, 0)["head_hash"] == "sha256:" + previous.hex()


def test_an_append_chains_what_it_writes_batch_by_batch(cli, monkeypatch, tmp_path):
    """The append hashes each batch as it writes it. A batch boundary, and an implicit adoption
    rewritten after its batch was written and chained (a later line lowers its `from`), chain
    exactly as a log hashed from its stored rows."""
    from csat.engine.app.ingest import Ingest
    monkeypatch.setattr(Ingest, "CHUNK", 2)
    lines = [{"type": "response", "id": f"r{i}", "ruleset": "plant-50", "period": month, "subject": "d1",
              "rater": "ws", "answers": {"attitude": "满意", "speed": "满意", "solution": "满意"}}
             for i, month in enumerate(("2026-03", "2026-03", "2026-04", "2026-02", "2026-01", "2026-03"))]
    path = tmp_path / "late-lowered.jsonl"
    path.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines), encoding="utf-8")
    assert "7 appended" in cli("ingest", str(path)).stdout  # six responses and one adoption
    (stored_from,) = [json.loads(s)[1]["from"] for (s,) in sql(cli, "SELECT state FROM stored_events WHERE "
                                                                    "originator_id = 'adoption:plant-50:default'")]
    assert stored_from == "2026-01"
    cli("ingest", str(AIRLINE))  # a second transaction, after the first's head
    test_the_chain_is_the_documented_function((cli, None))
