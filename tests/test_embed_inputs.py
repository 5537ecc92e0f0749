"""Issue 37, items 4 and 5: an adoption checked against the answers already logged (and a typo'd
item named), and the values an embedder hands to Engine.append (Decimal, numpy scalars, NaN,
anything else) — every problem of an event reported, one line each."""
from __future__ import annotations

import datetime
import math
from decimal import Decimal

import pytest

from conftest import EXAMPLES, write_jsonl
from csat.engine import IngestFailed, InvalidParams

FULL = {"quality": 30, "delivery": 20, "service": 15, "after_sales": 20, "price": 15}
#: the issue's adoption: after-sales weighs 25, price 10 (the maxima still sum to 100)
REWEIGHTED = {"items": {"after_sales": {"max": 25}, "price": {"max": 10}}}


def resp(id_, month="2026-04", **answers):
    return {"type": "response", "id": id_, "ruleset": "iso-100", "period": month, "subject": "company",
            "rater": f"c-{id_}", "answers": {**FULL, **answers}}


def april(engine):
    """The worked example (November) and an April response answered price 15, after-sales N/A."""
    engine.ingest([EXAMPLES / "iso-100.jsonl"])
    engine.append([resp("apr-1", after_sales="N/A", price=15)])


def score(engine, period):
    (row,) = engine.scores(ruleset="iso-100", period=period)
    return row["score"]


REFUSED_APR = ('logged response apr-1 (2026-04, company): answers.price: expected points 0 to 10 or "N/A", '
               "got 15 under these parameters")


# -- item 4: an adoption against the answers already logged ------------------------------------------

def test_an_adoption_that_would_publish_106_67_is_refused_naming_the_response(engine):
    april(engine)
    assert score(engine, "2026-04") == Decimal("100.00")
    with pytest.raises(IngestFailed) as whatif:  # the what-if says so first, before any figure
        engine.whatif("iso-100", REWEIGHTED, from_="2026-04")
    assert whatif.value.problems[0] == f"params: {REFUSED_APR}"
    assert whatif.value.problems[1].endswith("correct or withdraw it first, or adopt from a later month")
    with pytest.raises(IngestFailed) as adopt:
        engine.adopt(REWEIGHTED, ruleset="iso-100", from_="2026-04")
    assert adopt.value.problems == whatif.value.problems
    assert [r["type"] for r in engine.log(type="adoption")] == ["adoption", "adoption"]  # the two defaults only
    assert score(engine, "2026-04") == Decimal("100.00")

    # corrected to an answer on the new scale, the same adoption goes through
    engine.append([{"type": "correction", "id": "fix-apr-1", "response": "apr-1", "reason": "price out of 10",
                    "answers": {**FULL, "after_sales": "N/A", "price": 8}}])
    assert [r["after"] for r in engine.whatif("iso-100", REWEIGHTED, from_="2026-04")
            if r["period"] == "2026-04"] == [Decimal("97.33")]  # 73 of 75
    engine.adopt(REWEIGHTED, ruleset="iso-100", from_="2026-04")
    assert score(engine, "2026-04") == Decimal("97.33")


def test_the_next_adoption_bounds_the_months_checked_and_withdrawn_responses_do_not_count(engine):
    april(engine)  # November is governed by its own implicit adoption, not by one from April
    engine.append([resp("may-1", month="2026-05", price=14),
                   {"type": "withdrawal", "id": "w-may-1", "response": "may-1", "reason": "sent twice"}])
    with pytest.raises(IngestFailed) as e:
        engine.adopt(REWEIGHTED, ruleset="iso-100", from_="2026-04")
    assert [p for p in e.value.problems if "logged response" in p] == [f"params: {REFUSED_APR}"]


def test_an_adoption_from_a_month_whose_responses_all_fit_is_accepted(engine):
    engine.ingest([EXAMPLES / "iso-100.jsonl"])  # November: quality 28 at most, after-sales 18 at most
    with pytest.raises(IngestFailed) as e:
        engine.adopt({"items": {"quality": {"max": 27}, "after_sales": {"max": 23}}}, ruleset="iso-100",
                     from_="2026-11")
    assert e.value.problems[0] == ("params: logged response iso-2026-11-c1 (2026-11, company): answers.quality: "
                                   'expected points 0 to 27 or "N/A", got 28 under these parameters')
    assert len(e.value.problems) == 2
    report = engine.adopt({"items": {"quality": {"max": 28}, "after_sales": {"max": 22}}}, ruleset="iso-100",
                          from_="2026-11", id="fits")
    assert report.appended == 1
    (row,) = engine.scores(ruleset="iso-100", period="2026-11")
    assert row["adoption"] == "fits"
    # c4: 27 + 19 + 14 + 13 = 73 of 28 + 20 + 15 + 15 = 78 → 93.589…; (91 + 80 + 65 + 93.59) / 4
    assert row["score"] == Decimal("82.40")


def test_an_adoption_event_ingested_from_a_file_is_refused_the_same_way(engine, tmp_path):
    april(engine)
    adoption = {"type": "adoption", "id": "reweighted", "ruleset": "iso-100", "from": "2026-04", "params": REWEIGHTED}
    path = write_jsonl(tmp_path / "adopt.jsonl", [adoption])
    with pytest.raises(IngestFailed) as e:
        engine.ingest([path])
    assert e.value.problems[0] == f"{path}:1: {REFUSED_APR}"
    # the response and the adoption in one file: the file's own earlier lines are checked too
    both = write_jsonl(tmp_path / "both.jsonl", [resp("apr-2", price=12), adoption])
    with pytest.raises(IngestFailed) as e:
        engine.append([{"type": "withdrawal", "id": "w-apr-1", "response": "apr-1", "reason": "test"}])
        engine.ingest([both])
    assert e.value.problems[0] == (f"{both}:2: logged response apr-2 (2026-04, company): answers.price: "
                                   'expected points 0 to 10 or "N/A", got 12 under these parameters')
    fits = write_jsonl(tmp_path / "fits.jsonl", [resp("apr-3", price=10), adoption])
    assert engine.ingest([fits]).appended == 2
    assert score(engine, "2026-04") == Decimal("95.00")  # 30 + 20 + 15 + 20 of 25 + 10


def test_a_typoed_item_is_refused_by_name(engine):
    with pytest.raises(IngestFailed) as e:
        engine.adopt({"items": {"after_sale": {"max": 25}, "price": {"max": 10}}}, ruleset="iso-100",
                     from_="2026-04")
    assert e.value.problems[0] == ('params: key `items.after_sale`: no such item (items: quality, delivery, service, '
                                   'after_sales, price); to add or remove items, give the whole table with '
                                   'replace = ["items"]')
    assert not any("got 120" in p for p in e.value.problems)  # the sum without the typo: 95
    with pytest.raises(InvalidParams) as e:  # (the what-if's parameter errors, as ever)
        engine.whatif("iso-100", {"items": {"after_sale": {"max": 25}}}, from_="2026-04")
    assert e.value.problems[0].startswith("params: key `items.after_sale`: no such item")
    # replaced whole, a new item is no typo
    engine.adopt({"items": {"quality": {"max": 50}, "value": {"max": 50}}}, ruleset="iso-100", from_="2026-04",
                 replace=["items"])


def test_the_other_built_ins_name_a_typoed_entry_of_their_item_tables(engine):
    finance = {"weight": "0.2", "indicators": {"professionalism": 0.4, "efficiency": 0.3, "quality": 0.3}}
    engine.adopt({"departments": {"finance": finance}}, ruleset="airline-1000", from_="2026-01")
    with pytest.raises(IngestFailed) as e:
        engine.adopt({"departments": {"finance": {"indicators": {"efficency": 0.5}}}}, ruleset="airline-1000",
                     from_="2026-02")
    assert e.value.problems[0].startswith("params: key `departments.finance.indicators.efficency`: no such "
                                          "indicator (departments.finance.indicators: professionalism, efficiency, "
                                          "quality)")
    with pytest.raises(IngestFailed) as e:
        engine.adopt({"categories": {"ic": {"quailty": 3}}}, ruleset="supplier-400", from_="2026-01")
    assert e.value.problems[0] == ("params: key `categories.ic.quailty`: no such dimension (dimensions: delivery, "
                                   "service, quality, price)")


# -- item 5: the values an embedder sends --------------------------------------------------------

def test_a_decimal_answer_is_the_same_event_as_the_json_number(engine):
    assert engine.append([resp("d1", month="2026-05", quality=Decimal("27.5"))]).events == 1
    report = engine.append([resp("d1", month="2026-05", quality=27.5)])  # the same event: nothing appended
    assert (report.appended, report.present) == (0, 1)
    assert engine.store.get(["response:d1"])["response:d1"].event.answers["quality"] == 27.5
    assert score(engine, "2026-05") == Decimal("97.50")


def test_numpy_scalars_are_their_python_values(engine):
    np = pytest.importorskip("numpy")
    engine.append([resp("n1", month="2026-05", quality=np.float64(27.5), delivery=np.int64(20),
                        service=np.float64(15.0), price=np.float32(0.1))])
    answers = engine.store.get(["response:n1"])["response:n1"].event.answers
    assert answers == {"quality": 27.5, "delivery": 20, "service": 15.0, "after_sales": 20, "price": 0.1}
    assert type(answers["delivery"]) is int and type(answers["service"]) is float  # as a file's 20 and 15.0
    assert score(engine, "2026-05") == Decimal("82.60")  # 27.5 + 20 + 15 + 20 + 0.1
    assert engine.append([resp("n1", month="2026-05", quality=27.5, delivery=20, service=15.0,
                               price=0.1)]).present == 1


def test_nan_is_na_where_the_item_takes_it_and_one_line_otherwise(engine):
    engine.append([resp("nan-1", month="2026-05", after_sales=float("nan"), price=Decimal("NaN"))])
    assert engine.store.get(["response:nan-1"])["response:nan-1"].event.answers["after_sales"] == "N/A"
    assert score(engine, "2026-05") == Decimal("100.00")  # 65 of 65
    supplier = {"type": "response", "id": "s1", "ruleset": "supplier-400", "period": "2026-05", "subject": "acme",
                "rater": "mc", "form": "delivery", "answers": {"late_deliveries": math.nan}}
    with pytest.raises(IngestFailed) as e:
        engine.append([resp("ok", month="2026-06"), supplier])
    assert e.value.problems == ['events[1]: field `answers.late_deliveries`: NaN is not an answer — send "N/A" '
                                "for not applicable, or leave the item out"]


def test_a_value_that_cannot_be_sent_is_one_line_naming_the_event_field_and_type(engine):
    bad = {**resp("when", month="2026-05", quality=math.inf), "comment": complex(1, 2)}
    with pytest.raises(IngestFailed) as e:
        engine.append([resp("fine", month="2026-05"), bad])
    assert e.value.problems == [
        "events[1]: field `answers.quality`: inf is not a number an event can hold",
        "events[1]: field `comment`: a Python complex cannot be sent in an event (expected a string, a number, "
        "true or false, null, a list or an object)"]
    when = {**resp("when", month="2026-05", price=16), "comment": complex(1, 2), "rater": datetime.date(2026, 5, 1)}
    with pytest.raises(IngestFailed) as e:  # (a date goes as its ISO text, as msgspec sends it: no problem)
        engine.append([when])
    assert e.value.problems == [
        "events[0]: field `comment`: a Python complex cannot be sent in an event (expected a string, a number, "
        "true or false, null, a list or an object)",
        'events[0]: field `answers.price`: expected points 0 to 15 or "N/A", got 16']


def test_every_problem_of_an_event_is_reported(engine, tmp_path):
    three = {**resp("three", month="2026-05", quality=31, delivery=None), "rater_name": "王"}
    with pytest.raises(IngestFailed) as e:
        engine.append([three])
    assert e.value.problems == [
        "events[0]: field `answers.delivery`: expected `int | float | str`, got `null`",
        "events[0]: unknown field `rater_name`",
        'events[0]: field `answers.quality`: expected points 0 to 30 or "N/A", got 31']
    path = write_jsonl(tmp_path / "bad.jsonl", [{**resp("x"), "period": "2026-13", "status": "done", "raterr": 1}])
    with pytest.raises(IngestFailed) as e:
        engine.ingest([path])
    assert sorted(e.value.problems) == sorted([
        f"{path}:1: unknown field `raterr`",
        f"{path}:1: field `status`: expected one of completed, refused, unreachable, got 'done'",
        f"{path}:1: field `period`: expected a real month YYYY-MM (01-12), got '2026-13'"])
