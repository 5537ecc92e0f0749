"""Write docs/api.md, the embedding API's reference, from the docstrings of the public names.

    .venv/bin/python docs/gen_api.py        # tests/test_docs.py checks the file is current

The guides come from docs/embedding/ (:data:`GUIDES`). Public: every method of :class:`csat.engine.Engine` (and the mixin it inherits) whose name does
not start with ``_``, the names ``csat.engine`` exports, and the plugin contract's types.
"""
from __future__ import annotations

import inspect
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent / "api.md"
#: the guides, written by hand (each a ``## `` section with runnable ``python`` blocks, which
#: tests/test_docs.py runs), put before the reference in this order
GUIDES = ("web-service.md", "pandas.md", "changes.md")
GUIDE_DIR = Path(__file__).resolve().parent / "embedding"


def guides() -> list[str]:
    return [(GUIDE_DIR / name).read_text(encoding="utf-8").rstrip() + "\n" for name in GUIDES]


def _doc(obj: object) -> str:
    return inspect.cleandoc(inspect.getdoc(obj) or "(undocumented)")


def _signature(name: str, fn: object) -> str:
    try:
        sig = str(inspect.signature(fn))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        sig = "(…)"
    return f"{name}{sig}".replace("(self, ", "(").replace("(self)", "()").replace("'", "")


def render() -> str:
    import csat.engine as engine
    from csat.engine import ruleset
    from csat.engine.app.api import Engine
    lines = ["# The embedding API (generated from the docstrings by `docs/gen_api.py`)", "",
             "`from csat.engine import Engine` is all an application needs; the command line and the web "
             "front use nothing else. Errors derive from `csat.engine.CsatError`.", "",
             "Guides first (each example runs as it stands: the test suite runs them), then the reference.", ""]
    for text in guides():
        lines += [text]
    lines += ["## `Engine`", "", _doc(Engine), ""]
    members = {n: m for n, m in inspect.getmembers(Engine) if not n.startswith("_")}
    for name in sorted(members):
        m = members[name]
        if isinstance(m, property):
            continue
        kind = "classmethod " if isinstance(inspect.getattr_static(Engine, name), classmethod) else ""
        lines += [f"### `{kind}Engine.{_signature(name, m)}`", "", _doc(m), ""]
    lines += ["## Attributes", "",
              "- `Engine.store` — the opened store; `Engine.projection` — the read models' projection "
              "(internal: their methods may change between versions).",
              "- `Engine.rulesets` — `{id: RuleSet}` in use; `Engine.broken` — one line per plugin that "
              "failed to load.",
              "- `Engine.unscored` — `(events, subject-months)` the last read did not reflect because another "
              "process held the write lock; `Engine.damaged` — the `LogDamaged` a read met, or None.", "",
              "## Exported names (`csat.engine`)", ""]
    for name in engine.__all__:
        obj = getattr(engine, name)
        lines += [f"### `{name}`", "", _doc(obj), ""]
    lines += ["## The rule-set contract (`csat.engine.ruleset`)", "",
              "The plugin guide (docs/writing-a-ruleset.md) walks through it; each type's reference:", ""]
    for name in ("RuleSet", "MonthInput", "Counted", "Excluded", "CaseEvent", "Figure", "Credit", "Trace",
                 "ItemPoints", "Questionnaire", "QuestionItem", "Choice", "Adoption", "ResponseState", "Problem"):
        lines += [f"### `{name}`", "", _doc(getattr(ruleset, name)), ""]
    rs = ruleset.RuleSet
    for name, m in sorted(vars(rs).items()):
        if callable(m) and not name.startswith("_"):
            lines += [f"#### `RuleSet.{_signature(name, m)}`", "", _doc(m), ""]
    lines += ["### Helpers a rule set imports", ""]
    for name in ("answers_key", "mean_of_months", "first_grade", "threshold_problems", "module_file"):
        lines += [f"#### `{_signature(name, getattr(ruleset, name))}`", "", _doc(getattr(ruleset, name)), ""]
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    OUT.write_text(render(), encoding="utf-8")
    print(f"wrote {OUT}", file=sys.stderr)
