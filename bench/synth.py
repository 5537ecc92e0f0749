"""Synthetic, realistic event streams for benchmarks and tests (deterministic by seed).

airline-1000: departments × rating units × managers × months of questionnaires,
with D/E grades carrying reasons, a department-weights adoption, and a sprinkle
of corrections and withdrawals — the shape a real assessment office produces.

    python bench/synth.py airline --responses 100000 > airline.jsonl
    python bench/synth.py mixed --responses 1000000 > all.jsonl     # every built-in rule set
"""
from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Iterator
from typing import Any

GRADES = ("A", "B", "C", "D", "E")
GRADE_WEIGHTS = (30, 40, 22, 6, 2)
LABELS = {"A": "优秀", "B": "良好", "C": "称职", "D": "基本称职", "E": "不称职"}
INDICATORS = {"professionalism": "0.4", "efficiency": "0.3", "quality": "0.3"}


def months(start_year: int, count: int) -> list[str]:
    return [f"{start_year + i // 12:04d}-{i % 12 + 1:02d}" for i in range(count)]


def airline(responses: int = 100_000, *, departments: int = 40, raters: int = 12, managers: int = 4,
            seed: int = 7, corrections: float = 0.01, withdrawals: float = 0.005) -> Iterator[dict[str, Any]]:
    """About ``responses`` questionnaires (months grow to fit), plus adoptions, corrections, withdrawals."""
    rnd = random.Random(seed)
    per_month = departments * raters * managers
    month_list = months(2024, max(1, -(-responses // per_month)))
    depts = [f"dept-{d:02d}" for d in range(departments)]
    yield {"type": "adoption", "id": "policy-weights", "ruleset": "airline-1000", "from": month_list[0],
           "params": {"departments": {d: {"weight": str(rnd.choice(("0.1", "0.15", "0.2"))),
                                          "indicators": {k: float(v) for k, v in INDICATORS.items()}}
                                      for d in depts[: departments // 2]}},
           "note": "department weights"}
    n = 0
    for month in month_list:
        for dept in depts:
            for r in range(raters):
                for m in range(managers):
                    if n >= responses:
                        return
                    n += 1
                    rid = f"air-{month}-{dept}-u{r:02d}-m{m}"
                    answers, reasons = {}, {}
                    for ind in INDICATORS:
                        g = rnd.choices(GRADES, GRADE_WEIGHTS)[0]
                        answers[ind] = LABELS[g] if rnd.random() < 0.3 else g
                        if g in "DE":
                            reasons[ind] = f"{ind} below expectations in {month}"
                    ev: dict[str, Any] = {"type": "response", "id": rid, "ruleset": "airline-1000",
                                          "period": month, "subject": dept, "rater": f"unit-{r:02d}",
                                          "respondent": f"unit-{r:02d}/m{m}", "answers": answers}
                    if reasons:
                        ev["reasons"] = reasons
                    yield ev
                    roll = rnd.random()
                    if roll < withdrawals:
                        yield {"type": "withdrawal", "id": f"wd-{rid}", "response": rid,
                               "reason": "questionnaire filled for the wrong department"}
                    elif roll < withdrawals + corrections:
                        yield {"type": "correction", "id": f"co-{rid}", "response": rid,
                               "answers": {k: "B" for k in INDICATORS}, "reason": "transcription error"}


LEVELS = ("满意", "一般", "不满意", "很不满意")


def plant(responses: int = 10_000, *, departments: int = 12, workshops: int = 15, seed: int = 11) -> Iterator[dict[str, Any]]:
    """Functional departments rated monthly by workshops, three items a form."""
    rnd = random.Random(seed)
    per_month = departments * workshops
    n = 0
    for month in months(2024, max(1, -(-responses // per_month))):
        for d in range(departments):
            for w in range(workshops):
                if n >= responses:
                    return
                n += 1
                answers, reasons = {}, {}
                for item in ("attitude", "response", "solution"):
                    level = rnd.choices(LEVELS, (90, 7, 2.5, 0.5))[0]
                    answers[item] = level
                    if level in ("不满意", "很不满意"):
                        reasons[item] = "late again"
                ev = {"type": "response", "id": f"pl-{month}-d{d:02d}-w{w:02d}", "ruleset": "plant-50",
                      "period": month, "subject": f"func-{d:02d}", "rater": f"workshop-{w:02d}", "answers": answers}
                if reasons:
                    ev["reasons"] = reasons
                yield ev


ISO_MAX = {"quality": 30, "delivery": 20, "service": 15, "after_sales": 20, "price": 15}


def iso(responses: int = 10_000, *, subjects: int = 10, per_month: int = 60, seed: int = 13,
        start: int = 2024) -> Iterator[dict[str, Any]]:
    """Customer surveys of product lines, items up to their maxima, some N/A and suggestions."""
    rnd = random.Random(seed)
    n = 0
    for month in months(start, max(1, -(-responses // (subjects * per_month)))):
        for s in range(subjects):
            for c in range(per_month):
                if n >= responses:
                    return
                n += 1
                answers: dict[str, Any] = {k: rnd.randint(int(m * 0.6), m) for k, m in ISO_MAX.items()}
                if rnd.random() < 0.05:
                    answers["after_sales"] = "N/A"
                ev = {"type": "response", "id": f"iso-{month}-s{s}-c{c}", "ruleset": "iso-100", "period": month,
                      "subject": f"line-{s}", "rater": f"customer-{c}", "answers": answers}
                if rnd.random() < 0.2:
                    ev["comment"] = "希望缩短交期"
                yield ev


DEALER_LEVELS = ("非常满意", "很好", "一般", "还行", "不满意", "投诉")


def dealership(responses: int = 10_000, *, consultants: int = 400, advisors: int = 40, bays: int = 10,
               seed: int = 17) -> Iterator[dict[str, Any]]:
    """A dealer group: sales teams of consultants, service teams of advisors, workshop bays; sales and
    service callbacks (5 % failed), one team move a quarter."""
    rnd = random.Random(seed)
    yield {"type": "unit", "id": "group", "name": "经销商集团", "kind": "dealer"}
    for t in range(consultants // 20):
        yield {"type": "unit", "id": f"st-{t:02d}", "kind": "team", "parent": "group"}
    for c in range(consultants):
        yield {"type": "unit", "id": f"sc-{c:03d}", "kind": "consultant", "parent": f"st-{c // 20:02d}"}
    for t in range(advisors // 10):
        yield {"type": "unit", "id": f"svc-{t}", "kind": "team", "parent": "group"}
    for a in range(advisors):
        yield {"type": "unit", "id": f"sa-{a:02d}", "kind": "advisor", "parent": f"svc-{a // 10}"}
    yield {"type": "unit", "id": "shop", "kind": "workshop", "parent": "group"}
    for b in range(bays):
        yield {"type": "unit", "id": f"bay-{b}", "kind": "bay", "parent": "shop"}
    per_month = consultants * 5
    month_list = months(2024, max(1, -(-responses // per_month)))
    n = 0
    for i, month in enumerate(month_list):
        if i % 3 == 1:
            c = rnd.randrange(consultants)
            yield {"type": "unit", "id": f"sc-{c:03d}", "kind": "consultant", "from": month,
                   "parent": f"st-{rnd.randrange(consultants // 20):02d}"}
        for k in range(per_month):
            if n >= responses:
                return
            n += 1
            weights = (50, 25, 12, 8, 4, 1)
            status = "completed" if rnd.random() > 0.05 else rnd.choice(("refused", "unreachable"))
            if k % 10 < 7:
                answers = {q: rnd.choices(DEALER_LEVELS, weights)[0] for q in ("q1", "q2", "q3", "q4")}
                ev = {"type": "response", "id": f"cb-{month}-{k}", "ruleset": "dealership-cs", "form": "sales",
                      "period": month, "subject": f"sc-{rnd.randrange(consultants):03d}", "rater": f"cust-{n}",
                      "answers": answers if status == "completed" else {}}
            else:
                answers = {q: rnd.choices(DEALER_LEVELS, weights)[0] for q in ("q1", "q2", "q3", "q4", "q5", "q6")}
                jobs = rnd.sample(range(bays), rnd.choice((1, 1, 2)))
                ev = {"type": "response", "id": f"cb-{month}-{k}", "ruleset": "dealership-cs", "form": "service",
                      "period": month, "subject": f"sa-{rnd.randrange(advisors):02d}", "rater": f"cust-{n}",
                      "roles": {"workshop": [f"bay-{j}" for j in jobs]},
                      "answers": answers if status == "completed" else {}}
            if status != "completed":
                ev["status"] = status
            yield ev


SUPPLIER_KINDS = ("ic", "pcb", "consumables")


def supplier(responses: int = 10_000, *, suppliers: int = 60, seed: int = 19) -> Iterator[dict[str, Any]]:
    """Suppliers rated monthly on four dimensions (quality by two departments), with complaints
    and rectifications, some late."""
    rnd = random.Random(seed)
    for s in range(suppliers):
        yield {"type": "unit", "id": f"sup-{s:02d}", "kind": SUPPLIER_KINDS[s % 3]}
    per_month = suppliers * 5
    n = 0
    for month in months(2024, max(1, -(-responses // per_month))):
        for s in range(suppliers):
            sup = f"sup-{s:02d}"
            forms = [("quality", "qa"), ("quality", "rd"), ("delivery", "pmc"), ("service", "qa"), ("price", "fin")]
            for form, rater in forms:
                if n >= responses:
                    return
                n += 1
                if form == "quality":
                    total_lots = rnd.randint(0, 40)
                    answers = {"lots_total": total_lots, "lots_passed": total_lots - rnd.choice((0, 0, 0, 1)) * (total_lots > 0),
                               "concessions": rnd.choice((0, 0, 1)), "defect_rate": round(rnd.uniform(0, 1.5), 2),
                               "defect_limit": 1.0}
                elif form == "delivery":
                    answers = {"late_deliveries": rnd.choice((0, 0, 0, 1, 2))}
                elif form == "service":
                    answers = {"poor_cooperation": rnd.choice((0, 0, 1)), "late_replies": rnd.choice((0, 0, 1))}
                else:
                    answers = {"late_adjustments": rnd.choice((0, 0, 1)), "price_gap": round(rnd.uniform(0, 4), 1),
                               "invoice_issues": rnd.choice((0, 0, 1))}
                yield {"type": "response", "id": f"sr-{month}-{sup}-{form}-{rater}", "ruleset": "supplier-400",
                       "period": month, "subject": sup, "form": form, "rater": rater, "answers": answers}
            if rnd.random() < 0.1:
                cid = f"cmp-{month}-{sup}"
                yield {"type": "complaint", "id": cid, "subject": sup, "period": month, "text": "来料不良",
                       "severity": rnd.choice(("minor", "major"))}
                rid = f"rect-{month}-{sup}"
                yield {"type": "rectification", "id": rid, "subject": sup, "period": month, "issue": "8D",
                       "due": f"{month}-25", "complaint": cid}
                day = rnd.choice(("20", "24", "28"))
                yield {"type": "rectification_update", "id": f"{rid}-done", "rectification": rid,
                       "status": "completed", "date": f"{month}-{day}"}


#: Shares of a mixed data set, by rule set (events are mostly questionnaires and callbacks).
MIX = (("airline", 0.40), ("dealership", 0.40), ("plant", 0.08), ("iso", 0.07), ("supplier", 0.05))
GENERATORS = {"airline": airline, "plant": plant, "iso": iso, "dealership": dealership, "supplier": supplier}


def report_year() -> list[dict[str, Any]]:
    """A year of 50 subjects in each of the five rule sets: what a group's annual report shows."""
    return [*airline(7200, departments=50, raters=6, managers=2, corrections=0, withdrawals=0),
            *plant(7200, departments=50, workshops=12), *iso(6000, subjects=50, per_month=500),
            *dealership(6000, consultants=40, advisors=8, bays=2), *supplier(2400, suppliers=50)]


def mixed(events: int, seed: int = 7) -> Iterator[dict[str, Any]]:
    """About ``events`` events over every built-in rule set, in the shares of :data:`MIX`."""
    for name, share in MIX:
        yield from GENERATORS[name](max(1, int(events * share)), seed=seed)


def write_jsonl(events: Iterator[dict[str, Any]], out: Any) -> int:
    count = 0
    for ev in events:
        out.write(json.dumps(ev, ensure_ascii=False))
        out.write("\n")
        count += 1
    return count


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kind", choices=[*GENERATORS, "mixed"])
    ap.add_argument("--responses", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    gen = mixed if args.kind == "mixed" else GENERATORS[args.kind]
    write_jsonl(gen(args.responses, seed=args.seed), sys.stdout)


if __name__ == "__main__":
    main()
