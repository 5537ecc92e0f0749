"""The worked examples of the spec score exactly as their expected files say."""
from __future__ import annotations

import pytest

from conftest import EXAMPLES, ROOT, assert_rows_match, expected_rows

from csat.plugins import installed_rulesets, make_plugin_manager

INSTALLED = {i.ruleset.id for i in installed_rulesets(make_plugin_manager())}
NAMES = sorted(p.name.removesuffix(".jsonl") for p in EXAMPLES.glob("*.jsonl"))


def test_the_spec_examples_are_there():
    assert "airline-1000" in NAMES, f"no worked examples found in {EXAMPLES}"


@pytest.mark.parametrize("name", [n for n in NAMES if n in INSTALLED])
def test_example_through_the_cli(cli, name):
    out = cli("ingest", str(EXAMPLES / f"{name}.jsonl"))
    assert "appended" in out.stdout
    assert_rows_match(cli.json("scores"), expected_rows(name))


@pytest.mark.parametrize("name", [n for n in NAMES if n in INSTALLED])
def test_example_through_the_api(engine, name):
    engine.ingest([EXAMPLES / f"{name}.jsonl"])
    assert_rows_match(engine.scores(), expected_rows(name))


@pytest.mark.parametrize("name", [n for n in NAMES if (ROOT / "rulesets" / "examples" / f"{n}.jsonl").exists()])
def test_bundled_demo_copy_is_the_spec_example(name):
    bundled = ROOT / "rulesets" / "examples" / f"{name}.jsonl"
    assert bundled.read_bytes() == (EXAMPLES / f"{name}.jsonl").read_bytes()
