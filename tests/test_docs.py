"""The figures the docs quote are the engine's."""
from __future__ import annotations

from decimal import Decimal

from conftest import ROOT


def test_supplier_worked_example(engine):
    engine.ingest([ROOT / "rulesets" / "examples" / "supplier-demo.jsonl"])
    rows = {r["metric"]: r for r in engine.scores(ruleset="supplier-400", subject="sup-aux", period="2026-03")}
    assert {m: rows[m]["score"] for m in rows} == {"quality": Decimal("25.00"), "delivery": Decimal("25.00"),
                                                   "service": Decimal("50.00"), "price": Decimal("45.00"),
                                                   "composite": Decimal("40.00")}
    q = rows["quality"]
    assert (q["iqc"], q["defect"], q["complaint"], q["complaints"]) == (0, 10, 15, ["cmp-aux-03"])
    s = rows["service"]
    assert (s["cooperation"], s["rectification"], s["replies"], s["rectifications"]) == (10, 40, 0, ["rect-aux-03"])
    c = rows["composite"]
    assert (c["grade"], c["grade_label"], c["status"], c["category"]) == ("C", "黄", "disqualified", "consumables")
    earlier = [engine.scores(ruleset="supplier-400", subject="sup-aux", period=m, metric="composite")[0]
               for m in ("2026-01", "2026-02", "2026-04")]
    assert [(r["score"], r["status"]) for r in earlier] == [(Decimal("50.00"), "qualified"),
                                                            (Decimal("47.50"), "qualified"),
                                                            (Decimal("41.00"), "disqualified")]
    doc = (ROOT / "docs" / "supplier-400.md").read_text(encoding="utf-8")
    for figure in ("= 400 / 10 = 40.00", "January (50.00) and February (47.50)", "100 − 10 × 2 − 30 − 5 × 1 = 45"):
        assert figure in doc


def test_the_api_reference_is_generated_from_the_docstrings_and_current():
    """docs/api.md documents every public method of Engine (issue 20.19): run docs/gen_api.py after
    changing a docstring."""
    import sys
    sys.path.insert(0, str(ROOT / "docs"))
    import gen_api
    from csat.engine import Engine
    assert (ROOT / "docs" / "api.md").read_text(encoding="utf-8") == gen_api.render()
    public = [n for n in dir(Engine) if not n.startswith("_") and callable(getattr(Engine, n))]
    text = gen_api.render()
    assert len(public) >= 25 and all(f"Engine.{n}(" in text for n in public), public
    assert "(undocumented)" not in text


def _python_blocks(text: str) -> list[str]:
    import re
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_every_example_of_the_embedding_guides_runs(tmp_path):
    """docs/api.md's guides (docs/embedding/*.md: a web service, pandas, following changes, async
    code) are runnable as they stand: each python block runs in a fresh interpreter, in order."""
    import subprocess
    import sys
    sys.path.insert(0, str(ROOT / "docs"))
    import gen_api
    blocks = [b for text in gen_api.guides() for b in _python_blocks(text)]
    assert len(blocks) >= 4
    for n, block in enumerate(blocks):
        script = tmp_path / f"example_{n}.py"
        script.write_text(block, encoding="utf-8")
        done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, (n, block[:200], done.stderr[-2000:])
