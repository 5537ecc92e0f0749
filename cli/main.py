"""The ``csat`` command: the group of :mod:`csat.cli.app` with the commands of
:mod:`csat.cli.commands`, assembled here (nothing imports this module back)."""
from __future__ import annotations

from .app import cli
from .commands import demo, forms, reading, report, rounds, rulesets, store, web, writing
from .options import add_db_option

for command in (writing.ingest, reading.scores, reading.explain, rulesets.rulesets, reading.log,
                reading.complaints, reading.rectifications, reading.units, writing.adopt, writing.whatif,
                store.verify, store.repair, store.rebuild, store.copy, report.report, report.items, rounds.round,
                rounds.announce, forms.form, writing.erase, web.serve, web.user, demo.demo):
    cli.add_command(command)
add_db_option(cli, skip=("copy",))  # `csat scores --db csat-demo.db` as well as `csat --db … scores`


def main() -> None:
    cli(prog_name="csat")


if __name__ == "__main__":
    main()
