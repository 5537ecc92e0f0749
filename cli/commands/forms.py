"""``csat form``: a round's questionnaires as Excel workbooks, one per rater — the subjects to rate
pre-filled, a column per item headed by its label, drop-downs of the accepted answers, the reason
columns marked where the method requires one, a note on each header. Filled in Excel or WPS, a
workbook ingests unchanged with ``csat ingest``."""
from __future__ import annotations

import os
import click

from ..app import Context, handles_errors

@click.command()
@click.argument("round_id", metavar="ROUND")
@click.option("--rater", "-r", metavar="RATER", help="Only this rater's form (OUTPUT is then the workbook).")
@click.option("--output", "-o", required=True, metavar="FILE.xlsx|FOLDER", type=click.Path(),
              help="With --rater: the workbook to write; else the folder to write one workbook per rater into.")
@click.pass_obj
@handles_errors
def form(c: Context, round_id: str, rater: str | None, output: str) -> None:
    """Write a round's questionnaires as Excel workbooks, one per rater.

    Each holds the rater's subjects pre-filled, a column per item headed by
    its label with a drop-down of the answers accepted (and N/A where
    allowed), the reason columns marked where the method requires one, and a
    note on each header. Filled in Excel or WPS, it ingests unchanged with
    `csat ingest`, as a workbook or saved as CSV (a row left blank is no
    return; 无业务往来 = 是: no dealings with that subject this month).

    \b
    Examples:
      csat form plant-2026-03 -o forms/               # forms/ws-1.xlsx, forms/ws-2.xlsx, …
      csat form plant-2026-03 --rater ws-1 -o 车间1.xlsx
    """
    if rater is not None:
        workbooks = c.engine().forms(round_id, rater)
        targets = {rater: output}
    else:
        workbooks = c.engine().forms(round_id)
        os.makedirs(output, exist_ok=True)
        targets = {r: os.path.join(output, f"{r.replace('/', '-')}.xlsx") for r in workbooks}
    for who, path in targets.items():
        with open(path, "wb") as f:
            f.write(workbooks[who])
        click.echo(f"wrote {path}")
