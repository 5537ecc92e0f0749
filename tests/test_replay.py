"""Policy revisions and replay: adopt, whatif, scores --as-of, rebuild while others read."""
from __future__ import annotations


from csat.engine.log import chain
from decimal import Decimal

import pytest

import synth
from conftest import EXAMPLES, write_jsonl, connect

from csat.engine import Engine, InvalidParams

PLANT = EXAMPLES / "plant-50.jsonl"
HARSH = """
[[coefficients]]
max_workshops = 5
value = 0.8
[[coefficients]]
value = 1.2
"""


@pytest.fixture
def harsh(tmp_path):
    p = tmp_path / "harsh.toml"
    p.write_text(HARSH, encoding="utf-8")
    return str(p)


def by_key(rows):
    return {(r["period"], r["subject"], r["metric"]): r for r in rows}


def test_adopt_moves_only_months_from_its_from(cli, harsh):
    cli("ingest", str(PLANT))
    before = by_key(cli.json("scores"))
    assert cli("adopt", harsh, "--ruleset", "plant-50", "--from", "2026-03").stdout.strip() == \
        "1 appended, 0 already present"
    after = by_key(cli.json("scores"))
    changed = {k for k in after if after[k] != before[k]}
    assert all(k[0] >= "2026-03" or k[0] in ("2026", "2026-Q1") for k in changed)
    assert after[("2026-03", "purchasing", "service")]["adoption"] == "harsh-2026-03"
    assert after[("2026-03", "purchasing", "service")]["score"] == Decimal("38.75")  # 40 − 1 / 0.8
    assert after[("2026-02", "finance", "service")]["adoption"] == "default"
    # adopting the same file again is idempotent
    assert cli("adopt", harsh, "--ruleset", "plant-50", "--from", "2026-03").stdout.strip() == \
        "0 appended, 1 already present"


def test_adopt_names_the_file_and_the_key(cli, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[bonus]\nmonths = "three"\n', encoding="utf-8")
    r = cli("adopt", str(bad), "--ruleset", "plant-50", "--from", "2026-01", expect=1)
    assert r.stderr.splitlines() == [f"{bad}: key `bonus.months`: expected `int`, got `str`",
                                     "csat: 1 problem; nothing appended"]
    bad.write_text('precision = "two"\nbogus = 1\n[bonus]\nmonths = "three"\n', encoding="utf-8")
    r = cli("adopt", str(bad), "--ruleset", "plant-50", "--from", "2026-01", expect=1)
    assert r.stderr.splitlines() == [f"{bad}: unknown key `bogus`", f"{bad}: key `bonus.months`: expected `int`, "
                                     "got `str`", f"{bad}: key `precision`: expected an integer 0 to 10, got \"two\"",
                                     "csat: 3 problems; nothing appended"]
    bad.write_text('[[grades]]\nid = "x"\nlabel = "x"\nband = [0, 50]\ndeduction = 0\nwhen = [{ unsatisfied = 1 }]\n')
    r = cli("adopt", str(bad), "--ruleset", "plant-50", "--from", "2026-01", expect=1)
    assert "key `grades`: the last grade must match every month" in r.stderr
    bad.write_text("precision = [")
    r = cli("adopt", str(bad), "--ruleset", "plant-50", "--from", "2026-01", expect=1)
    assert r.stderr.startswith(f"csat: {bad}: not valid TOML")
    cli("adopt", str(bad), "--ruleset", "plant-50", "--from", "2026-13", expect=2)


def test_whatif_equals_adopting_the_file_from_the_first_month(db, harsh):
    with Engine.open(db) as e:
        e.ingest([PLANT])
        published = e.scores()
        rows = e.whatif("plant-50", harsh, all=True)
        assert e.scores() == published  # nothing written
        assert len(list(e.log(type="adoption"))) == 1
        e.adopt(harsh, ruleset="plant-50", from_="2026-01")
        adopted = by_key(e.scores(ruleset="plant-50"))
    assert {(r["period"], r["subject"], r["metric"]): r["after"] for r in rows} == \
        {k: r["score"] for k, r in adopted.items()}
    changed = {(r["period"], r["subject"]) for r in rows if r["delta"]}
    assert ("2026-03", "warehouse") in changed and ("2026-01", "finance") not in changed


def test_whatif_shows_only_differences_unless_all(cli, harsh):
    cli("ingest", str(PLANT))
    out = cli.json("whatif", "--ruleset", "plant-50", "--params", harsh)
    rows, summary = out["rows"], out["summary"]
    assert summary["figures_moved"] == len(rows) == 6 and summary["grades_moved"] == sum(
        r["grade_before"] != r["grade_after"] for r in rows)
    assert abs(summary["largest_delta"]["delta"]) == max(abs(r["delta"]) for r in rows)
    assert {(r["period"], r["subject"]) for r in rows} == {
        (p, s) for p in ("2026", "2026-03", "2026-Q1") for s in ("purchasing", "warehouse")}
    r = next(r for r in rows if r["period"] == "2026-03" and r["subject"] == "warehouse")
    assert (r["before"], r["after"], r["delta"], r["grade_before"], r["grade_after"]) == (
        Decimal("39.23"), Decimal("39.17"), Decimal("-0.06"), "weak", "weak")
    assert len(cli.json("whatif", "--ruleset", "plant-50", "--params", harsh, "--all")["rows"]) == 11
    table = cli("whatif", "--ruleset", "plant-50", "--params", harsh).stdout.splitlines()
    assert table[-1].startswith(f"{summary['figures_moved']} figures and {summary['grades_moved']} grades would move")


def test_scores_as_of_a_position_before_an_adoption_or_a_correction(engine, harsh, tmp_path):
    engine.ingest([PLANT])
    end_of_plant = engine.store.max_position()
    engine.adopt(harsh, ruleset="plant-50", from_="2026-01")
    engine.append([{"type": "withdrawal", "id": "wd", "response": "plant-2026-03-purchasing-workshop-1",
                    "reason": "duplicate"}])
    now = by_key(engine.scores())
    then = by_key(engine.scores(as_of=end_of_plant))
    assert then[("2026-03", "purchasing", "service")]["score"] == Decimal("38.89")
    assert then[("2026-03", "purchasing", "service")]["adoption"] == "default"
    # now good: 45 − round-half-up(0.5 / 0.8 = 0.625, 2) = 45 − 0.63
    assert now[("2026-03", "purchasing", "service")]["score"] == Decimal("44.37")
    middle = by_key(engine.scores(as_of=end_of_plant + 1))
    assert middle[("2026-03", "purchasing", "service")]["score"] == Decimal("38.75")
    assert engine.scores() == list(now.values())  # reading the past changed nothing
    assert engine.scores(as_of=0) == []


def test_scores_as_of_a_recording_time(cli, tmp_path):
    cli("ingest", str(PLANT))
    with connect(cli.db) as conn:  # the first ingest happened "yesterday" (and was chained then)
        for rowid, state in conn.execute("SELECT rowid, state FROM stored_events").fetchall():
            conn.execute("UPDATE stored_events SET state = ? WHERE rowid = ?",
                         (state.replace(state[2:29], b"2026-01-10T08:00:00.000000Z"), rowid))
        conn.execute("DELETE FROM event_hashes")
        chain.seal(conn, 0)
    cli("ingest", write_jsonl(tmp_path / "w.jsonl", [
        {"type": "withdrawal", "id": "wd", "response": "plant-2026-03-purchasing-workshop-1", "reason": "dup"}]))
    old = cli.json("scores", "--as-of", "2026-01-10", "--period", "2026-03", "--subject", "purchasing")
    assert old[0]["score"] == Decimal("38.89")
    assert cli.json("scores", "--as-of", "2026-01-09")[0:1] == []
    new = cli.json("scores", "--period", "2026-03", "--subject", "purchasing")
    assert new[0]["score"] == Decimal("44.44")
    cli("scores", "--as-of", "yesterday", expect=2)  # a usage error, like an impossible date
    for impossible in ("2026-13-45", "2026-02-30", "2026-03-01T25:00"):
        assert "real time" in cli("scores", "--as-of", impossible, expect=2).stderr


def test_a_reader_never_sees_half_a_rebuild(db, tmp_path):
    events = list(synth.airline(6000, departments=6, raters=5, managers=2))
    with Engine.open(db) as e:
        e.ingest([write_jsonl(tmp_path / "a.jsonl", events)])
        e.catch_up()
        published = e.store.conn.execute("SELECT * FROM scores ORDER BY 1, 2, 3, 4").fetchall()
        seen = []

        def reader_looks(_n):
            with connect(db, timeout=1) as other:  # another process's view
                seen.append(other.execute("SELECT * FROM scores ORDER BY 1, 2, 3, 4").fetchall())
        e.projection.REPLAY_PAGE = 1000
        e.rebuild(progress=reader_looks)
        assert len(seen) >= 5 and all(s == published for s in seen)
        assert e.store.conn.execute("SELECT * FROM scores ORDER BY 1, 2, 3, 4").fetchall() == published


def test_params_from_rejects_bad_parameters(engine):
    with pytest.raises(InvalidParams, match="key `items.quality.max`: expected a number"):
        engine.params_from("iso-100", {"items": {"quality": {"max": "lots"}}})
