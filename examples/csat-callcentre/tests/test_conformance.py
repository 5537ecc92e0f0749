"""The plugin passes csat's conformance kit, and its example scores as the method says."""
from decimal import Decimal
from pathlib import Path

import csat_callcentre.plugin as plugin
from csat.engine import Engine
from csat.plugins.testing import check_plugin

EXAMPLE = Path(plugin.__file__).parent / "examples" / "callcentre-5.jsonl"


def test_conforms(tmp_path):
    (rs,) = check_plugin(plugin, examples=[EXAMPLE], tmp_path=tmp_path)
    assert rs.id == "callcentre-5"


def test_monthly_rating_is_the_mean_of_ratings(tmp_path):
    with Engine.open(tmp_path / "cc.db", rulesets=[plugin.CallCentre5()]) as engine:
        engine.ingest([EXAMPLE])
        rows = {(r["period"], r["subject"]): r for r in engine.scores()}
    # agent-07 in April: 5, (5 withdrawn), 4 → 4.5; May: 5, 3, 满意 (4) → 4
    assert rows[("2026-04", "agent-07")]["score"] == Decimal("4.50")
    assert rows[("2026-05", "agent-07")]["score"] == Decimal("4.00")
    assert rows[("2026-Q2", "agent-07")]["score"] == Decimal("4.20")  # (5 + 4 + 5 + 3 + 4) / 5
