"""Synthetic, realistic event streams for benchmarks and tests (deterministic by seed).

airline-1000: departments × rating units × managers × months of questionnaires,
with D/E grades carrying reasons, a department-weights adoption, and a sprinkle
of corrections and withdrawals — the shape a real assessment office produces.

    python bench/synth.py airline --responses 100000 > airline.jsonl
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


def write_jsonl(events: Iterator[dict[str, Any]], out: Any) -> int:
    count = 0
    for ev in events:
        out.write(json.dumps(ev, ensure_ascii=False))
        out.write("\n")
        count += 1
    return count


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kind", choices=["airline"])
    ap.add_argument("--responses", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    write_jsonl(airline(args.responses, seed=args.seed), sys.stdout)


if __name__ == "__main__":
    main()
