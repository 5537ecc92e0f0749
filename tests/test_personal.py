"""Personal data (issue 23): sealed at rest under per-person keys kept apart from the log, opened
for whoever holds the key store, pseudonyms without it, erased on request by destroying the key —
every figure, every chain hash and `verify` unchanged — and anonymous rounds. On both backends;
"no byte remains" is checked in the files on SQLite and in every table on PostgreSQL."""
from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

from conftest import Cli, connect, write_jsonl

from csat.engine import Engine, IngestFailed

PEOPLE = ["张三丰", "李四海", "王五湖", "赵六合", "孙七星", "周八方"]
SECRET = {p: f"{p}说：王经理第{i}次不接电话" for i, p in enumerate(PEOPLE)}  # free text that names people


def events() -> list[dict]:
    out: list[dict] = [{"type": "unit", "id": "emp-7", "kind": "person", "name": "钱九思"},
                       {"type": "round", "id": "air-2026-03", "ruleset": "airline-1000", "period": "2026-03",
                        "due": "2026-03-25", "assignments": [{"rater": "cabin", "subjects": ["finance", "hr"],
                                                              "respondents": PEOPLE[:2]}]}]
    for i, person in enumerate(PEOPLE):
        for subject in ("finance", "hr"):
            grade = "ABCDE"[(i + len(subject)) % 5]
            out.append({"type": "response", "id": f"q-{i}-{subject}", "ruleset": "airline-1000", "period": "2026-03",
                        "subject": subject, "rater": ["cabin", "ground", "cargo"][i % 3], "respondent": person,
                        "answers": {"quality": grade, "efficiency": "B"},
                        **({"reasons": {"quality": SECRET[person]}} if grade in "DE" else {}),
                        "comment": SECRET[person] if subject == "hr" else None})
    out.append({"type": "correction", "id": "fix-0", "response": "q-0-hr", "reason": "typed in the wrong row",
                "answers": {"quality": "D", "efficiency": "B"}, "reasons": {"quality": SECRET[PEOPLE[0]] + "（更正）"}})
    out.append({"type": "complaint", "id": "c-1", "subject": "finance", "period": "2026-03",
                "text": "客户投诉：钱九思 态度差"})
    return [{k: v for k, v in e.items() if v is not None} for e in out]


def stored_bytes(db: str) -> bytes:
    """Everything the store and its key store hold: the files on SQLite; every row of every table
    of the database on PostgreSQL (its server's WAL is the server's: see the README)."""
    if not db.startswith("postgresql://"):
        return b"".join(Path(p).read_bytes() for p in (db, db + "-wal", str(Path(db).with_suffix(".keys")),
                                                       str(Path(db).with_suffix(".keys")) + "-journal")
                        if os.path.exists(p))
    with connect(db) as conn:
        tables = [t for (t,) in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")]
        assert "csat_keys" in tables and "stored_events" in tables
        return b"\x00".join(bytes(v) if isinstance(v, (bytes, memoryview)) else str(v).encode("utf-8")
                             for t in tables for row in conn.execute(f'SELECT * FROM "{t}"').fetchall() for v in row)


def plain_in(blob: bytes, *texts: str) -> list[str]:
    """The texts found in ``blob`` as UTF-8, or as the \\u escapes JSON may write them in."""
    return [t for t in texts if t.encode("utf-8") in blob or t.encode("unicode_escape") in blob]


@pytest.fixture
def store(db, tmp_path):
    cli = Cli(db)
    cli("ingest", write_jsonl(tmp_path / "march.jsonl", events()))
    return cli, tmp_path


def test_personal_fields_are_sealed_at_rest_and_read_back_with_the_key_store(store):
    cli, _ = store
    assert plain_in(stored_bytes(cli.db), *PEOPLE, *SECRET.values(), "钱九思") == []
    (q,) = cli.json("log", "--id", "q-0-hr")
    assert q["event"]["respondent"] == PEOPLE[0] and q["event"]["comment"] == SECRET[PEOPLE[0]]
    assert [c["text"] for c in cli.json("complaints")] == ["客户投诉：钱九思 态度差"]
    assert {u["id"]: u["name"] for u in cli.json("units", "--as-of", "2026-03")}["emp-7"] == "钱九思"
    status = cli.json("round", "status", "air-2026-03")
    assert status["assignments"][0]["respondents"] == PEOPLE[:2]
    x = cli.json("explain", "-r", "airline-1000", "-s", "hr", "-p", "2026-03")
    assert any("typed in the wrong row" in (e.get("why") or "") or e["id"] == "fix-0" for e in x["events"])
    again = cli("ingest", write_jsonl(store[1] / "again.jsonl", events()))
    assert again.stdout.startswith("0 appended") and "already present" in again.stdout  # idempotent, sealed
    changed = [e for e in events() if e["id"] == "q-0-hr"]
    changed[0]["comment"] = "另一段话"
    err = cli("ingest", write_jsonl(store[1] / "changed.jsonl", changed), expect=1).stderr
    assert "conflict: response 'q-0-hr' is already in the log with a different body" in err


def test_without_its_key_store_a_store_shows_pseudonyms_and_the_same_figures(store):
    cli, tmp_path = store
    copy = tmp_path / "copy.db"
    cli("copy", cli.db, str(copy))
    keys = copy.with_suffix(".keys")
    assert keys.exists()  # a copy takes the keys along
    keys.unlink()
    other = Cli(str(copy))
    assert other.json("scores") == cli.json("scores")
    (q,) = other.json("log", "--id", "q-0-hr")
    who = q["event"]["respondent"]
    assert who.startswith("p-") and q["event"]["comment"] == "[sealed]"
    assert {r["event"]["respondent"] for r in other.json("log", "--type", "response")
            if r["id"].startswith("q-0-")} == {who}  # one person, one stable pseudonym
    assert plain_in(copy.read_bytes(), *PEOPLE, *SECRET.values()) == []


def test_an_erased_person_is_unreadable_everywhere_and_nothing_else_moves(store):
    cli, tmp_path = store
    head = json.loads(cli("verify", "--format", "json").stdout)
    published = f"{head['head_position']}:{head['head_hash']}"
    scores = cli.json("scores")
    with Engine.open(cli.db) as e:
        key_id = e.store.keys.owner_key(f"person:{PEOPLE[0]}")
        key = e.store.keys.by_ids([key_id])[key_id]
    out = cli("erase", "--respondent", PEOPLE[0], "--yes").stdout
    # their name in two responses and in the round; the comment and the correction's reasons are
    # the cabin's (a rater unit's statement: sealed under its key, kept — issue 31.16)
    assert out == f"erased p-{key_id}: 3 sealed fields made unreadable\n"
    assert cli.json("scores") == scores
    assert json.loads(cli("verify", "--head", published, "--format", "json").stdout)["head_matches"] is True
    (q,) = cli.json("log", "--id", "q-0-hr")
    (fix,) = cli.json("log", "--id", "fix-0")
    assert (q["event"]["respondent"], q["event"]["comment"], fix["event"]["reasons"]["quality"]) == (
        "[erased]", SECRET[PEOPLE[0]], SECRET[PEOPLE[0]] + "（更正）")
    assert fix["event"]["reason"] == "typed in the wrong row"  # the office's note is not personal
    (erasure,) = cli.json("log", "--type", "erasure")
    assert erasure["event"] == {"type": "erasure", "id": f"erasure-{key_id}", "key": key_id, "fields": 3}
    assert cli.json("round", "status", "air-2026-03")["assignments"][0]["respondents"] == ["[erased]", PEOPLE[1]]
    x = cli("explain", "-r", "airline-1000", "-s", "hr", "-p", "2026-03").stdout
    assert f"respondent {PEOPLE[0]}" not in x
    report = tmp_path / "r.html"
    cli("report", "-p", "2026-03", "-o", str(report))
    html = report.read_text("utf-8")
    # the cabin's comment stays: the unit's statement, not the erased person's
    assert "王经理第0次" in html and "王经理第3次不接电话" in html
    copy = tmp_path / "after.db"
    cli("copy", cli.db, str(copy))
    (q,) = Cli(str(copy)).json("log", "--id", "q-0-hr")
    assert q["event"]["respondent"] == "[erased]"
    for blob in (stored_bytes(cli.db), stored_bytes(str(copy))):
        assert plain_in(blob, PEOPLE[0], SECRET[PEOPLE[0]]) == [] and key not in blob  # (the cabin's, sealed)
    assert "no personal data of" in cli("erase", "--respondent", PEOPLE[0], "--yes", expect=1).stderr
    assert cli("ingest", write_jsonl(tmp_path / "resend.jsonl", events())).stdout.startswith("0 appended")
    (q,) = cli.json("log", "--id", "q-0-hr")
    assert q["event"]["respondent"] == "[erased]"  # re-sent, an erased person's data is not taken in again


def test_erasing_any_people_moves_no_figure_and_no_earlier_hash(db, tmp_path):
    cli = Cli(db)
    cli("ingest", write_jsonl(tmp_path / "march.jsonl", events()))
    rnd = random.Random(2026)
    scores = cli.json("scores")
    for _ in range(3):
        head = json.loads(cli("verify", "--format", "json").stdout)
        published = f"{head['head_position']}:{head['head_hash']}"
        with connect(db) as conn:
            hashes = conn.execute("SELECT position, hash FROM event_hashes ORDER BY position").fetchall()
        for person in rnd.sample(PEOPLE, rnd.randint(0, 2)):
            cli("erase", "--respondent", person, "--yes", expect=None)
        assert cli.json("scores") == scores
        assert json.loads(cli("verify", "--head", published, "--format", "json").stdout)["head_matches"] is True
        with connect(db) as conn:
            assert conn.execute("SELECT position, hash FROM event_hashes WHERE position <= ? ORDER BY position",
                                (hashes[-1][0],)).fetchall() == hashes
    cli("rebuild")
    assert cli.json("scores") == scores


def test_an_anonymous_round_keeps_no_link_to_who_answered(db, tmp_path, monkeypatch):
    from csat.engine.app import ingest
    clock = {"now": "2026-04-10T08:00:00.000000Z"}
    monkeypatch.setattr(ingest, "now", lambda: clock["now"])
    cli = Cli(db)
    cli("ingest", write_jsonl(tmp_path / "round.jsonl", [{
        "type": "round", "id": "anon", "ruleset": "airline-1000", "period": "2026-04", "due": "2026-04-25",
        "anonymous": True, "assignments": [{"rater": "cabin", "subjects": ["finance"]}]}]))
    named = {"type": "response", "id": "n1", "ruleset": "airline-1000", "period": "2026-04", "subject": "finance",
             "rater": "cabin", "respondent": "张三丰", "answers": {"quality": "A"}}
    with Engine.open(db) as e, pytest.raises(IngestFailed) as err:
        e.append([named])
    assert err.value.problems == ["events[0]: field `respondent`: round 'anon' is anonymous: its responses name "
                                  "no respondent (leave the field out)"]
    answers = [{"type": "response", "id": f"a{i:02d}", "ruleset": "airline-1000", "period": "2026-04",
                "subject": "finance", "rater": "cabin", "answers": {"quality": "ABC"[i % 3]}} for i in range(30)]
    clock["now"] = "2026-04-12T09:41:07.123456Z"  # the managers answer through the day; one batch per hour
    for hour, part in enumerate((answers[:10], answers[10:20], answers[20:])):
        clock["now"] = f"2026-04-12T{9 + hour:02d}:41:07.123456Z"
        with Engine.open(db) as e:
            e.append(part)
    logged = cli.json("log", "--type", "response")
    assert {r["recorded"] for r in logged} == {"2026-04-12T00:00:00.000000Z"}  # to the day, no finer
    assert [r["id"] for r in logged] != [a["id"] for a in answers]  # not in the order they came in
    assert all("respondent" not in r["event"] for r in logged)
    assert cli.json("round", "status", "anon")["overall"]["answered"] == 1  # the return still counts
    cli("round", "close", "anon", "--date", "2026-04-26")
    clock["now"] = "2026-04-27T10:00:00.123456Z"
    with Engine.open(db) as e:  # once the round is closed, times are exact again
        e.append([{**named, "id": "n2", "period": "2026-05"}])
    assert cli.json("log", "--id", "n2")[0]["recorded"] == "2026-04-27T10:00:00.123456Z"


def test_an_id_that_names_its_respondent_is_warned_about(db, tmp_path):
    cli = Cli(db)
    path = write_jsonl(tmp_path / "w.jsonl", [{"type": "response", "id": "2026-03-张三丰-finance",
                                              "ruleset": "airline-1000", "period": "2026-03", "subject": "finance",
                                              "rater": "cabin", "respondent": "张三丰", "answers": {"quality": "A"}}])
    err = cli("ingest", path).stderr
    assert f"csat: warning: {path}:1: id '2026-03-张三丰-finance' contains its respondent's name" in err


def test_a_store_written_before_sealing_erases_what_it_can_and_says_what_stays(db, tmp_path, monkeypatch):
    from csat.engine.app.privacy import IngestPrivacy
    cli = Cli(db)
    with monkeypatch.context() as m:  # an earlier csat: fields written in plain form
        m.setattr(IngestPrivacy, "seal", lambda self, ev, target=None, person_unit=False: ev)
        cli("ingest", write_jsonl(tmp_path / "old.jsonl", events()))
    cli("ingest", write_jsonl(tmp_path / "new.jsonl", [{
        "type": "response", "id": "new-1", "ruleset": "airline-1000", "period": "2026-04", "subject": "finance",
        "rater": "cabin", "respondent": PEOPLE[0], "answers": {"quality": "D"}, "reasons": {"quality": "新的原因"}}]))
    r = cli("erase", "--respondent", PEOPLE[0], "--yes")
    assert r.stdout.startswith("erased p-") and "1 sealed fields made unreadable" in r.stdout  # (the reason: cabin's)
    assert r.stderr == ("csat: note: 5 fields of events written before csat sealed personal data still hold theirs "
                        "in plain form (the log is append-only: they stay)\n")
    (old,) = cli.json("log", "--id", "q-0-hr")
    assert old["event"]["respondent"] == PEOPLE[0]  # as written: the log is append-only
