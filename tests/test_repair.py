"""A store that a csat fault damaged has a way back (events.md §6 "Tamper evidence", issue 37):
`csat verify` lists every row from the break on with why and whether it is repairable; `csat
repair` chains again the rows csat wrote without a chain hash and records that as one event; a
row changed by hand keeps the refusal, and nothing is written."""
from __future__ import annotations

import json

import msgspec
import pytest

from conftest import EXAMPLES, connect, write_jsonl

from csat.engine.events import ResponseRecorded
from csat.engine.log.store import Recorded, _STATE_ENCODER

PLANT = EXAMPLES / "plant-50.jsonl"


def sql(cli, statement: str, *args) -> list[tuple]:
    with connect(cli.db) as conn:
        return conn.execute(statement, args).fetchall()


def verify(cli, expect: int) -> dict:
    return json.loads(cli("verify", "--format", "json", expect=expect).stdout)


def hashes(cli) -> list[tuple]:
    return [tuple(r) for r in sql(cli, "SELECT position, hash FROM event_hashes ORDER BY position")]


def log_length(cli) -> int:
    return sql(cli, "SELECT COUNT(*) FROM stored_events")[0][0]


@pytest.fixture
def plant(cli):
    """The plant example ingested; its published scores and its chain hashes as the append wrote them."""
    cli("ingest", str(PLANT))
    return cli, cli.json("scores"), hashes(cli)


def unchain(cli, *positions: int) -> None:
    """What the fault left (one connection used by two threads): rows csat wrote, with no chain hash."""
    sql(cli, f"DELETE FROM event_hashes WHERE position IN ({', '.join('?' * len(positions))})", *positions)


def test_rows_csat_wrote_without_a_hash_are_listed_and_chained_again(plant):
    cli, published, chained = plant
    n = log_length(cli)
    unchain(cli, 12, 13, 14)
    result = verify(cli, 1)
    assert (result["broken_at"], result["affected_count"], result["repairable"]) == (12, 3, True)
    assert [(r["position"], r["repairable"]) for r in result["affected"]] == [(12, True), (13, True), (14, True)]
    assert all("csat wrote it" in r["problem"] for r in result["affected"])
    r = cli("verify", expect=1)
    assert [line.split(":")[:2] for line in r.stdout.splitlines()[1:4]] == [
        ["position 12", " repairable"], ["position 13", " repairable"], ["position 14", " repairable"]]
    assert "csat repair chains these 3 rows again" in r.stdout
    assert r.stderr.startswith("csat: the log does not chain at position 12: the row has no chain hash")
    assert cli("rebuild", expect=1).stderr.startswith("csat: the log does not chain at position 12: ")

    r = cli("repair", "--yes")
    assert r.stdout.splitlines() == [
        "chained again positions 12-14 (3 rows)",
        f"recorded as event repair-{n + 1} (chain_repaired) at position {n + 1} · head {verify(cli, 0)['head_hash']}"]
    assert hashes(cli)[:n] == chained  # the very hashes the append wrote
    (logged,) = cli.json("log", "--type", "chain_repaired")
    assert logged["position"] == n + 1 and logged["event"]["ranges"] == [[12, 14]]
    assert (logged["event"]["from_position"], logged["event"]["to_position"], logged["event"]["rows"]) == (12, 14, 3)
    assert verify(cli, 0)["events"] == n + 1
    cli("rebuild")
    assert cli.json("scores") == published
    assert cli("repair", "--yes").stdout.startswith("the chain holds: nothing to repair")
    assert log_length(cli) == n + 1


def test_unchained_rows_at_the_end_are_repaired_and_the_log_takes_appends_again(plant, tmp_path):
    cli, published, _ = plant
    n = log_length(cli)
    unchain(cli, n - 1, n)
    more = write_jsonl(tmp_path / "more.jsonl", [{"type": "unit", "id": "new-team", "name": "新班组"}])
    assert "csat verify" in cli("ingest", more, expect=1).stderr
    assert "chained again positions" in cli("repair", "--yes").stdout
    cli("ingest", more)
    assert verify(cli, 0)["events"] == n + 2
    assert cli.json("scores") == published


def test_a_row_edited_by_hand_keeps_the_refusal_and_nothing_is_written(plant):
    cli, _, _ = plant
    unchain(cli, 5, 6)  # repairable on their own: an edit after them refuses the whole repair
    (state,), = sql(cli, "SELECT state FROM stored_events WHERE rowid = 20")
    sql(cli, "UPDATE stored_events SET state = ? WHERE rowid = 20", state.replace(b'"20', b'"19', 1))
    result = verify(cli, 1)
    assert [(r["position"], r["repairable"]) for r in result["affected"]] == [(5, True), (6, True), (20, False)]
    assert result["repairable"] is False and "differs from what was appended" in result["affected"][2]["problem"]
    assert "position 20: NOT repairable: the row differs" in cli("verify", expect=1).stdout
    before, n = hashes(cli), log_length(cli)
    r = cli("repair", "--yes", expect=1)
    assert r.stderr.startswith("csat: cannot repair the chain at position 20: the row differs from what was "
                               "appended") and r.stderr.count("\n") == 1 and "nothing written" in r.stderr
    assert r.stdout == ""
    assert (hashes(cli), log_length(cli)) == (before, n)
    assert verify(cli, 1)["broken_at"] == 5


def test_a_row_edited_and_unchained_by_hand_is_caught_by_the_hash_after_it(plant):
    cli, _, _ = plant
    (state,), = sql(cli, "SELECT state FROM stored_events WHERE rowid = 12")
    recorded = msgspec.json.decode(state, type=Recorded)  # rewritten exactly as csat writes, its hash deleted
    sql(cli, "UPDATE stored_events SET state = ? WHERE rowid = 12",
        _STATE_ENCODER.encode(msgspec.structs.replace(recorded, at="2020-01-01T00:00:00Z")))
    unchain(cli, 12)
    result = verify(cli, 1)
    assert [(r["position"], r["repairable"]) for r in result["affected"]] == [(12, True), (13, False)]
    assert "does not follow from the row before it, which has none" in result["affected"][1]["problem"]
    before = hashes(cli)
    assert "cannot repair the chain at position 13: " in cli("repair", "--yes", expect=1).stderr
    assert hashes(cli) == before


def forged(id_: str) -> bytes:
    return _STATE_ENCODER.encode(Recorded("2026-03-31T00:00:00Z", ResponseRecorded(
        id=id_, ruleset="plant-50", period="2026-03", subject="finance", answers={"x": "A"})))


@pytest.mark.parametrize("key, topic, state, why", [
    ("response:other", "response", forged("forged"), "its key 'response:other' is not its event's "
                                                     "('response:forged')"),
    ("response:forged", "complaint", forged("forged"), "its type 'complaint' is not its event's ('response')"),
    ("response:forged", "response", json.dumps(json.loads(forged("forged"))).encode(),
     "its bytes are not those csat writes"),
    ("response:forged", "response", b"\xde\xad\xbe\xef", "the row cannot be decoded"),
], ids=["key", "type", "bytes", "undecodable"])
def test_a_row_inserted_by_hand_without_a_hash_is_not_repairable(plant, key, topic, state, why):
    cli, _, _ = plant
    sql(cli, "INSERT INTO stored_events VALUES (?, 1, ?, ?)", key, topic, state)
    position = log_length(cli)
    (row,) = verify(cli, 1)["affected"]
    assert row["position"] == position and not row["repairable"], row
    assert row["problem"].startswith("the row has no chain hash, and ") and why in row["problem"], row
    before = hashes(cli)
    r = cli("repair", "--yes", expect=1)
    assert r.stderr.startswith(f"csat: cannot repair the chain at position {position}: ") and why in r.stderr
    assert (hashes(cli), log_length(cli)) == (before, position)


def test_a_deleted_row_is_not_repairable(plant):
    cli, _, _ = plant
    sql(cli, "DELETE FROM stored_events WHERE rowid = 7")
    result = verify(cli, 1)
    assert result["affected"] == [{"position": 7, "problem": "position 7 is missing (deleted)", "repairable": False}]
    assert "cannot repair the chain at position 7: position 7 is missing" in cli("repair", "--yes", expect=1).stderr


def test_a_dry_run_or_a_refused_confirmation_writes_nothing(plant):
    cli, _, _ = plant
    unchain(cli, 12, 14)
    before, n = hashes(cli), log_length(cli)
    r = cli("repair", "--dry-run")
    assert r.stdout == "would chain again position 12 (1 row)\nwould chain again position 14 (1 row)\n"
    r = cli("repair", expect=1)  # asked, and no one answered yes
    assert "Chain again 2 rows" in r.stderr and r.stderr.endswith("csat: aborted\n")
    assert (hashes(cli), log_length(cli)) == (before, n)
    assert verify(cli, 1)["broken_at"] == 12
    r = cli.runner.invoke(cli.group, ["--db", cli.db, "repair"], input="y\n")
    assert r.exit_code == 0 and "chained again position 12 (1 row)" in r.stdout, r.output
    assert verify(cli, 0)["events"] == n + 1


def test_many_affected_rows_are_counted_and_the_first_hundred_listed(cli, tmp_path):
    units = write_jsonl(tmp_path / "units.jsonl", [{"type": "unit", "id": f"u{i}"} for i in range(150)])
    cli("ingest", units)
    sql(cli, "DELETE FROM event_hashes WHERE position >= 20")
    result = verify(cli, 1)
    assert (len(result["affected"]), result["affected_count"], result["repairable"]) == (100, 131, True)
    assert "… and 31 more" in cli("verify", expect=1).stdout
    assert cli("repair", "--yes").stdout.startswith("chained again positions 20-150 (131 rows)\n")
    assert verify(cli, 0)["events"] == 151


def test_the_repair_event_cannot_be_ingested(plant, tmp_path):
    cli, _, _ = plant
    n = log_length(cli)
    line = {"type": "chain_repaired", "id": "repair-x", "from_position": 1, "to_position": 2, "rows": 2,
            "reason": "forged"}
    r = cli("ingest", write_jsonl(tmp_path / "r.jsonl", [line]), expect=1)
    assert "field `type`: 'chain_repaired' events are recorded by `csat repair` only, never ingested" in r.stderr
    assert log_length(cli) == n
