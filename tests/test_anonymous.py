"""An anonymous round's returns (issue 31, items 2 and 3), on both backends, through the real
application (Starlette's test client):

- a link cannot be stuffed: the same page posted again with other answers is refused and gives
  nothing back; a fresh page offers no form for a subject returned; a link of two subjects
  returns each once, one at a time;
- a response cannot be traced: the attack that matched three respondents to their answers —
  the link-returns rows' order against the log's, their hash joined to the links — is played
  against twelve returns made in a known order: no table but the links holds a link's hash, the
  marks keep no order, positions within a batch are shuffled, every anonymous response carries
  its day; the office's own events keep their precise times.
"""
from __future__ import annotations

import random
import re
import warnings

import pytest

from csat.engine import CsatError, Engine
from csat.engine.app import anonymous

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from csat.web import create_app

SECRET = "test-secret-not-for-production"


@pytest.fixture
def anon(db):
    """A store with an anonymous round: ws-1 rates dept-0 and dept-1 for 12 named respondents."""
    people = [f"人{i:02d}" for i in range(12)]
    with Engine.open(db) as e:
        e.append([{"type": "unit", "id": "ws-1", "kind": "workshop"}]
                 + [{"type": "unit", "id": f"dept-{i}", "kind": "department", "name": f"部门{i}"} for i in (0, 1)])
        e.append([{"type": "round", "id": "anon", "ruleset": "plant-50", "period": "2026-04", "due": "2099-04-28",
                   "anonymous": True, "assignments": [{"rater": "ws-1", "subjects": ["dept-0", "dept-1"],
                                                       "respondents": people}]}])
        links = e.round_links("anon")
    app = create_app(db, secret=SECRET, engines=2)
    yield app, db, [(l["respondent"], l["token"]) for l in links]


def page(c: TestClient, token: str) -> tuple[str, dict[str, str]]:
    text = c.get(f"/r/{token}").text
    return text, {k: m.group(1) for k in ("csrf", "nonce")
                  if (m := re.search(rf'name="{k}" value="([^"]+)"', text))}


def answers(subject: str, value: str = "满意", comment: str | None = None) -> dict[str, str]:
    out = {f"{subject}::{i}": value for i in ("attitude", "response", "solution")}
    if comment:
        out[f"{subject}::comment"] = comment
    return out


def anonymous_responses(e: Engine) -> list[dict]:
    return [r for r in list(e.log(type="response")) if r["event"]["period"] == "2026-04"]


def test_a_link_returns_each_subject_once_and_cannot_be_stuffed(anon):
    app, db, links = anon
    _, token = links[0]
    c = TestClient(app, follow_redirects=False)
    url = f"/r/{token}"
    _, first = page(c, token)
    sent = c.post(url, data={**first, **answers("dept-0")})
    assert sent.status_code == 200 and "已提交" in sent.text
    text, _ = page(c, token)  # dept-1 still to answer; dept-0 offered no more
    assert 'name="dept-1::attitude"' in text and 'name="dept-0::attitude"' not in text
    assert c.post(url, data={**first, **answers("dept-0")}).status_code == 200  # a retry of that page
    for value in ("一般", "满意"):  # the stuffing: the same page again with other answers, twice
        stuffed = c.post(url, data={**first, **answers("dept-0", value, comment=f"again {value}")})
        assert stuffed.status_code == 409 and "已提交过" in stuffed.text
    _, fresh = page(c, token)  # a fresh page cannot return dept-0 either
    assert c.post(url, data={**fresh, **answers("dept-0", "一般")}).status_code == 409
    both = c.post(url, data={**fresh, **answers("dept-0", "一般"), **answers("dept-1")})
    assert both.status_code == 409  # refused whole: dept-1 is not taken by it
    text, second = page(c, token)
    assert 'name="dept-1::attitude"' in text
    assert c.post(url, data={**second, **answers("dept-1", "一般")}).status_code == 200
    text, third = page(c, token)
    assert "只能提交一次" in text and 'id="questionnaire"' not in text and not third
    assert c.post(url, data={**second, **answers("dept-1", "不满意")}).status_code in (409, 422)
    with Engine.open(db) as e:
        assert e.anonymous_returned(token) == [("dept-0", None), ("dept-1", None)]
        assert e.release_anonymous() == 2  # (held back until a batch is full: released by hand here)
        got = sorted((r["event"]["subject"], r["event"]["answers"]["response"]) for r in anonymous_responses(e))
        assert got == [("dept-0", "满意"), ("dept-1", "一般")]  # one each, the first page's answers
        status = e.round_status("anon")
        other = links[1][1]
        assert e.anonymous_returned(other) == []  # another link's subjects stay open
    assert status["assignments"]


def test_a_refused_return_takes_no_mark(anon):
    app, db, links = anon
    _, token = links[0]
    c = TestClient(app, follow_redirects=False)
    _, first = page(c, token)
    refused = c.post(f"/r/{token}", data={**first, **answers("dept-0", "不满意")})  # its reason left out
    assert refused.status_code == 422 and 'name="dept-0::attitude"' in refused.text
    with Engine.open(db) as e:
        assert e.anonymous_returned(token) == []
    assert c.post(f"/r/{token}", data={**first, **answers("dept-0")}).status_code == 200


def _cells(e: Engine, db: str) -> dict[str, list[tuple]]:
    """Every table's rows, in the order the database gives them (its physical order)."""
    conn = e.store.conn
    if db.startswith("postgresql://"):
        names = [n for (n,) in conn.execute("SELECT table_name FROM information_schema.tables "
                                            "WHERE table_schema = current_schema()")]
    else:
        names = [n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    return {n: conn.execute(f'SELECT * FROM "{n}"').fetchall() for n in names}


def test_an_anonymous_response_cannot_be_traced_to_its_link(anon, monkeypatch):
    app, db, links = anon
    monkeypatch.setattr(anonymous, "_SHUFFLE", random.Random(31))  # the same draw every run
    c = TestClient(app, follow_redirects=False)
    with Engine.open(db) as e:
        e.append([{"type": "unit", "id": "dept-9", "kind": "department"}])  # the office at work meanwhile
    for n, (_, token) in enumerate(links):  # twelve returns in a known order, each telling its own
        _, form = page(c, token)
        assert c.post(f"/r/{token}", data={**form, **answers("dept-0", comment=f"return {n}")}).status_code == 200
        if n == 6:
            with Engine.open(db) as e:
                e.append([{"type": "unit", "id": "dept-8", "kind": "department"}])
    with Engine.open(db) as e:
        e.release_anonymous()
        cells = _cells(e, db)
        link_hashes = {h for (h,) in e.store.conn.execute("SELECT hash FROM csat_links")}
        log = list(e.log())
        responses = anonymous_responses(e)
        assert len(responses) == 12 and anonymous.pooled(e.store) == 0
        truth = [int(r["event"]["comment"].split()[1]) for r in responses]  # (the key store opens it)
    # 1. no table but the links' own holds a link's hash (the join that named the respondents)
    for table, rows in cells.items():
        if table in ("csat_links",):
            continue
        text = repr(rows)
        assert not any(h in text for h in link_hashes), table
    # 2. the marks: one column, no time, no rowid; their stored order is their digests' order
    marks = cells["csat_anon_marks"]
    assert len(marks) == 12 and all(len(row) == 1 for row in marks)
    if not db.startswith("postgresql://"):
        assert [m for (m,) in marks] == sorted(m for (m,) in marks)
        with pytest.raises(Exception):
            e2 = Engine.open(db)
            try:
                e2.store.conn.execute("SELECT rowid FROM csat_anon_marks").fetchall()
            finally:
                e2.close()
    # 3. positions: the attacker's guess (the n-th response in the log is the n-th return) fails
    right = sum(1 for guess, actual in enumerate(truth) if guess == actual)
    assert truth != sorted(truth) and right <= 6, truth
    # within each batch (five, five, two) the order is a shuffle of that batch's returns
    assert sorted(truth[:5]) == list(range(5)) and sorted(truth[5:10]) == list(range(5, 10))
    # 4. recording times: every anonymous response its day; the office's events their precise times
    assert {r["recorded"] for r in responses} == {responses[0]["recorded"][:10] + "T00:00:00.000000Z"}
    office = [r for r in log if r["type"] == "unit" and r["event"]["id"] in ("dept-8", "dept-9")]
    assert len(office) == 2 and not any(r["recorded"].endswith("T00:00:00.000000Z") for r in office)
    # a time still finds its position, though a day's anonymous rows come after precise ones
    with Engine.open(db) as e:
        last = max(r["position"] for r in log)
        assert e.position_at(office[-1]["recorded"].rstrip("Z")) >= office[-1]["position"]
        assert e.position_at("2099-01-01") == last and e.position_at("2000-01-01") == 0


def test_held_returns_go_to_the_log_before_the_round_closes(anon):
    app, db, links = anon
    c = TestClient(app, follow_redirects=False)
    for _, token in links[:2]:
        _, form = page(c, token)
        assert c.post(f"/r/{token}", data={**form, **answers("dept-1")}).status_code == 200
    with Engine.open(db) as e:
        assert anonymous.pooled(e.store) == 2 and anonymous_responses(e) == []
        e.append([{"type": "round_closed", "id": "close-anon", "round": "anon", "date": "2026-05-01"}])
        log = list(e.log())
        assert anonymous.pooled(e.store) == 0
    closed = next(r["position"] for r in log if r["type"] == "round_closed")
    assert [r["position"] < closed for r in log if r["type"] == "response"] == [True, True]


def test_a_previous_day_s_returns_are_released_by_the_next_write(anon):
    app, db, links = anon
    c = TestClient(app, follow_redirects=False)
    _, token = links[0]
    _, form = page(c, token)
    assert c.post(f"/r/{token}", data={**form, **answers("dept-0")}).status_code == 200
    with Engine.open(db) as e:  # as if it had been accepted yesterday
        e.store.conn.execute("BEGIN")
        e.store.conn.execute("UPDATE csat_anon_pool SET day = '2000-01-01'")
        e.store.conn.execute("COMMIT")
        e.append([{"type": "unit", "id": "dept-7", "kind": "department"}])
        assert anonymous.pooled(e.store) == 0 and len(anonymous_responses(e)) == 1


def test_a_time_finds_its_position_though_anonymous_rows_carry_their_day(db):
    import datetime as dt
    with Engine.open(db) as e:
        e.append([{"type": "unit", "id": "ws-1", "kind": "workshop"},
                  {"type": "unit", "id": "dept-0", "kind": "department"},
                  {"type": "unit", "id": "dept-1", "kind": "department"}])
        e.append([{"type": "round", "id": "anon", "ruleset": "plant-50", "period": "2026-04", "due": "2099-04-28",
                   "anonymous": True, "rule": {"raters": "workshop", "subjects": "department"}}])
        e.append([{"type": "response", "id": f"a{i}", "ruleset": "plant-50", "period": "2026-04",
                   "subject": f"dept-{i}", "rater": "ws-1", "answers": {"attitude": "满意", "response": "满意",
                                                                    "solution": "满意"}} for i in range(2)])
        log = list(e.log())
        opened = next(r for r in log if r["type"] == "round")
        assert not opened["recorded"].endswith("T00:00:00.000000Z")  # the office's event: its precise time
        assert [r["recorded"][10:] for r in log if r["type"] == "response"] == ["T00:00:00.000000Z"] * 2
        just_before = (dt.datetime.strptime(opened["recorded"], "%Y-%m-%dT%H:%M:%S.%fZ")
                       - dt.timedelta(microseconds=1)).strftime("%Y-%m-%dT%H:%M:%S.%f")
        # the anonymous rows (midnight) come after the round opened: not "before" that time
        assert anonymous.position_at(e.store, just_before) == opened["position"] - 1
        assert anonymous.position_at(e.store, opened["recorded"].rstrip("Z")) == opened["position"]
        precise = [r for r in log if not r["recorded"].endswith("T00:00:00.000000Z")][-1]  # the implicit adoption
        assert anonymous.position_at(e.store, precise["recorded"].rstrip("Z")) == len(log)


def test_links_of_an_anonymous_round_with_returns_are_not_made_again(anon):
    """Marks are digests of the tokens, so links made again would let a rater who returned answer
    once more through the new link: once such a round has returns, making its links again is
    refused in one line (before any return, it revokes the earlier set as for any round)."""
    app, db, links = anon
    with Engine.open(db) as e:
        again = e.round_links("anon")  # no return yet: the first set is revoked
        assert e.rater_assignment(links[0][1]) is None
    c = TestClient(app)
    token = again[0]["token"]
    _, form = page(c, token)
    assert c.post(f"/r/{token}", data={**form, **answers("dept-0")}).status_code == 200
    with Engine.open(db) as e:
        with pytest.raises(CsatError, match="has returns through its links"):
            e.round_links("anon")
        assert e.rater_assignment(token) is not None  # nothing revoked


def test_the_round_s_status_counts_returns_held_for_release(anon):
    """A return held in the pool (until its batch is released) is already answered in the round's
    回收率 — the rate does not lag behind what raters were told was received."""
    app, db, links = anon
    c = TestClient(app)
    token = links[0][1]
    _, form = page(c, token)
    assert c.post(f"/r/{token}", data={**form, **answers("dept-1")}).status_code == 200
    with Engine.open(db) as e:
        assert anonymous.pooled(e.store) == 1 and not [r for r in e.log(type="response")]
        status = e.round_status("anon")
        (row,) = [r for r in status["assignments"] if r["subject"] == "dept-1"]
        assert row["status"] == "answered" and row["response"] is None
        assert status["overall"]["answered"] == 1
        e.release_anonymous()
        (row,) = [r for r in e.round_status("anon")["assignments"] if r["subject"] == "dept-1"]
        assert row["status"] == "answered" and row["response"] is not None
