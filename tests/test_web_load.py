"""The web front's load drill, bounded (issue 24): raters submitting at once against `csat serve`
in its own process(es), on SQLite and on PostgreSQL — nothing lost, nothing twice, no 5xx. The
latency figures are the benchmark's (bench/bench_web.py, 200 raters), never asserted here."""
from __future__ import annotations

import pytest

import bench_web


@pytest.mark.parametrize("workers", [1, 2])
def test_raters_submitting_at_once_lose_nothing_and_double_nothing(db, workers):
    out = bench_web.run(db, 60 if workers == 1 else 40, workers=workers)  # one in ten submits twice
    assert out["5xx"] == 0, out
    assert out["answered"] == out["expected"] == out["responses_logged"] == out["raters"] * 2, out
