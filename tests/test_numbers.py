"""Decimal primitives (engine/numbers.py): sums and means do not depend on the order of their terms."""
from __future__ import annotations

import random
from decimal import Decimal

from csat.engine.numbers import div, mean, total


def test_a_total_and_a_mean_are_the_same_in_any_order():
    # questionnaire scores like 2400/7: 34 significant digits each, of different magnitudes, whose
    # running sum needs rounding — summed left to right in 34 digits, the order changed the last digit
    values = [div(Decimal(i * 37 % 1000), Decimal(7)) for i in range(1, 400)]
    values += [div(Decimal(1), Decimal(3 ** k)) for k in range(1, 30)]
    rng = random.Random(5)
    totals, means = set(), set()
    for _ in range(50):
        rng.shuffle(values)
        totals.add(total(values))
        means.add(mean(values))
    assert len(totals) == 1 and len(means) == 1

