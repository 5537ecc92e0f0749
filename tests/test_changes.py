"""Following changes (issue 37.8–9): ``Engine.changes(since=…)`` lists the figures that moved since a
position — exactly those whose published score or grade differs, with the events that moved them
and whether their month was announced — resumable, and free when nothing moved; ``Engine.announce``;
``csat log --until``; and :class:`AsyncEngine` for ``async def`` code. On both backends."""
from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import pytest

from conftest import ROOT, Cli

from csat.engine import AsyncEngine, CsatError, Engine, UnknownRuleSet
from csat.engine.app import changes as changes_module
from csat.engine.app import ingest

SUPPLIERS = ROOT / "rulesets" / "examples" / "supplier-demo.jsonl"
ISO = ROOT / "rulesets" / "examples" / "iso-100.jsonl"


def figures(engine: Engine) -> dict[tuple[str, str, str, str], tuple[Decimal | None, str | None]]:
    return {(r["ruleset"], r["subject"], r["period"], r["metric"]): (r["score"], r["grade"]) for r in engine.scores()}


def key(change: dict) -> tuple[str, str, str, str]:
    return change["ruleset"], change["subject"], change["period"], change["metric"]


def moved(before: dict, after: dict) -> set:
    return {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}


def assert_changes_are(changes, before: dict, after: dict, positions: list[int]) -> None:
    """The changes are exactly the figures whose published score or grade differs, each with its
    figures before and after and the events appended since."""
    assert {key(c) for c in changes} == moved(before, after) != set()
    for c in changes:
        was, now = before.get(key(c), (None, None)), after.get(key(c), (None, None))
        assert (c["before"], c["grade_before"], c["after"], c["grade_after"]) == (*was, *now)
        assert c["delta"] == (now[0] - was[0] if None not in (now[0], was[0]) else None)
        assert c["events"] == positions


@pytest.fixture
def suppliers(engine: Engine) -> Engine:
    engine.ingest([SUPPLIERS])
    engine.append([{"type": "rectification", "id": "rect-ic-04", "subject": "sup-ic", "period": "2026-04",
                    "issue": "来料批次追溯", "due": "2026-04-10", "ruleset": "supplier-400"}])
    return engine


def test_since_the_start_every_figure_is_new(suppliers):
    found = suppliers.changes(since=0)
    published = figures(suppliers)
    assert found.position == suppliers.head()[0] == suppliers.store.max_position()
    assert found.head == suppliers.head()[1]
    assert {key(c) for c in found} == set(published) and len(found) == len(published)
    assert all(c["before"] is None and c["grade_before"] is None and c["delta"] is None for c in found)
    assert all((c["after"], c["grade_after"]) == published[key(c)] for c in found)
    aux = next(c for c in found if key(c) == ("supplier-400", "sup-aux", "2026-03", "composite"))
    assert aux["subject_name"] == "恒洁辅料 (辅料)" and aux["kind"] == "month" and aux["announced"] is False
    assert 1 in aux["events"] and aux["events"] == sorted(aux["events"])


def test_nothing_new_is_an_empty_answer_without_a_replay(suppliers, monkeypatch):
    position = suppliers.changes(since=0).position

    def no_replay(*args, **kwargs):
        raise AssertionError("no replay when nothing moved")

    monkeypatch.setattr(changes_module, "snapshot", no_replay)
    monkeypatch.setattr(suppliers.store, "pages", no_replay)  # not even a read of the log
    again = suppliers.changes(since=position)
    assert (again.position, again.head, again.changes) == (position, suppliers.head()[1], [])
    monkeypatch.undo()
    monkeypatch.setattr(changes_module, "snapshot", no_replay)
    suppliers.announce("supplier-400", "2026-03", date="2026-04-03")  # an announcement moves no figure
    after = suppliers.changes(since=position)
    assert after.changes == [] and after.position == position + 1


@pytest.mark.parametrize("events", [
    [{"type": "correction", "id": "fix-1", "response": "sup-ic-2026-02-delivery-pmc", "reason": "miscounted",
      "answers": {"late_deliveries": 2}}],
    [{"type": "withdrawal", "id": "wd-1", "response": "sup-pcb-2026-03-price-finance", "reason": "duplicate"}],
    [{"type": "complaint", "id": "cmp-ic-02", "subject": "sup-ic", "period": "2026-02", "ruleset": "supplier-400",
      "severity": "major", "text": "批次不良"}],
    [{"type": "complaint_closed", "id": "close-aux-03", "complaint": "cmp-aux-03", "date": "2026-03-30",
      "outcome": "rejected"}],
    [{"type": "rectification_update", "id": "rect-ic-04-done", "rectification": "rect-ic-04", "status": "completed",
      "date": "2026-04-08"}],
    [{"type": "unit", "id": "sup-aux", "name": "恒洁辅料 (辅料)", "kind": "pcb", "from": "2026-03"}],
], ids=["correction", "withdrawal", "complaint", "closure", "rectification-update", "unit-moved"])
def test_an_event_moves_exactly_the_figures_it_moves(suppliers, events):
    position = suppliers.caught_up()[0]
    before = figures(suppliers)
    suppliers.append(events)
    found = suppliers.changes(since=position)
    assert_changes_are(found, before, figures(suppliers), [position + 1])
    assert found.position == position + 1


def test_an_adoption_moves_the_months_from_its_month_on(suppliers):
    position = suppliers.caught_up()[0]
    before = figures(suppliers)
    suppliers.adopt({"categories": {"pcb": {"delivery": 1, "service": 1, "quality": 1, "price": 1}}},
                    ruleset="supplier-400", from_="2026-03")
    found = suppliers.changes(since=position)
    assert_changes_are(found, before, figures(suppliers), [position + 1])
    assert {c["period"] for c in found} == {"2026-03", "2026-04", "2026-Q1", "2026-Q2", "2026"}


def test_resumable_round_after_round(suppliers):
    start = suppliers.changes(since=0).position
    first = figures(suppliers)
    suppliers.append([{"type": "correction", "id": "fix-1", "response": "sup-ic-2026-02-delivery-pmc",
                       "reason": "miscounted", "answers": {"late_deliveries": 2}}])
    one = suppliers.changes(since=start)
    second = figures(suppliers)
    assert_changes_are(one, first, second, [start + 1])
    suppliers.append([{"type": "withdrawal", "id": "wd-1", "response": "sup-pcb-2026-03-price-finance",
                       "reason": "duplicate"}])
    two = suppliers.changes(since=one.position)
    assert_changes_are(two, second, figures(suppliers), [start + 2])
    assert {key(c) for c in one} != {key(c) for c in two}
    both = suppliers.changes(since=start)  # from the first position: both, before from there
    assert {key(c) for c in both} == moved(first, figures(suppliers))
    assert suppliers.changes(since=start, until=one.position).changes == one.changes  # as they stood then
    with pytest.raises(CsatError, match="beyond the log's end"):
        suppliers.changes(since=two.position + 5)
    with pytest.raises(CsatError, match="until: position"):
        suppliers.changes(since=two.position, until=start)


def test_announce_appends_and_the_changes_say_the_month_was_announced(suppliers):
    position = suppliers.caught_up()[0]
    report = suppliers.announce("supplier-400", "2026-03", date="2026-04-03", note="公示栏")
    assert report.appended == 1
    [event] = list(suppliers.log(type="announcement"))
    assert event["event"] == {"type": "announcement", "id": "supplier-400-2026-03-2026-04-03",
                              "ruleset": "supplier-400", "period": "2026-03", "date": "2026-04-03", "note": "公示栏"}
    suppliers.append([{"type": "withdrawal", "id": "wd-1", "response": "sup-pcb-2026-03-price-finance",
                       "reason": "duplicate"}])
    found = suppliers.changes(since=position)
    assert {c["period"] for c in found if c["announced"]} == {"2026-03"}
    assert {c["period"] for c in found if not c["announced"]} == {"2026-Q1", "2026"}
    assert all(c["events"] == [position + 2] for c in found)  # the announcement moved nothing


def test_announce_refuses_a_month_without_figures(suppliers):
    head = suppliers.caught_up()
    with pytest.raises(CsatError, match="^supplier-400 has no figures for 2027-01: nothing to announce$"):
        suppliers.announce("supplier-400", "2027-01")
    with pytest.raises(CsatError, match="no figures for 2026-03 under sup-nowhere|no unit 'sup-nowhere'"):
        suppliers.announce("supplier-400", "2026-03", under="sup-nowhere")
    with pytest.raises(UnknownRuleSet):
        suppliers.announce("no-such-ruleset", "2026-03")
    assert suppliers.caught_up() == head  # nothing appended


def test_csat_log_until_a_position_or_a_time(db, monkeypatch, tmp_path):
    clock = {"now": "2026-11-30T10:00:00.000000Z"}
    monkeypatch.setattr(ingest, "now", lambda: clock["now"])
    cli = Cli(db)
    cli("ingest", str(ISO))  # adoption + 4 responses, recorded 2026-11-30
    clock["now"] = "2026-12-02T09:00:00.000000Z"
    fix = tmp_path / "fix.jsonl"
    fix.write_text(json.dumps({"type": "withdrawal", "id": "wd-c4", "response": "iso-2026-11-c4",
                               "reason": "duplicate"}) + "\n", encoding="utf-8")
    cli("ingest", str(fix))
    positions = lambda *args: [r["position"] for r in cli.json("log", *args)]  # noqa: E731
    assert positions() == [1, 2, 3, 4, 5, 6]
    assert positions("--until", "3") == [1, 2, 3]
    assert positions("--until", "2026-12-01") == [1, 2, 3, 4, 5]
    assert positions("--until", "2026-12-02T09:00") == [1, 2, 3, 4, 5, 6]
    assert positions("--until", "5", "--tail", "2") == [4, 5]
    assert positions("--until", "4", "--type", "response", "--limit", "2") == [2, 3]
    assert "--until N|TIME" in cli("log", "--help").stdout
    assert cli("log", "--until", "2026-13-01", expect=2).exit_code == 2
    with Engine.open(db) as e:
        assert [r["position"] for r in e.log(until="2026-11-30")] == [1, 2, 3, 4, 5]


def test_async_engine_calls_run_concurrently_and_agree(db):
    """20 calls at once — appends of responses and reads of scores — on an AsyncEngine's threads,
    each with an engine of its own: every append lands, and the figures equal a plain engine's."""
    answers = {"quality": 27, "delivery": 18, "service": 14, "after_sales": 18, "price": 13}

    async def main() -> tuple:
        async with await AsyncEngine.open(db, threads=4) as engine:
            await engine.ingest([ISO])
            start = (await engine.changes(since=0)).position
            calls = [engine.append([{"type": "response", "id": f"late-{i}", "ruleset": "iso-100",
                                     "period": "2026-12", "subject": "company", "rater": f"c{i}", "answers": answers}])
                     if i % 2 else engine.scores(ruleset="iso-100") for i in range(20)]
            results = await asyncio.gather(*calls)
            found = await engine.changes(since=start)
            logged = await engine.log(type="response")
            assert len(engine._engines) > 1  # the calls ran on several threads' engines
            return results, found, logged, await engine.scores(ruleset="iso-100")

    results, found, logged, rows = asyncio.run(main())
    assert sum(r.appended for r in results[1::2]) == 10
    assert all(isinstance(r, list) and r for r in results[0::2])
    assert len(logged) == 14 and isinstance(logged, list)
    with Engine.open(db) as plain:
        assert rows == plain.scores(ruleset="iso-100")
        december = plain.scores(ruleset="iso-100", period="2026-12")
    assert december[0]["responses"] == 10
    assert {c["period"] for c in found} == {"2026-12", "2026-Q4", "2026"}
    assert next(c for c in found if c["period"] == "2026-12")["before"] is None
    assert len(next(c for c in found if c["period"] == "2026-12")["events"]) == 10


def test_async_engine_offers_the_engine_methods_only(db):
    async def main() -> None:
        engine = await AsyncEngine.open(db, threads=2)
        try:
            assert (await engine.head())[0] == 0
            with pytest.raises(AttributeError):
                engine.no_such_method  # noqa: B018
            with pytest.raises(AttributeError):
                engine._catch_up_to_read  # noqa: B018
            with pytest.raises(CsatError):
                await engine.announce("iso-100", "2026-11")  # refused in its thread, raised here
        finally:
            await engine.close()
        with pytest.raises(CsatError, match="closed"):
            await engine.scores()

    asyncio.run(main())
