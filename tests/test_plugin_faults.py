"""Plugins in many hands (events.md §6): a plugin that fails to load is skipped with one line and
listed as broken; a rule set that is not installed keeps its published scores through any number of
reads and catch-ups, refuses corrections and rebuilds, and comes back exactly when reinstalled.

Plugins are real distributions found through the ``csat`` entry-point group: a ``.dist-info``
folder on PYTHONPATH, which is what pip installs, without the minutes pip takes.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest

from conftest import EXAMPLES, ROOT, write_jsonl

CALLCENTRE = ROOT / "examples" / "csat-callcentre"
CC_EXAMPLE = CALLCENTRE / "csat_callcentre" / "examples" / "callcentre-5.jsonl"


def distribution(site: Path, name: str, version: str, entry_points: dict[str, str],
                 modules: dict[str, str] | None = None) -> None:
    """An installed distribution: its metadata, its ``csat`` entry points, its modules."""
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(
        "[csat]\n" + "".join(f"{k} = {v}\n" for k, v in entry_points.items()), encoding="utf-8")
    for module, source in (modules or {}).items():
        (site / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")


class Csat:
    """The real `csat` command in a subprocess, with the given folders on PYTHONPATH."""

    def __init__(self, db: Path, *paths: Path):
        self.db = db
        self.env = {k: v for k, v in os.environ.items() if k != "CSAT_NO_ENTRY_POINTS"}
        self.env["PYTHONPATH"] = os.pathsep.join(map(str, paths))

    def __call__(self, *args: str, plugins: bool = True, expect: int | None = 0) -> subprocess.CompletedProcess:
        env = dict(self.env, **({} if plugins else {"CSAT_NO_ENTRY_POINTS": "1"}))
        r = subprocess.run([sys.executable, "-m", "csat.cli.main", "--db", str(self.db), *args],
                           capture_output=True, text=True, env=env, timeout=120)
        assert "Traceback" not in r.stderr, r.stderr
        if expect is not None:
            assert r.returncode == expect, (r.returncode, r.stdout[-1500:], r.stderr[-1500:])
        return r

    def scores(self, *args: str, plugins: bool = True) -> list[dict]:
        return json.loads(self("scores", "--format", "json", *args, plugins=plugins).stdout, parse_float=Decimal)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    folder = tmp_path / "site"
    folder.mkdir()
    distribution(folder, "csat-callcentre", "0.1.0", {"callcentre": "csat_callcentre.plugin"})
    return folder


BROKEN = {
    "import": ("csat-broken-import", {"bad": "broken_import"},
               {"broken_import": "raise ImportError('no module named company_secrets')"},
               "cannot be imported: ImportError: no module named company_secrets"),
    "signature": ("csat-broken-signature", {"sig": "broken_signature"}, {"broken_signature": """
        from csat.plugins import hookimpl

        @hookimpl
        def csat_rulesets(config):
            return []
        """}, "does not match csat's hooks"),
    "raises": ("csat-broken-raises", {"raises": "broken_raises"}, {"broken_raises": """
        from csat.plugins import hookimpl

        @hookimpl
        def csat_rulesets():
            return {}["licence"]
        """}, "csat_rulesets raised KeyError"),
    "duplicate": ("csat-broken-duplicate", {"dup": "broken_duplicate"}, {"broken_duplicate": """
        from csat.plugins import hookimpl
        from csat.rulesets.iso_100 import Iso100

        @hookimpl
        def csat_rulesets():
            return [Iso100()]
        """}, "rule set id 'iso-100' is already provided by csat.rulesets.iso_100 (built in)"),
}


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_a_broken_plugin_is_skipped_in_one_line_and_listed(tmp_path, site, kind):
    name, eps, modules, reason = BROKEN[kind]
    distribution(site, name, "0.3", eps, modules)
    csat = Csat(tmp_path / "s.db", site, CALLCENTRE)
    r = csat("rulesets", "--format", "json")
    listed = json.loads(r.stdout)
    assert {x["id"] for x in listed if x["status"] == "ok"} == {
        "airline-1000", "callcentre-5", "dealership-cs", "iso-100", "plant-50", "supplier-400"}
    (broken,) = [x for x in listed if x["status"] == "broken"]
    assert broken["source"] == f"{name} 0.3" and reason in broken["reason"]
    (line,) = r.stderr.splitlines()
    assert line.startswith(f"csat: warning: plugin {next(iter(eps))} ({name} 0.3) skipped: ") and reason in line
    # every other rule set keeps working, from the same installation
    csat("ingest", str(EXAMPLES / "iso-100.jsonl"), str(CC_EXAMPLE))
    rows = csat.scores()
    assert {r["ruleset"] for r in rows} == {"iso-100", "callcentre-5"}
    assert "csat rulesets" not in r.stderr and r.stderr.count("\n") == 1


def test_a_rule_set_that_returns_a_float_fails_in_one_line_and_never_stops_the_others(tmp_path, site):
    distribution(site, "csat-floaty", "1.0", {"floaty": "floaty"}, {"floaty": """
        from csat.plugins import hookimpl
        from csat.engine.ruleset import Figure
        from csat_callcentre.plugin import CallCentre5

        class Floaty(CallCentre5):
            id = "floaty-5"

            def score_month(self, month, trace):
                return [Figure("rating", 4.5, len(month.counted))]

        @hookimpl
        def csat_rulesets():
            return [Floaty()]
        """})
    csat = Csat(tmp_path / "s.db", site, CALLCENTRE)
    floaty = [json.loads(line) for line in CC_EXAMPLE.read_text(encoding="utf-8").splitlines()]
    for e in floaty:
        e["id"] = "f-" + e["id"]
        if e["type"] == "response":
            e["ruleset"] = "floaty-5"
        if "response" in e:
            e["response"] = "f-" + e["response"]
    r = csat("ingest", str(EXAMPLES / "airline-1000.jsonl"), write_jsonl(tmp_path / "f.jsonl", floaty))
    assert "appended" in r.stdout
    warned = [line for line in r.stderr.splitlines() if line.startswith("csat: warning: rule set floaty-5")]
    assert warned and all("score: expected a Decimal or None, got float 4.5" in w for w in warned)
    assert "scoring agent-07 2026-04" in r.stderr
    rows = csat.scores()
    assert {r["ruleset"] for r in rows} == {"airline-1000"} and rows
    x = csat("explain", "-r", "floaty-5", "-s", "agent-07", "-p", "2026-04", expect=1)
    assert x.stderr.startswith("csat: rule set floaty-5: explaining agent-07 2026-04: figure rating: score: "
                               "expected a Decimal or None, got float 4.5")


def test_a_rule_set_that_is_not_installed_keeps_its_scores(tmp_path, site):
    db = tmp_path / "s.db"
    csat = Csat(db, site, CALLCENTRE)
    csat("ingest", str(CC_EXAMPLE), str(EXAMPLES / "iso-100.jsonl"))
    published = csat.scores()
    mine = [r for r in published if r["ruleset"] == "callcentre-5"]
    assert mine

    # disabled: any number of reads and catch-ups, with events of other rule sets and units arriving
    for _ in range(2):
        r = csat("scores", "--format", "json", plugins=False)
        assert json.loads(r.stdout, parse_float=Decimal) == published
        (warning,) = r.stderr.splitlines()
        assert warning.startswith("csat: warning: ") and "callcentre-5 (" in warning and "kept" in warning
    more = write_jsonl(tmp_path / "more.jsonl", [
        {"type": "unit", "id": "agent-07", "name": "王芳", "parent": "team-a"},
        {"type": "response", "id": "iso-extra", "ruleset": "iso-100", "period": "2026-03", "subject": "acme",
         "answers": {"quality": 30, "delivery": 20, "service": 15, "after_sales": 20, "price": 15}}])
    csat("ingest", more, plugins=False)
    after = csat.scores(plugins=False)
    unnamed = lambda rows: [{k: v for k, v in r.items() if k != "subject_name"} for r in rows]  # noqa: E731
    assert unnamed(r for r in after if r["ruleset"] == "callcentre-5") == unnamed(mine)
    assert {r["subject_name"] for r in after if r["subject"] == "agent-07"} == {"王芳"}  # the org chart names it now

    # its responses cannot be corrected or withdrawn unchecked, and a rebuild refuses
    fix = write_jsonl(tmp_path / "fix.jsonl", [{"type": "correction", "id": "c1", "response": "ob-agent-07-1",
                                               "answers": {"rating": 9}, "reason": "typo"}])
    r = csat("ingest", fix, plugins=False, expect=1)
    assert "belongs to rule set 'callcentre-5', which is not installed" in r.stderr
    r = csat("rebuild", plugins=False, expect=1)
    assert "rebuild refused" in r.stderr and "callcentre-5" in r.stderr
    assert unnamed(r for r in csat.scores(plugins=False) if r["ruleset"] == "callcentre-5") == unnamed(mine)

    # events of it appended meanwhile by a site that has it are parked, and scored once it is back
    late = [json.loads(line) for line in CC_EXAMPLE.read_text(encoding="utf-8").splitlines()][:2]
    for e in late:
        e.update(id="late-" + e["id"], period="2026-06")
    late_file = write_jsonl(tmp_path / "late.jsonl", late)
    from csat.engine import Engine
    from csat.plugins import installed_rulesets, make_plugin_manager
    sys.path.insert(0, str(CALLCENTRE))
    try:
        import csat_callcentre.plugin as cc
        everything = [i.ruleset for i in installed_rulesets(make_plugin_manager(entry_points=False))] + \
            cc.csat_rulesets()
        with Engine.open(db, rulesets=everything) as site_with_it:
            site_with_it.append([json.loads(line) for line in Path(late_file).read_text().splitlines()])
        assert unnamed(r for r in csat.scores(plugins=False) if r["ruleset"] == "callcentre-5") == unnamed(mine)
        back = csat.scores()
        # the same as a store that always had it
        clean = Csat(tmp_path / "clean.db", site, CALLCENTRE)
        clean("ingest", str(CC_EXAMPLE), str(EXAMPLES / "iso-100.jsonl"))
        clean("ingest", more)
        clean("ingest", late_file)
        assert back == clean.scores()
        assert ("2026-06", "agent-07") in {(r["period"], r["subject"]) for r in back if r["ruleset"] == "callcentre-5"}
        r = csat("scores")
        assert "warning" not in r.stderr
    finally:
        sys.path.remove(str(CALLCENTRE))


def test_demo_leaves_out_a_plugin_whose_demo_hook_fails(tmp_path, site):
    distribution(site, "csat-bad-demo", "1.0", {"baddemo": "bad_demo"}, {"bad_demo": """
        from csat.plugins import hookimpl

        @hookimpl
        def csat_rulesets():
            return []

        @hookimpl
        def csat_demo_files():
            raise RuntimeError("examples not shipped")
        """})
    csat = Csat(tmp_path / "demo.db", site, CALLCENTRE)
    r = csat("demo")
    assert "plugin baddemo: csat_demo_files raised RuntimeError: examples not shipped; left out" in r.stderr
    assert "callcentre-5" in r.stdout and "airline-1000" in r.stdout


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_rebuild_refuses_while_a_rule_set_fails_scoring(tmp_path, jobs):
    """A rebuild would drop the published rows of a subject-month its rule set cannot score now —
    in this process or in a scoring process (``jobs``), the same one line."""
    from csat.engine import Engine
    from csat.engine.errors import StoreError
    from csat.plugins import installed_rulesets, make_plugin_manager
    sys.path.insert(0, str(CALLCENTRE))
    try:
        import csat_callcentre.plugin as cc
        builtins = [i.ruleset for i in installed_rulesets(make_plugin_manager(entry_points=False))]
        db = tmp_path / "r.db"
        with Engine.open(db, rulesets=builtins + [cc.CallCentre5()]) as good:
            good.ingest([CC_EXAMPLE])
            published = good.scores()

        class Failing(cc.CallCentre5):
            def score_month(self, month, trace):
                raise ZeroDivisionError("licence server unreachable")
        with Engine.open(db, rulesets=builtins + [Failing()]) as bad:
            with pytest.raises(StoreError, match=r"rebuild refused: rule set callcentre-5: scoring agent-\d+ "
                                                 r"2026-\d\d: raised ZeroDivisionError: licence server unreachable"):
                bad.rebuild(jobs=jobs)
            assert bad.scores() == published
    finally:
        sys.path.remove(str(CALLCENTRE))
