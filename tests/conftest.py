"""Shared fixtures: a real SQLite store in a temporary folder, the real CLI, the spec's worked examples
(copied into tests/examples, so a fresh clone tests itself)."""
from __future__ import annotations

import json
import os
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "tests" / "examples"
sys.path.insert(0, str(ROOT / "bench"))

os.environ["CSAT_NO_ENTRY_POINTS"] = "1"  # tests see the built-ins only, whatever else is installed


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "csat.db")


class Cli:
    def __init__(self, db: str):
        from csat.cli.main import cli
        self.group = cli
        self.db = db
        self.runner = CliRunner()

    def __call__(self, *args: str, expect: int | None = 0):
        result = self.runner.invoke(self.group, ["--db", self.db, *args], catch_exceptions=False)
        if expect is not None:
            assert result.exit_code == expect, (result.exit_code, result.stdout, result.stderr)
        return result

    def json(self, *args: str):
        return json.loads(self(*args, "--format", "json").stdout, parse_float=Decimal)


@pytest.fixture
def cli(db: str) -> Cli:
    return Cli(db)


@pytest.fixture
def engine(db: str):
    from csat.engine import Engine
    with Engine.open(db) as e:
        yield e


def write_jsonl(path: Path, events: list[dict]) -> str:
    path.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events), encoding="utf-8")
    return str(path)


def expected_rows(name: str) -> list[dict]:
    return json.loads((EXAMPLES / f"{name}.expected.json").read_text(encoding="utf-8"), parse_float=Decimal)


def assert_rows_match(actual: list[dict], expected: list[dict]) -> None:
    """Every expected row present with equal figures (decimals compared exactly), and no other row."""
    key = lambda r: (r["ruleset"], r["period"], r["subject"], r["metric"])  # noqa: E731
    got = {key(r): r for r in actual}
    assert sorted(got) == sorted(key(r) for r in expected)
    for e in expected:
        a = got[key(e)]
        for k, v in e.items():
            if isinstance(v, (int, Decimal)) and not isinstance(v, bool):
                assert Decimal(str(a[k])) == Decimal(str(v)), (key(e), k, a[k], v)
            else:
                assert a[k] == v, (key(e), k, a[k], v)
