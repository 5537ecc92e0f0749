"""Shared fixtures: a real store — a SQLite file in a temporary folder, and a database on a real
PostgreSQL server started for the session (tests/pgserver.py) — the real CLI, the spec's worked
examples (copied into tests/examples, so a fresh clone tests itself).

``db`` (and ``cli``, ``engine`` on it) runs each test on both backends. A test that inspects the
SQLite file itself is marked ``sqlite_only``. Outside CI, the PostgreSQL runs are skipped with the
reason when no server can be started here; in CI (``CI`` set) that is an error."""
from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "tests" / "examples"
sys.path.insert(0, str(ROOT / "bench"))

os.environ["CSAT_NO_ENTRY_POINTS"] = "1"  # tests see the built-ins only, whatever else is installed


BACKENDS = ("sqlite", "postgresql")


def pytest_configure(config):
    config.addinivalue_line("markers", "sqlite_only(why): the test looks inside the SQLite file itself")


@pytest.fixture(scope="session")
def pg_server():
    from pgserver import Server
    try:
        server = Server()
    except Exception as e:  # noqa: BLE001 - any reason the server cannot start
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no PostgreSQL server could be started here: {e}")
    yield server
    server.stop()


@pytest.fixture
def pg_url(pg_server) -> str:
    """A fresh, empty database on the session's PostgreSQL server."""
    return pg_server.database()


@pytest.fixture(params=BACKENDS)
def db(request, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "csat.db")
    marker = request.node.get_closest_marker("sqlite_only")
    if marker is not None:
        pytest.skip(f"SQLite only: {marker.args[0] if marker.args else 'looks inside the SQLite file'}")
    return request.getfixturevalue("pg_url")


@pytest.fixture
def fresh_db(request, db: str, tmp_path: Path):
    """More fresh stores on ``db``'s backend: ``fresh_db(name)`` returns a new target."""
    if db.startswith("postgresql://"):
        server = request.getfixturevalue("pg_server")
        return lambda name: server.database()
    return lambda name: str(tmp_path / f"{name}.db")


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


@contextlib.contextmanager
def connect(db: str, timeout: float = 5.0):
    """A plain connection to a store of either backend, for a test to look at (or edit by hand)
    its tables: ``conn.execute(sql, args)`` in SQLite's dialect; committed at the end."""
    if str(db).startswith("postgresql://"):
        from csat.engine.log.postgres import PgConnection
        conn = PgConnection(str(db), timeout)
        try:
            conn.raw.execute("BEGIN")
            yield conn
            conn.raw.execute("COMMIT")
        finally:
            conn.close()
    else:
        conn = sqlite3.connect(db, timeout=timeout)
        try:
            with conn:
                yield conn
        finally:
            conn.close()


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
