"""``csat serve`` (the web front), ``csat user`` (its accounts) and ``csat round links`` (the
raters' personal links)."""
from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import click

from csat.engine import CsatError

from ..app import Context, handles_errors
from ..output import format_option, opened, output_option, render
from .rounds import round


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
@click.option("--port", default=8000, show_default=True, type=int, help="The port to listen on.")
@click.option("--https", is_flag=True, help="Mark session cookies Secure (serving behind HTTPS, as in production).")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Worker processes (one per core serves a busy month best; they share the store).")
@click.option("--forwarded-allow-ips", "forwarded", metavar="IPS",
              help="The proxies (comma-separated addresses, or *) whose X-Forwarded-For / -Proto are believed: "
                   "the sign-in limits then count the address they forward. By default none is.")
@click.option("--demo", "demo_", is_flag=True,
              help="Serve the demo store (./csat-demo.db, built if missing) with a first quality-office account "
                   "and an open round whose raters' links are printed.")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, https: bool, workers: int, forwarded: str | None,
          demo_: bool) -> None:
    """Serve the web front: raters answer by their links, units see their own figures and how they
    were derived, the quality office runs the cycle.

    Sign in with an account made by `csat user add`. Sessions are signed with
    $CSAT_SECRET (set it, or sessions end when the server restarts). Behind a
    reverse proxy, serve on 127.0.0.1 and pass --https and --forwarded-allow-ips
    127.0.0.1 (else every visitor has the proxy's address, and the sign-in limits
    count them all as one).

    \b
    Examples:
      csat serve --demo                         # the demo store, an office account, raters' links
      csat user add qo --role office            # asks for a password
      csat serve --db csat-demo.db              # http://127.0.0.1:8000
      csat serve --db postgresql://csat@db/csat --host 0.0.0.0 --port 8080 --https
      csat serve --db csat.db --https --forwarded-allow-ips 127.0.0.1   # behind nginx on this host
    """
    c: Context = ctx.obj

    @handles_errors
    def run() -> None:
        import uvicorn

        from csat.web import create_app
        if demo_:
            _demo(ctx, c, f"http://{host}:{port}")
        c.engine(create=True).close()  # a store that can be opened, or one line saying why
        click.echo(f"csat: serving {c.db} on http://{host}:{port} (Ctrl-C stops)", err=True)
        options: dict = {"host": host, "port": port, "log_level": "warning", "server_header": False,
                         "timeout_keep_alive": 30,  # a rater between the page and the submit keeps the connection
                         # forwarded headers believed only from the proxies named (uvicorn's default: 127.0.0.1)
                         "proxy_headers": bool(forwarded), "forwarded_allow_ips": forwarded or ""}
        if workers == 1:
            uvicorn.run(create_app(c.db, https=https), **options)
            return
        import secrets  # several processes: one secret for all of them, and the store named in the environment
        os.environ.setdefault("CSAT_SECRET", secrets.token_urlsafe(32))
        os.environ.update(CSAT_DB=c.db, CSAT_HTTPS="1" if https else "0",
                          CSAT_SERVE_PID=str(os.getpid()))  # the workers end with this process (a kill -9 too)
        uvicorn.run("csat.web.app:app_from_env", factory=True, workers=workers, **options)
    run()


def _demo(ctx: click.Context, c: Context, base: str) -> None:
    """The demo store, built if missing, with an ``office`` account and an open plant-50 round."""
    import secrets

    from .demo import DEMO_DB, demo
    if not c.db_given:
        c.use(DEMO_DB)
    if not os.path.exists(c.db):
        ctx.invoke(demo)
    engine = c.engine()
    if engine.accounts.get("office") is None:
        password = secrets.token_urlsafe(12)
        engine.accounts.add("office", "office", password)
        click.echo(f"sign in as: office / {password}   (the quality office; shown once)")
    if "demo-round" not in {r["round"] for r in engine.rounds()}:
        engine.append([{"type": "round", "id": "demo-round", "ruleset": "plant-50", "period": "2026-04",
                        "due": "2099-12-31", "assignments": [
                            {"rater": f"workshop-{i}", "subjects": ["finance", "purchasing", "warehouse"]}
                            for i in range(1, 5)]}])
        for link in engine.round_links("demo-round"):
            click.echo(f"rater {link['rater']}: {base}/r/{link['token']}")


@click.group()
def user() -> None:
    """Accounts of the web front: the quality office (office), a unit's manager (manager --unit
    UNIT: that unit and the units below it), the auditor (auditor: reads everything).

    Every change is a row of the accounts' audit trail (csat user audit), naming who made it:
    cli:<your login name>, or the account given with --as.

    \b
    Examples:
      csat user add qo --role office
      csat user add plant2 --role manager --unit plant-2
      csat user role plant2 --role auditor --as qo
      csat user disable plant2
      csat user passwd plant2                # a new password; its sessions end
      csat user remove plant2
      csat user token qo                     # an API token (Authorization: Bearer …)
      csat user token qo --revoke            # revoke every API token of qo
      csat user audit                        # who changed what, and whether the trail is intact
    """


def _password(value: str | None) -> str:
    if value is not None:
        return value
    return click.prompt("password", hide_input=True, confirmation_prompt=True, err=True)


def _read_password(stdin: bool) -> str:
    return sys.stdin.readline().rstrip("\n") if stdin else _password(None)


def actor_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--as NAME``: the account named in the audit trail as making the change (default:
    ``cli:`` and the operating system's login name)."""
    return click.option("--as", "as_", metavar="NAME",
                        help="Who makes the change, for the audit trail (default: cli:<your login name>).")(fn)


def _actor(as_: str | None) -> str:
    if as_:
        return as_
    import getpass
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # noqa: BLE001 — no login name to be had (a container without one)
        return "cli:?"


@user.command("add")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(["office", "manager", "auditor"]))
@click.option("--unit", help="The unit a manager manages.")
@click.option("--password-stdin", "stdin", is_flag=True, help="Read the password from standard input.")
@actor_option
@click.pass_obj
@handles_errors
def user_add(c: Context, name: str, role: str, unit: str | None, stdin: bool, as_: str | None) -> None:
    """Add an account NAME."""
    password = _read_password(stdin)
    acct = c.engine(create=True).accounts.add(name, role, password, unit, actor=_actor(as_))
    click.echo(f"added {acct['name']} ({acct['role']}{' of ' + acct['unit'] if acct['unit'] else ''})")


@user.command("role")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(["office", "manager", "auditor"]))
@click.option("--unit", help="The unit a manager manages.")
@actor_option
@click.pass_obj
@handles_errors
def user_role(c: Context, name: str, role: str, unit: str | None, as_: str | None) -> None:
    """Change an account's role (its sessions end)."""
    acct = c.engine().accounts.set_role(name, role, unit, actor=_actor(as_))
    click.echo(f"{acct['name']} is now {acct['role']}{' of ' + acct['unit'] if acct['unit'] else ''}")


@user.command("disable")
@click.argument("name")
@click.option("--enable", is_flag=True, help="Enable it again.")
@actor_option
@click.pass_obj
@handles_errors
def user_disable(c: Context, name: str, enable: bool, as_: str | None) -> None:
    """Disable an account (its sessions and API tokens stop working at once)."""
    acct = c.engine().accounts.set_disabled(name, not enable, actor=_actor(as_))
    click.echo(f"{acct['name']} {'disabled' if acct['disabled'] else 'enabled'}")


@user.command("passwd")
@click.argument("name")
@click.option("--password-stdin", "stdin", is_flag=True, help="Read the new password from standard input.")
@actor_option
@click.pass_obj
@handles_errors
def user_passwd(c: Context, name: str, stdin: bool, as_: str | None) -> None:
    """Set a new password for NAME (a forgotten one reset); every web session of NAME ends.

    \b
    Examples:
      csat user passwd plant2                            # asks twice
      printf '%s\\n' "$NEW" | csat user passwd plant2 --password-stdin
    """
    c.engine().accounts.set_password(name, _read_password(stdin), actor=_actor(as_))
    click.echo(f"{name}: password set; its sessions have ended")


@user.command("remove")
@click.argument("name")
@actor_option
@click.pass_obj
@handles_errors
def user_remove(c: Context, name: str, as_: str | None) -> None:
    """Remove the account NAME and its API tokens (its sessions end; the audit trail keeps
    that it was).

    \b
    Examples:
      csat user remove plant2
      csat user remove plant2 --as qo
    """
    c.engine().accounts.remove(name, actor=_actor(as_))
    click.echo(f"removed {name}")


@user.command("token")
@click.argument("name")
@click.option("--revoke", is_flag=True, help="Revoke every API token of NAME instead of making one.")
@actor_option
@click.pass_obj
@handles_errors
def user_token(c: Context, name: str, revoke: bool, as_: str | None) -> None:
    """A new API token for NAME (printed once; keep it like a password), or with --revoke every
    token of NAME revoked.

    \b
    Examples:
      csat user token qo                    # Authorization: Bearer csat_…
      csat user token qo --revoke           # a token leaked: revoke them all, make a new one
    """
    accounts = c.engine().accounts
    if revoke:
        n = accounts.revoke_tokens(name, actor=_actor(as_))
        click.echo(f"{name}: {n} API token{'' if n == 1 else 's'} revoked")
        return
    click.echo(accounts.new_token(name, actor=_actor(as_)))


@user.command("list")
@format_option("table", "json", "csv")
@output_option
@click.pass_obj
@handles_errors
def user_list(c: Context, fmt: str, output: str | None) -> None:
    """The accounts."""
    with opened(output, bom=fmt == "csv") as echo:
        echo(render(c.engine().accounts.list(), fmt, empty="(no accounts: csat user add NAME --role office)"))


@user.command("audit")
@format_option("table", "json", "csv")
@output_option
@click.pass_obj
@handles_errors
def user_audit(c: Context, fmt: str, output: str | None) -> None:
    """The accounts' audit trail — every account added, changed, disabled, given a password,
    removed, its tokens made or revoked, its sessions ended, raters' links made or revoked: when,
    by whom — and whether its chain is intact (exit 1, one line, when a row was changed, removed
    or inserted after it was written).

    \b
    Examples:
      csat user audit
      csat user audit --format csv -o audit.csv
    """
    import json
    accounts = c.engine().accounts
    rows = accounts.audit()
    shown = rows if fmt == "json" else [{**r, "details": json.dumps(r["details"], ensure_ascii=False, sort_keys=True)}
                                        for r in rows]
    with opened(output, bom=fmt == "csv") as echo:
        echo(render(shown, fmt, first=("position", "at", "actor", "action", "target", "details"),
                    empty="(no account changes yet)"))
    check = accounts.verify_audit()
    if not check["intact"]:
        raise CsatError(f"the audit trail is broken at position {check['broken_at']}: {check['problem']}")
    click.echo(f"audit trail intact: {check['entries']} entries, head {check['head'] or '-'}", err=True)


@round.command("links")
@click.argument("round_id", metavar="ID")
@click.option("--base-url", default="http://127.0.0.1:8000", show_default=True,
              help="Where the web front is served (the links start with it).")
@format_option("table", "json", "csv")
@output_option
@click.pass_obj
@handles_errors
def links(c: Context, round_id: str, base_url: str, fmt: str, output: str | None) -> None:
    """Make a personal link for every assignment of an open round (shown once: send each to its
    rater; each opens that rater's questionnaire until the round closes)."""
    rows = [{"rater": r["rater"], "respondent": r["respondent"], "link": f"{base_url.rstrip('/')}/r/{r['token']}"}
            for r in c.engine().round_links(round_id, actor=_actor(None))]
    with opened(output, bom=fmt == "csv") as echo:
        echo(render(rows, fmt, empty="(nobody is assigned)"))
