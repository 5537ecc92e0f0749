"""The replay path (rebuild, what-if, as-of) and the incremental path leave the same read models,
row for row, on every built-in rule set and on randomized mixed data (issue: a replay must not
move any method number)."""
from __future__ import annotations

import random
import re

import pytest

import synth
from conftest import Cli, write_jsonl, connect

from csat.engine import Engine

TABLES = ("scores", "rm_responses", "rm_credits", "rm_adoptions", "rm_units", "rm_cases", "rm_closures",
          "rm_rectifications", "rm_rectification_updates", "rm_rulesets", "rm_dirty")


SEALED = re.compile(r"sealed:1:[0-9a-f]+:[A-Za-z0-9_-]*")


def _unsealed(value):
    """A sealed personal value as the same mark in every store (two stores seal under their own keys)."""
    if isinstance(value, str):
        return SEALED.sub("sealed", value)
    if isinstance(value, (bytes, memoryview)):
        return SEALED.sub("sealed", bytes(value).decode("utf-8", "replace"))
    return value


def tables(db) -> dict[str, list[tuple]]:
    with connect(db) as conn:
        return {t: sorted((tuple(_unsealed(v) for v in row) for row in conn.execute(f"SELECT * FROM {t}").fetchall()),
                          key=repr) for t in TABLES}


@pytest.mark.parametrize("seed", [7, 11, 2026])
def test_rebuild_equals_incremental_on_randomized_mixed_data(db, seed):
    events = list(synth.mixed(2500, seed=seed))
    rnd = random.Random(seed)
    with Engine.open(db) as e:
        at = 0
        while at < len(events):  # incremental: uneven batches, each caught up before the next
            step = rnd.randint(1, 400)
            e.append(events[at:at + step])
            e.catch_up()
            at += step
        incremental = tables(db)
        assert incremental["scores"] and incremental["rm_credits"]
        e.rebuild()
        assert tables(db) == incremental


def test_a_snapshot_at_the_end_equals_the_published_read_models(tmp_path):
    events = list(synth.mixed(2000, seed=3))
    db = tmp_path / "s.db"
    with Engine.open(db) as e:
        e.ingest([write_jsonl(tmp_path / "m.jsonl", events)])
        e.catch_up()
        published = e.scores()
        assert e.scores(as_of=e.store.max_position()) == published


def test_a_large_first_ingest_takes_the_replay_path_with_the_same_result(fresh_db, tmp_path, monkeypatch):
    from csat.engine.app import ingest
    from csat.engine.read.projection import Projection
    monkeypatch.setattr(ingest, "now", lambda: "2026-03-01T08:00:00.000000Z")  # two stores, one recording time
    events = list(synth.mixed(2000, seed=5))
    path = write_jsonl(tmp_path / "m.jsonl", events)
    inc, rep = fresh_db("inc"), fresh_db("rep")
    with Engine.open(inc) as e:  # incremental: one page at a time
        e.ingest([path])
        e.catch_up()
    monkeypatch.setattr(Projection, "REPLAY_BACKLOG", 100)
    replays = []
    original = Projection.replay
    monkeypatch.setattr(Projection, "replay",
                        lambda self, *a, **k: replays.append(k.get("jobs", 1)) or original(self, *a, **k))
    Cli(rep)("ingest", str(path), "--jobs", "2")  # replayed whole, its months scored by two processes
    assert replays == [2]
    with Engine.open(rep) as e:
        assert e.projection.tracked() == e.store.max_position()
        e.append([{"type": "unit", "id": "late"}])
        e.catch_up()  # a small backlog on top: incremental
        assert replays == [2]
    with Engine.open(inc) as e:
        e.append([{"type": "unit", "id": "late"}])
        e.catch_up()
    assert tables(rep) == tables(inc)


def test_both_backends_publish_the_same_figures_on_randomized_mixed_data(pg_url, tmp_path):
    events = list(synth.mixed(3000, seed=31))
    rnd = random.Random(31)
    published = []
    for db in (str(tmp_path / "m.db"), pg_url):
        with Engine.open(db) as e:
            at = 0
            while at < len(events):
                step = rnd.randint(1, 600)
                e.append(events[at:at + step])
                e.catch_up()
                at += step
            published.append((e.scores(), e.complaints(), e.rectifications()))
    assert published[0][0] and published[0] == published[1]


def test_a_rebuild_in_several_processes_writes_the_same_rows_in_the_same_order(db, monkeypatch):
    """``rebuild(jobs=2)``: rule-set months scored by forked processes, written back in the one
    order — every read model the same, row for row and (SQLite) in the same order, as one process
    writes it (the org chart's change mark, a random token, aside)."""
    from csat.engine.read import months
    pooled: list[str] = []
    scored = months.MonthPool.scored

    def counting(self, tasks):
        for result in scored(self, tasks):
            pooled.append(f"{result.ruleset} {result.month}")
            yield result

    monkeypatch.setattr(months.MonthPool, "scored", counting)
    events = list(synth.mixed(6000, seed=5))  # two months and more of three rule sets

    def dump() -> dict[str, list[tuple]]:
        if db.startswith("postgresql"):
            return tables(db)
        with connect(db) as conn:
            return {t: [tuple(_unsealed(v) for v in row) for row in conn.execute(f"SELECT * FROM {t} ORDER BY rowid")]
                    for t in TABLES}

    with Engine.open(db) as e:
        e.append(events)
        e.rebuild(jobs=1)
        one = dump()
        assert not pooled
        e.rebuild(jobs=2)
        two = dump()
    assert {p.split()[0] for p in pooled} == {"airline-1000", "dealership-cs", "plant-50"}  # (one month: here)
    assert one == two and len(one["scores"]) > 500
