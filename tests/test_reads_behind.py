"""Reads while another process ingests or catches up (issue 31, item 19), on both backends.

A reader answers from the read models last committed when another process holds the write lock
(events.md §6): it must never deny what the log holds — a round, a unit, a subject's responses
that are logged but not yet applied are "in the log but not yet in the read models", exit 1 in one
line — and it sees a catch-up's work for a transaction of the log all or none: one answer is read
in one snapshot, and a catch-up commits whole ingests.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from conftest import write_jsonl

from csat.engine import Engine
from csat.engine.errors import NotFound, NotYetCurrent

WORKSHOPS = [f"ws-{i}" for i in range(1, 6)]
DEPARTMENTS = [f"dept-{i}" for i in range(10)]
ENV = {**os.environ, "CSAT_NO_ENTRY_POINTS": "1", "PYTHONWARNINGS": "ignore"}


def units() -> list[dict]:
    return ([{"type": "unit", "id": u, "kind": "workshop", "name": f"车间{u[-1]}"} for u in WORKSHOPS]
            + [{"type": "unit", "id": d, "kind": "department", "name": f"部门{d[-1]}"} for d in DEPARTMENTS])


def opened(month: str) -> dict:
    return {"type": "round", "id": f"rr-{month}", "ruleset": "plant-50", "period": month, "due": f"{month}-28",
            "rule": {"raters": "workshop", "subjects": "department"}}


def returns(month: str) -> list[dict]:
    """The 50 assignments' returns: 44 answers, then 6 declines (no dealings)."""
    pairs = [(ws, d) for ws in WORKSHOPS for d in DEPARTMENTS]
    return ([{"type": "response", "id": f"r-{month}-{ws}-{d}", "ruleset": "plant-50", "period": month,
              "subject": d, "rater": ws, "answers": {"attitude": "满意", "response": "满意", "solution": "满意"}}
             for ws, d in pairs[:44]]
            + [{"type": "no_dealings", "id": f"nd-{month}-{ws}-{d}", "round": f"rr-{month}", "rater": ws,
                "subject": d} for ws, d in pairs[44:]])


def counts(status: dict) -> tuple[int, int]:
    return status["overall"]["answered"], status["overall"]["declined"]


def not_yet(what: str, events: int) -> str:
    return (f"{what} is in the log but not yet in the read models ({events:,} logged events are not scored yet: "
            "another process is catching up); try again in a moment")


def test_a_round_in_the_log_is_never_denied_while_another_process_catches_up(db, cli, tmp_path):
    """`round status` while another process ingests the round and its first returns: exit 1 with
    one line saying the round is in the log but not yet in the read models — never "no round"."""
    with Engine.open(db) as e:
        e.append(units())
    first = write_jsonl(tmp_path / "first.jsonl", [opened("2026-03"), *returns("2026-03")])
    with Engine.open(db) as writer:
        writer.ingest([first], catching_up=True)  # appended; this process catches up next
        behind = writer.store.max_position() - writer.projection.tracked()  # (its ingest applied the units)
        assert behind > 50
        result = cli("round", "status", "rr-2026-03", expect=1)
        assert result.stderr.splitlines() == ["csat: " + not_yet("round 'rr-2026-03'", behind)], result.stderr
        absent = cli("round", "status", "rr-2099-01", expect=1)  # what the log does not hold is still denied
        assert "no round 'rr-2099-01' in the log" in absent.stderr and "not yet" not in absent.stderr
        with Engine.open(db) as reader:
            with pytest.raises(NotYetCurrent, match="in the log but not yet in the read models"):
                reader.round_status("rr-2026-03")
        writer.catch_up()
        writer.caught_up_done()
    assert counts(cli.json("round", "status", "rr-2026-03")) == (44, 6)


def test_the_same_while_another_process_holds_the_write_lock(db, cli, tmp_path):
    """The round and a unit logged by an append that nobody caught up yet, while another process
    holds the write lock (an ingest, a catch-up): the read says so; once the lock is free it answers."""
    with Engine.open(db) as e:
        e.append(units())
    with Engine.open(db) as writer, Engine.open(db) as holder, Engine.open(db) as reader:
        writer.append([opened("2026-04"), {"type": "unit", "id": "ws-6", "kind": "workshop", "name": "车间6"}])
        assert holder.store.try_begin_write()
        try:
            result = cli("round", "status", "rr-2026-04", expect=1)
            assert result.stderr.splitlines() == ["csat: " + not_yet("round 'rr-2026-04'", 2)]
            with pytest.raises(NotYetCurrent, match="unit 'ws-6' is in the log but not yet"):
                reader.units("2026-04", "ws-6")
            with pytest.raises(NotYetCurrent, match="unit 'ws-6' is in the log but not yet"):
                reader.scores(under="ws-6")
            with pytest.raises(NotFound, match="no unit 'ws-9'"):  # not in the log at all
                reader.units("2026-04", "ws-9")
        finally:
            holder.store.rollback()
        assert counts(reader.round_status("rr-2026-04")) == (0, 0)
        assert reader.units("2026-04", "ws-6")[0]["kind"] == "workshop"


def test_a_subject_whose_first_responses_are_logged_is_not_denied(db, tmp_path):
    """`explain` of a subject whose first responses are in the log, not yet applied."""
    with Engine.open(db) as e:
        e.append(units())
    with Engine.open(db) as writer, Engine.open(db) as reader:
        writer.ingest([write_jsonl(tmp_path / "r.jsonl", returns("2026-05")[:44])], catching_up=True)
        with pytest.raises(NotYetCurrent, match="a response of plant-50 about 'dept-0' in 2026-05 is in the log"):
            reader.explain("plant-50", "dept-0", "2026-05")
        with pytest.raises(NotFound, match="no responses of plant-50 for 'dept-0' in 2026-06"):
            reader.explain("plant-50", "dept-0", "2026-06")
        writer.catch_up()
        writer.caught_up_done()
        assert reader.explain("plant-50", "dept-0", "2026-05")["responses"] == 5


def test_one_answer_is_read_in_one_snapshot(db, tmp_path):
    """A catch-up that commits while a reader is between the queries of one answer: the reader
    sees none of it (it read in one snapshot), never the answers without the declines."""
    with Engine.open(db) as e:
        e.append(units() + [opened("2026-03")])
        e.catch_up()
    with Engine.open(db) as writer, Engine.open(db) as reader:
        writer.ingest([write_jsonl(tmp_path / "r.jsonl", returns("2026-03"))], catching_up=True)
        positions = reader.store.at_positions
        caught = []

        def meanwhile(ps):  # (called between the reader's queries of rm_rounds and of rm_responses)
            if not caught:
                caught.append(writer.catch_up())
            return positions(ps)

        reader.store.at_positions = meanwhile
        assert counts(reader.round_status("rr-2026-03")) == (0, 0) and caught[0] >= 50
        assert reader.unscored == (caught[0], 0)
        writer.caught_up_done()
        assert counts(reader.round_status("rr-2026-03")) == (44, 6)


def test_a_reader_polling_never_sees_half_a_file(db, tmp_path):
    """Real processes: one ingests a file of 44 answers and 6 declines per round and catches up
    (its catch-up reads the log a few events at a time, as a file larger than a page is read);
    a reader polling the round's status meanwhile sees each file all or none."""
    months = ["2026-03", "2026-04", "2026-05"]
    with Engine.open(db) as e:
        e.append(units() + [opened(m) for m in months])
        e.catch_up()
    files = [write_jsonl(tmp_path / f"{m}.jsonl", returns(m)) for m in months]
    writer = subprocess.Popen([sys.executable, "-c", (
        "import sys\n"
        "from csat.engine import Engine\n"
        "from csat.engine.read.projection import Projection\n"
        "Projection.PAGE = 3\n"
        "with Engine.open(sys.argv[1]) as e:\n"
        "    for f in sys.argv[2:]:\n"
        "        e.ingest([f], catching_up=True)\n"
        "        e.catch_up()\n"
        "        e.caught_up_done()\n"), db, *files],
        env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: dict[str, set[tuple[int, int]]] = {m: set() for m in months}
    deadline = time.monotonic() + 25
    try:
        with Engine.open(db) as reader:
            while time.monotonic() < deadline:
                done = writer.poll() is not None
                for m in months:
                    seen[m].add(counts(reader.round_status(f"rr-{m}")))
                if done:
                    break
    finally:
        if writer.poll() is None:
            writer.kill()
        _, err = writer.communicate(timeout=30)
    assert writer.returncode == 0, err
    for m in months:
        assert seen[m] <= {(0, 0), (44, 6)}, (m, sorted(seen[m]))
        assert (44, 6) in seen[m]
