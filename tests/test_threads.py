"""One engine shared by threads, as a web service's thread pool shares it: calls take turns, a
failed call leaves no transaction behind, and an EnginePool reads in parallel — on both backends.

Before the engine's calls took turns, sixteen threads appending and reading on one engine raised
raw ``sqlite3.OperationalError: cannot start a transaction within a transaction``, left rows
without a chain hash ("inserted outside csat") and lost published rows, every time."""
from __future__ import annotations

import random
import threading

import pytest

from csat.engine import CsatError, Engine, EnginePool, IngestFailed
from conftest import EXAMPLES, connect

SUBJECTS = ["purchasing", "quality", "finance", "hr", "warehouse"]
ANSWERS = {"attitude": "满意", "response": "满意", "solution": "满意"}


def _response(thread: int, i: int, subject: str) -> dict:
    return {"type": "response", "id": f"t{thread}-{i}", "ruleset": "plant-50", "period": "2026-03",
            "subject": subject, "rater": f"ws-{thread}-{i}", "answers": ANSWERS}


def _counted(engine: Engine) -> dict[str, int]:
    """Responses counted per subject in March, by the first metric's rows."""
    rows = engine.scores(ruleset="plant-50", period="2026-03")
    metric = rows[0]["metric"]
    return {r["subject"]: r["responses"] for r in rows if r["metric"] == metric}


def _hammer(calls, threads: int = 16, per_thread: int = 60) -> tuple[dict[str, list], list[str]]:
    """``calls(thread, i, rnd)`` from ``threads`` threads at once; returns the responses each
    subject gained (by the calls that said so) and every exception that was not a CsatError."""
    appended: dict[str, list] = {s: [] for s in SUBJECTS}
    raw: list[str] = []
    start = threading.Barrier(threads)

    def run(t: int) -> None:
        rnd = random.Random(t)
        start.wait()
        for i in range(per_thread):
            try:
                subject = calls(t, i, rnd)
                if subject:
                    appended[subject].append((t, i))
            except CsatError:
                pass  # a refusal is an answer; the test checks nothing half-happened
            except BaseException as e:  # noqa: BLE001 - what the test is about
                raw.append(f"{type(e).__module__}.{type(e).__name__}: {e}")

    workers = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(300)
    return appended, raw


def test_sixteen_threads_on_one_engine_never_corrupt_the_store(db):
    with Engine.open(db) as engine:
        engine.ingest([EXAMPLES / "plant-50.jsonl"])
        before = _counted(engine)

        def calls(t: int, i: int, rnd: random.Random) -> str | None:
            what = rnd.random()
            if what < 0.45:
                subject = rnd.choice(SUBJECTS)
                engine.append([_response(t, i, subject)])
                return subject
            if what < 0.8:
                engine.scores(period="2026-03")
            elif what < 0.9:
                list(engine.log(tail=3))
            else:
                engine.explain("plant-50", rnd.choice(SUBJECTS), "2026-03")
            return None

        appended, raw = _hammer(calls)
        assert raw == []
        assert engine.verify()["intact"], engine.verify()
        assert engine.unscored == (0, 0)
        after = _counted(engine)
    assert sum(len(v) for v in appended.values()) > 200
    assert after == {s: before.get(s, 0) + len(appended[s]) for s in after}
    assert set(after) == set(SUBJECTS)
    with Engine.open(db) as again:  # what another process reads, after a rebuild from the log
        again.rebuild()
        assert _counted(again) == after


def test_a_failed_append_leaves_no_transaction_open(db):
    """An append that fails inside its write transaction (here: the log's last hash was deleted by
    hand, so the append cannot chain) rolls back; the next call on the same engine works."""
    with Engine.open(db) as engine:
        engine.ingest([EXAMPLES / "plant-50.jsonl"])
        head = engine.store.max_position()
        with connect(db) as conn:
            conn.execute("DELETE FROM event_hashes WHERE position = ?", (head,))
        with pytest.raises(CsatError):
            engine.append([_response(0, 0, "hr")])
        assert not engine.store.conn.in_transaction
        assert engine.store.max_position() == head  # nothing of it was written
        engine.scores(period="2026-03")  # was: cannot start a transaction within a transaction
        assert engine.verify()["intact"] is False
        from csat.engine.log import chain  # the hash restored (as csat repair does): the engine goes on
        engine.store.conn.execute("BEGIN")
        chain.seal(engine.store.conn, head - 1)
        engine.store.conn.execute("COMMIT")
        engine.append([_response(0, 0, "hr")])
        assert engine.verify()["intact"]


def test_an_interrupted_call_on_a_shared_engine_rolls_back_for_the_next_thread(db, monkeypatch):
    """Whatever a call raises half-way (here a KeyboardInterrupt in the middle of an append's
    transaction), the transaction is rolled back before the next call — from another thread."""
    with Engine.open(db) as engine:
        engine.ingest([EXAMPLES / "plant-50.jsonl"])
        head = engine.store.max_position()
        real = engine.store.append

        def interrupted(*args, **kwargs):
            real(*args, **kwargs)
            raise KeyboardInterrupt

        monkeypatch.setattr(engine.store, "append", interrupted)
        with pytest.raises(KeyboardInterrupt):
            engine.append([_response(0, 0, "hr")])
        monkeypatch.undo()
        done = []
        other = threading.Thread(target=lambda: done.append(engine.append([_response(1, 0, "hr")]).appended))
        other.start()
        other.join(60)
        assert done == [1]
        assert engine.store.max_position() == head + 1
        assert engine.verify()["intact"]


def test_an_engine_pool_serves_threads_in_parallel(db):
    with EnginePool(db, size=4) as pool:
        with pool.borrow() as engine:
            engine.ingest([EXAMPLES / "plant-50.jsonl"])
            before = _counted(engine)
        seen = set()

        def calls(t: int, i: int, rnd: random.Random) -> str | None:
            with pool.borrow() as engine:
                seen.add(id(engine))
                if rnd.random() < 0.4:
                    subject = rnd.choice(SUBJECTS)
                    engine.append([_response(t, i, subject)])
                    return subject
                engine.scores(period="2026-03")
            return None

        appended, raw = _hammer(calls, threads=8, per_thread=40)
        assert raw == []
        assert 1 < len(seen) <= 4
        with pool.borrow() as engine:
            assert engine.verify()["intact"]
            after = _counted(engine)
    assert after == {s: before.get(s, 0) + len(appended[s]) for s in after}
    with pytest.raises(CsatError, match="closed"):
        with pool.borrow():
            pass


def test_an_actor_that_is_not_a_name_is_refused_before_anything_is_written(db):
    """actor=5 was stored as a number in the row's envelope, which then did not decode: the log
    was broken for good by a caller's typo."""
    with Engine.open(db) as engine:
        engine.ingest([EXAMPLES / "plant-50.jsonl"])
        head = engine.store.max_position()
        for actor in (5, 1.5, True, b"bob", {"x": 1}, "", "a\nb", "\udc80", ["qo", 5], []):
            with pytest.raises(CsatError, match="actor"):
                engine.append([_response(0, 0, "hr")], actor=actor)
        assert engine.store.max_position() == head and engine.verify()["intact"]
        engine.append([_response(0, 0, "hr")], actor="qo")
        assert engine.verify()["intact"] and list(engine.log(tail=1))[0]["by"] == "qo"


def test_odd_python_values_are_one_line_each_and_a_closed_engine_says_so(db):
    with Engine.open(db) as engine:
        engine.ingest([EXAMPLES / "plant-50.jsonl"])
        head = engine.store.max_position()
        deep: dict = {}
        node = deep
        for _ in range(5000):
            node["x"] = {}
            node = node["x"]
        cyclic: dict = {}
        cyclic["self"] = cyclic
        for odd in ({**_response(0, 1, "hr"), "subject": b"hr"}, {**_response(0, 2, "hr"), "comment": "\udc80"},
                    {**_response(0, 3, "hr"), "comment": 10 ** 5000}, {**_response(0, 4, "hr"), "comment": deep},
                    {**_response(0, 5, "hr"), "comment": cyclic}):
            with pytest.raises(IngestFailed) as e:
                engine.append([odd])
            assert len(e.value.problems) >= 1 and all(p.startswith("events[0]") for p in e.value.problems)
        for not_events in (None, 5, {"type": "response"}):
            with pytest.raises(CsatError, match="expected a list of events"):
                engine.append(not_events)
        assert engine.store.max_position() == head and engine.verify()["intact"]
    for call in (lambda: engine.scores(), lambda: engine.append([_response(0, 6, "hr")]), engine.head):
        with pytest.raises(CsatError, match="closed"):
            call()
    engine.close()  # closing again is no error
