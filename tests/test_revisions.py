"""Policy revisions as a quality office makes them (events.md §2 adoption, §3 adopt / whatif / --as-of):
a revision changes what it names relative to the policy in force, can remove tables, can be previewed
from its month, and any past figure can be explained as it was published."""
from __future__ import annotations

import json
import sys
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from conftest import EXAMPLES, ROOT, write_jsonl

from csat.engine import Engine
from csat.plugins import installed_rulesets, make_plugin_manager

PLANT = EXAMPLES / "plant-50.jsonl"
EXAMPLE_OF = {"airline-1000": EXAMPLES / "airline-1000.jsonl", "plant-50": PLANT, "iso-100": EXAMPLES / "iso-100.jsonl",
              "dealership-cs": EXAMPLES / "dealership-cs.jsonl",
              "supplier-400": ROOT / "rulesets" / "examples" / "supplier-demo.jsonl"}
CHANGE_OF = {  # one revision per rule set
    "airline-1000": "[grades.B]\npoints = 750\nlabel = \"良好\"\n",
    "plant-50": "[bonus]\npoints = 2\n",
    "iso-100": "[[grades]]\nid = \"A\"\nlabel = \"甲\"\nmin = 92\n[[grades]]\nid = \"D\"\nlabel = \"丁\"\nmin = 0\n",
    "dealership-cs": "[levels.basic]\npoints = 70\n",
    "supplier-400": "[delivery]\nper_late_delivery = 20\n",
}


def is_month(period: str) -> bool:
    return len(period) == 7 and "Q" not in period


def toml(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def adoptions(cli) -> dict[str, dict]:
    return {r["id"]: r["event"] for r in cli.json("log", "--type", "adoption")}


def test_a_revision_changes_what_it_names_over_the_policy_in_force(cli, tmp_path):
    cli("ingest", str(PLANT))
    a = toml(tmp_path, "coefficients.toml", "[[coefficients]]\nmax_workshops = 5\nvalue = 0.8\n"
                                            "[[coefficients]]\nvalue = 1.2\n")
    b = toml(tmp_path, "bonus.toml", "[bonus]\npoints = 2\n")
    cli("adopt", a, "-r", "plant-50", "--from", "2026-02", "--id", "A")
    cli("adopt", b, "-r", "plant-50", "--from", "2026-03", "--id", "B")
    stored = adoptions(cli)
    assert stored["B"]["params"]["coefficients"] == stored["A"]["params"]["coefficients"]  # A's stay in force
    assert str(stored["B"]["params"]["bonus"]["points"]) == "2" and str(stored["A"]["params"]["bonus"]["points"]) == "3"
    assert stored["B"]["params_version"] == 1
    # the March figure is A's coefficients with B's bonus, and says so
    x = cli.json("explain", "-r", "plant-50", "-s", "purchasing", "-p", "2026-03", "-m", "service")
    assert x["adoption"] == "B"
    assert any("0.8" in str(s["value"]) or "0.8" in s["formula"] for s in x["steps"])


def test_replace_removes_what_the_table_leaves_out(cli, tmp_path):
    cli("ingest", str(EXAMPLES / "iso-100.jsonl"))
    items = toml(tmp_path, "items.toml", "[items.quality]\nmax = 60\nlabel = \"产品质量\"\n"
                                         "[items.delivery]\nmax = 40\nlabel = \"交付准时性\"\n")
    # merged over the shipped five items, two new maxima make 150 points: refused, naming the key
    r = cli("adopt", items, "-r", "iso-100", "--from", "2027-01", expect=1)
    assert "key `items`: the maxima must sum to 100, got 150" in r.stderr
    cli("adopt", items, "-r", "iso-100", "--from", "2027-01", "--id", "two-items", "--replace", "items")
    stored = adoptions(cli)["two-items"]
    assert set(stored["params"]["items"]) == {"quality", "delivery"} and stored["replace"] == ["items"]
    # a later revision merges over the two items in force
    cli("adopt", items, "-r", "iso-100", "--from", "2027-02", "--id", "merged")
    assert set(adoptions(cli)["merged"]["params"]["items"]) == {"quality", "delivery"}
    r = cli("adopt", items, "-r", "iso-100", "--from", "2027-03", "--replace", "grades.nope", expect=1)
    assert "replace `grades.nope`: expected a table given in the parameters" in r.stderr
    # new responses are checked against the items in force: a removed item is refused
    late = write_jsonl(tmp_path / "late.jsonl", [{"type": "response", "id": "late", "ruleset": "iso-100",
                                                  "period": "2027-01", "subject": "acme",
                                                  "answers": {"quality": 50, "delivery": 30, "service": 10}}])
    assert "answers.service" in cli("ingest", late, expect=1).stderr


@pytest.mark.parametrize("jobs", [1, 2])
@pytest.mark.parametrize("ruleset", sorted(CHANGE_OF))
def test_whatif_from_a_month_is_exactly_what_adopt_publishes(db, tmp_path, ruleset, jobs):
    path = toml(tmp_path, "change.toml", CHANGE_OF[ruleset])
    with Engine.open(db) as e:
        e.ingest([EXAMPLE_OF[ruleset]])
        months = sorted({r["period"] for r in e.scores(ruleset=ruleset) if is_month(r["period"])})
        month = months[len(months) // 2] if jobs == 1 else months[0]  # (several processes: every month)
        published = e.scores()
        rows = e.whatif(ruleset, path, from_=month, all=True, jobs=jobs)
        assert e.scores() == published  # nothing written
        e.adopt(path, ruleset=ruleset, from_=month, id="real")
        after = {(r["period"], r["subject"], r["metric"]): r for r in e.scores(ruleset=ruleset)}
    assert {(r["period"], r["subject"], r["metric"]): (r["after"], r["grade_after"]) for r in rows
            if r["after"] is not None} == {k: (r["score"], r["grade"]) for k, r in after.items()}
    assert all(r["before"] == r["after"] for r in rows if is_month(r["period"]) and r["period"] < month)


def test_explain_as_of_shows_the_figure_as_published_then(cli, tmp_path):
    cli("ingest", str(PLANT))
    end = cli.json("log", "--tail", "1")[0]["position"]
    cli("adopt", toml(tmp_path, "bonus.toml", "[[coefficients]]\nmax_workshops = 5\nvalue = 0.8\n"
                                              "[[coefficients]]\nvalue = 1.2\n"), "-r", "plant-50", "--from", "2026-01")
    cli("ingest", write_jsonl(tmp_path / "w.jsonl", [{"type": "withdrawal", "id": "wd", "reason": "duplicate",
                                                      "response": "plant-2026-03-purchasing-workshop-1"}]))
    args = ("-r", "plant-50", "-s", "purchasing", "-p", "2026-03", "-m", "service")
    then = cli.json("explain", *args, "--as-of", str(end))
    (published_then,) = cli.json("scores", "--as-of", str(end), "-r", "plant-50", "-s", "purchasing",
                                 "-p", "2026-03", "-m", "service")
    now = cli.json("explain", *args)
    assert then["score"] == published_then["score"] == Decimal("38.89") != now["score"]
    assert then["adoption"] == "default" and then["log_position"] == end
    assert max(e["position"] for e in then["events"]) <= end
    assert "wd" not in {e["id"] for e in then["events"]} and "wd" in {e["id"] for e in now["events"]}
    assert then["log_head"] == cli.json("verify", "--head", f"{end}:{then['log_head']}")["checked_head"].split(":", 1)[1]
    assert cli("explain", *args, "--as-of", "2026-02-30", expect=2)


def test_a_withdrawn_callback_counts_nowhere(cli, tmp_path):
    events = [{"type": "unit", "id": "sa1", "kind": "advisor"},
              {"type": "response", "id": "ok", "ruleset": "dealership-cs", "period": "2026-03", "subject": "sa1",
               "form": "service", "status": "refused", "answers": {}},
              {"type": "response", "id": "only", "ruleset": "dealership-cs", "period": "2026-04", "subject": "sa1",
               "form": "service", "status": "unreachable", "answers": {}}]
    cli("ingest", write_jsonl(tmp_path / "a.jsonl", events))
    rows = {(r["period"], r["metric"]): r for r in cli.json("scores", "-s", "sa1")}
    assert rows[("2026-03", "service_cs")]["failed"] == 1 and rows[("2026-04", "service_cs")]["failed"] == 1
    cli("ingest", write_jsonl(tmp_path / "w.jsonl", [
        {"type": "withdrawal", "id": "w1", "response": "ok", "reason": "wrong customer"},
        {"type": "withdrawal", "id": "w2", "response": "only", "reason": "test call"}]))
    assert [r for r in cli.json("scores", "-s", "sa1") if is_month(r["period"])] == []  # nothing left: no rows
    r = cli("explain", "-r", "dealership-cs", "-s", "sa1", "-p", "2026-04", "-m", "service_cs", expect=1)
    assert "every response for 'sa1' in 2026-04 was withdrawn: only" in r.stderr


def test_re_running_adopt_with_another_note_says_what_to_do(cli, tmp_path):
    cli("ingest", str(PLANT))
    path = toml(tmp_path, "bonus.toml", "[bonus]\npoints = 2\n")
    cli("adopt", path, "-r", "plant-50", "--from", "2026-03", "--note", "first")
    assert cli("adopt", path, "-r", "plant-50", "--from", "2026-03", "--note", "first").stdout.startswith("0 appended")
    r = cli("adopt", path, "-r", "plant-50", "--from", "2026-03", "--note", "second", expect=1)
    assert r.stderr.splitlines()[0] == (f"{path}: adoption 'bonus-2026-03' of plant-50 already exists with a different "
                                        "body (parameters, from or note): choose another id (csat adopt --id ID)")


# -- parameter upgrades -----------------------------------------------------------------------------

sys.path.insert(0, str(ROOT / "examples" / "csat-callcentre"))
import csat_callcentre.plugin as callcentre  # noqa: E402

CC_EXAMPLE = ROOT / "examples" / "csat-callcentre" / "csat_callcentre" / "examples" / "callcentre-5.jsonl"


class ParamsV2(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    scale: dict[str, int]            # v2: lowest/highest moved into a table
    labels: dict[str, int] = {}
    precision: int = 2
    late_answers: str = "count"      # kept from v1


class CallCentreV2(callcentre.CallCentre5):
    """callcentre-5 after its author restructured the parameters (version 2)."""

    params_type = ParamsV2
    params_version = 2

    def default_params(self):
        return {"scale": {"lowest": 1, "highest": 5}, "labels": {"满意": 4}, "precision": 2}

    def upgrade_params(self, data, from_version):
        assert from_version == 1
        data = dict(data)
        data["scale"] = {"lowest": data.pop("lowest"), "highest": data.pop("highest")}
        return data

    def check_params(self, params):
        return []

    def rating(self, answer, params):
        lo, hi = params.scale["lowest"], params.scale["highest"]
        if isinstance(answer, str):
            return params.labels.get(answer)
        return answer if isinstance(answer, int) and lo <= answer <= hi else None

    def check_response(self, response, params):
        return []

    def score_month(self, month, trace):
        counts = {n: 0 for n in range(params_range(month.params)[0], params_range(month.params)[1] + 1)}
        for c in month.counted:
            counts[self.rating(c.response.answers["rating"], month.params)] += 1
        return [self._figure(counts, month.params, trace)] if any(counts.values()) else []

    def roll_up(self, period, metric, months, params, trace):
        return None


def params_range(params):
    return params.scale["lowest"], params.scale["highest"]


def builtins():
    return [i.ruleset for i in installed_rulesets(make_plugin_manager(entry_points=False))]


def test_adoptions_of_an_older_parameter_version_are_upgraded_on_reading(db):
    with Engine.open(db, rulesets=builtins() + [callcentre.CallCentre5()]) as v1:
        v1.ingest([CC_EXAMPLE])
        before = {(r["period"], r["subject"]): r["score"] for r in v1.scores() if is_month(r["period"])}
        stored = next(v1.log(type="adoption"))["event"]
    with Engine.open(db, rulesets=builtins() + [CallCentreV2()]) as v2:
        v2.rebuild()
        after = {(r["period"], r["subject"]): r["score"] for r in v2.scores() if is_month(r["period"])}
        x = v2.explain("callcentre-5", "agent-07", "2026-04")
        assert next(v2.log(type="adoption"))["event"] == stored  # the stored event is never rewritten
        # a revision now is written for version 2 and merged over the upgraded policy in force
        v2.adopt({"labels": {"非常满意": 5}}, ruleset="callcentre-5", from_="2026-05", id="v2-labels")
        new = [e["event"] for e in v2.log(type="adoption") if e["id"] == "v2-labels"][0]
    assert after == before
    assert x["params_upgraded_from"] == 1 and x["score"] == Decimal("4.50")
    assert new["params_version"] == 2 and new["params"]["scale"] == {"lowest": 1, "highest": 5}
    assert new["params"]["labels"] == {**stored["params"]["labels"], "非常满意": 5}


def test_the_explanation_text_says_upgraded(tmp_path):
    db = tmp_path / "u.db"
    with Engine.open(db, rulesets=builtins() + [callcentre.CallCentre5()]) as v1:
        v1.ingest([CC_EXAMPLE])
    from csat.cli.output import explanation_text
    with Engine.open(db, rulesets=builtins() + [CallCentreV2()]) as v2:
        text = explanation_text(v2.explain("callcentre-5", "agent-07", "2026-04"))
    assert ", upgraded from v1" in text.splitlines()[2]


def test_the_kit_checks_old_example_adoptions_still_decode(tmp_path):
    from csat.plugins.testing import check_examples
    old = json.dumps({"type": "adoption", "id": "old", "ruleset": "callcentre-5", "from": "2026-01",
                      "params_version": 1, "params": {"lowest": 1, "highest": 5, "precision": 2}})
    path = tmp_path / "old.jsonl"
    path.write_text(old + "\n" + CC_EXAMPLE.read_text(encoding="utf-8"), encoding="utf-8")
    check_examples([CallCentreV2()], [path])

    class Broken(CallCentreV2):
        def upgrade_params(self, data, from_version):
            return data  # forgot to move lowest/highest
    with pytest.raises(AssertionError, match=r"^callcentre-5: adoption 'old' of version 1 does not decode after "
                                             r"upgrade_params"):
        check_examples([Broken()], [path])


def test_a_whatif_reads_one_snapshot_while_another_process_appends(db, tmp_path, monkeypatch):
    """A what-if reads the published responses in place, in one read snapshot: what another
    connection appends and scores while it runs (a response in a month the what-if has not reached
    yet, another in a new month) is in none of its rows, before or after."""
    from csat.engine.read.replay import Replay
    path = toml(tmp_path, "change.toml", CHANGE_OF["plant-50"])
    with Engine.open(db) as e, Engine.open(db) as other:
        e.ingest([EXAMPLE_OF["plant-50"]])
        expected = e.whatif("plant-50", path, all=True)
        score_month = Replay._score_replayed_month
        appended: list[str] = []

        def meanwhile(self, ruleset, month, *args, **kwargs):
            if not appended:  # the first month of the what-if: the others come later
                appended.append(month)
                other.append([{"type": "response", "id": f"late-{p}", "ruleset": "plant-50", "period": p,
                               "subject": "purchasing", "rater": "workshop-9",
                               "answers": {"attitude": "很不满意", "response": "很不满意", "solution": "很不满意"},
                               "reasons": {k: "meanwhile" for k in ("attitude", "response", "solution")}}
                              for p in ("2026-03", "2026-06")])
                other.catch_up()
            return score_month(self, ruleset, month, *args, **kwargs)

        monkeypatch.setattr(Replay, "_score_replayed_month", meanwhile)
        rows = e.whatif("plant-50", path, all=True)
        monkeypatch.undo()
        assert appended == ["2026-01"]
        assert rows == expected  # as if nothing had been appended
        assert e.whatif("plant-50", path, all=True) != expected  # (and the next one sees it all)
