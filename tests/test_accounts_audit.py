"""The accounts' audit trail and the account commands (issue 31, items 10 and 11): every change
made through `csat user` or the web — an account added, its role, disabled and enabled, a new
password, removed, its API tokens made and revoked, its sessions ended, raters' links made and
revoked — is a row naming who made it, with no password, hash or token in it; `csat user audit`
lists the rows and finds a row changed or removed after it was written; `csat user passwd`,
`remove` and `token --revoke` do what they say, or say in one line why not; a store made before
session versions is brought up to date. On both backends, through the real CLI and application."""
from __future__ import annotations

import json

from conftest import connect
from csat.engine import Engine

from test_web import PASSWORD, client, csrf_of, site  # noqa: F401 — site: the fixture

NEW_PASSWORD = "a brand new horse battery"


def run(cli, *args: str, input: str | None = None, expect: int = 0):
    result = cli.runner.invoke(cli.group, ["--db", cli.db, *args], input=input, catch_exceptions=False)
    assert result.exit_code == expect, (result.exit_code, result.stdout, result.stderr)
    return result


def test_every_csat_user_change_is_an_audit_row_naming_who_made_it(cli):
    run(cli, "user", "add", "qo", "--role", "office", "--password-stdin", input=PASSWORD + "\n")
    run(cli, "user", "add", "ma", "--role", "manager", "--unit", "div-a", "--password-stdin", "--as", "qo",
        input=PASSWORD + "\n")
    run(cli, "user", "role", "ma", "--role", "auditor", "--as", "qo")
    run(cli, "user", "disable", "ma", "--as", "qo")
    run(cli, "user", "disable", "ma", "--enable", "--as", "qo")
    token = run(cli, "user", "token", "ma", "--as", "qo").stdout.strip()
    with Engine.open(cli.db) as e:
        assert e.accounts.by_token(token)["name"] == "ma"
    assert run(cli, "user", "token", "ma", "--revoke", "--as", "qo").stdout.strip() == "ma: 1 API token revoked"
    done = run(cli, "user", "passwd", "ma", "--password-stdin", "--as", "qo", input=NEW_PASSWORD + "\n")
    assert done.stdout.strip() == "ma: password set; its sessions have ended"
    with Engine.open(cli.db) as e:
        assert e.accounts.by_token(token) is None
        assert e.accounts.check("ma", PASSWORD) is None and e.accounts.check("ma", NEW_PASSWORD)["name"] == "ma"
        hashes = [h for (h,) in e.store.conn.execute("SELECT hash FROM csat_accounts")]
    assert run(cli, "user", "remove", "ma").stdout.strip() == "removed ma"
    with Engine.open(cli.db) as e:
        assert e.accounts.get("ma") is None
    listed = run(cli, "user", "audit", "--format", "json")
    rows = json.loads(listed.stdout)
    assert "audit trail intact: 9 entries" in listed.stderr
    assert [(r["actor"], r["action"], r["target"]) for r in rows] == [
        (rows[0]["actor"], "account.add", "qo"), ("qo", "account.add", "ma"), ("qo", "account.role", "ma"),
        ("qo", "account.disable", "ma"), ("qo", "account.enable", "ma"), ("qo", "token.new", "ma"),
        ("qo", "token.revoke", "ma"), ("qo", "account.password", "ma"), (rows[0]["actor"], "account.remove", "ma")]
    assert rows[0]["actor"].startswith("cli:")  # no --as: the login name of whoever ran it
    assert rows[2]["details"] == {"role": "auditor", "unit": None, "was": ["manager", "div-a"]}
    for secret in (PASSWORD, NEW_PASSWORD, token, *hashes, "$argon2"):
        assert secret not in listed.stdout
    table = run(cli, "user", "audit").stdout
    assert "account.password" in table and "qo" in table and PASSWORD not in table


def test_csat_user_says_in_one_line_why_not(cli):
    run(cli, "user", "add", "qo", "--role", "office", "--password-stdin", input=PASSWORD + "\n")
    for args, said in ((("user", "remove", "nobody"), "no account 'nobody'"),
                       (("user", "passwd", "nobody", "--password-stdin"), "no account 'nobody'"),
                       (("user", "passwd", "qo", "--password-stdin"), "a password has at least 10 characters"),
                       (("user", "token", "nobody", "--revoke"), "no account 'nobody'")):
        r = run(cli, *args, input="short\n", expect=1)
        assert r.stderr.strip() == f"csat: {said}" and "Traceback" not in r.output, args
    for command in ("passwd", "remove", "token", "audit"):
        assert "Examples:" in run(cli, "user", command, "--help").stdout
    with Engine.open(cli.db) as e:
        assert [a["action"] for a in e.accounts.audit()] == ["account.add"]  # nothing refused is recorded
        assert e.accounts.check("qo", PASSWORD) is not None


def test_a_row_changed_or_removed_after_it_was_written_breaks_the_chain(cli, db):
    run(cli, "user", "add", "qo", "--role", "office", "--password-stdin", input=PASSWORD + "\n")
    for name in ("ma", "mb"):
        run(cli, "user", "add", name, "--role", "auditor", "--password-stdin", "--as", "qo", input=PASSWORD + "\n")
    run(cli, "user", "remove", "mb", "--as", "qo")
    assert "audit trail intact: 4 entries" in run(cli, "user", "audit").stderr
    with connect(db) as conn:  # someone covers their tracks: the removal was "the office's"
        conn.execute("UPDATE csat_audit SET actor = 'office' WHERE position = 4")
    r = run(cli, "user", "audit", expect=1)
    assert r.stderr.strip().endswith("the audit trail is broken at position 4: position 4 was changed after it "
                                     "was written (its hash does not match)")
    with connect(db) as conn:
        conn.execute("UPDATE csat_audit SET actor = 'qo' WHERE position = 4")
        conn.execute("DELETE FROM csat_audit WHERE position = 2")
    r = run(cli, "user", "audit", expect=1)
    assert "broken at position 2: position 2 is missing" in r.stderr


def test_the_web_s_account_and_link_changes_name_the_signed_in_account(site):
    app, db, _, _ = site
    qo = client(app, "qo")
    steps = [("add", {"name": "mc", "role": "manager", "unit": "div-b", "password": PASSWORD}),
             ("role", {"name": "mc", "role": "auditor", "unit": ""}), ("disable", {"name": "mc"}),
             ("enable", {"name": "mc"}), ("password", {"name": "mc", "password": NEW_PASSWORD}),
             ("revoke-tokens", {"name": "mc"}), ("remove", {"name": "mc"})]
    for action, form in steps:
        assert qo.post(f"/office/accounts/{action}", data={"csrf": csrf_of(qo), **form}).status_code == 200, action
    assert qo.post("/office/rounds/r1/links", data={"csrf": csrf_of(qo)}).status_code == 200
    assert qo.post("/office/rounds/r1/revoke", data={"csrf": csrf_of(qo), "rater": "ws-1"}).status_code == 303
    ma = client(app, "ma")
    assert ma.post("/logout", data={"csrf": csrf_of(ma)}).status_code == 303
    with Engine.open(db) as e:
        trail = e.accounts.audit()
        assert e.accounts.verify_audit()["intact"]
    mine = [(a["actor"], a["action"], a["target"]) for a in trail if a["actor"] in ("qo", "ma")]
    assert mine == [("qo", "account.add", "mc"), ("qo", "account.role", "mc"), ("qo", "account.disable", "mc"),
                    ("qo", "account.enable", "mc"), ("qo", "account.password", "mc"), ("qo", "token.revoke", "mc"),
                    ("qo", "account.remove", "mc"), ("qo", "links.revoke", "r1"),  # links made again: the earlier set
                    ("qo", "links.new", "r1"), ("qo", "links.revoke", "r1"),
                    ("ma", "account.signout", "ma")]
    assert PASSWORD not in json.dumps(trail) and NEW_PASSWORD not in json.dumps(trail)
    refused = qo.post("/office/accounts/add", data={"csrf": csrf_of(qo), "name": "md", "role": "auditor",
                                                    "password": "short"})
    assert refused.status_code == 422
    with Engine.open(db) as e:
        assert len(e.accounts.audit()) == len(trail)  # a change refused leaves no row


def test_a_store_made_before_session_versions_is_brought_up_to_date(cli, db):
    from argon2 import PasswordHasher
    with Engine.open(db):
        pass
    with connect(db) as conn:  # the accounts table as csat made it before
        conn.execute("CREATE TABLE csat_accounts (name TEXT PRIMARY KEY, role TEXT NOT NULL, unit TEXT, "
                     "hash TEXT NOT NULL, disabled INTEGER NOT NULL DEFAULT 0)")
        conn.execute("INSERT INTO csat_accounts (name, role, unit, hash, disabled) VALUES (?, ?, ?, ?, 0)",
                     ("qo", "office", None, PasswordHasher().hash(PASSWORD)))
    with Engine.open(db) as e:
        assert e.accounts.check("qo", PASSWORD) == {"name": "qo", "role": "office", "unit": None,
                                                    "disabled": False, "session_version": 0}
        e.accounts.end_sessions("qo", actor="qo")
        assert e.accounts.get("qo")["session_version"] == 1
    assert "qo" in run(cli, "user", "list").stdout
