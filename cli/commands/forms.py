"""``csat form``: a round's questionnaires as Excel workbooks, one per rater — the subjects to rate
pre-filled, a column per item headed by its label, drop-downs of the accepted answers, the reason
columns marked where the method requires one, a note on each header. Filled in Excel or WPS, a
workbook ingests unchanged with ``csat ingest``."""
from __future__ import annotations

import os
from typing import Any

import click

from csat.engine import CsatError

from ..app import Context, handles_errors

#: the fixed columns of a form, headed as Chinese sheets head them (csat ingest reads these headers)
FIXED = (("编号", "id"), ("轮次", "round"), ("规则", "ruleset"), ("月份", "period"), ("表单", "form"),
         ("被考核单位", "subject"), ("评价单位", "rater"))
#: the last column: the rater had no dealings with the subject this month (the row becomes a no_dealings)
NO_DEALINGS = "无业务往来"
REQUIRED_FILL = "FFF2CC"


def _note(item: dict[str, Any]) -> str:
    if item["kind"] == "number":
        accepted = f"{item.get('minimum', '')}–{item.get('maximum', '')}".strip("–")
    else:
        accepted = " / ".join(c["value"] for c in item.get("choices", ()))
    return f"{item['label']}: {accepted}" + (" or N/A (不知道/不适用)" if item["na"] else "")


def write_form(path: str, rater: str, rows: list[dict[str, Any]], status: dict[str, Any],
               described: dict[str, Any]) -> None:
    """One rater's workbook at ``path``."""
    from openpyxl import Workbook
    from openpyxl.comments import Comment
    from openpyxl.styles import Font, PatternFill
    from openpyxl.worksheet.datavalidation import DataValidation
    q = described["questionnaire"]
    if not q or not q["items"]:
        raise CsatError(f"rule set {status['ruleset']} has no questionnaire items in {status['period']}: "
                        "csat rulesets NAME shows what is in force")
    labels = described["item_labels"]
    forms = q["forms"] or [None]
    book = Workbook()
    book.remove(book.active)
    for form in forms:
        items = [i for i in q["items"] if i.get("form") == form]
        sheet = book.create_sheet((f"{rater} {form}" if form else rater)[:31].replace("/", "-"))
        fixed = [(h, c) for h, c in FIXED if c != "form" or form]
        heads = [h for h, _ in fixed] + [labels.get(i["id"], i["id"]) for i in items]
        reasons = [i for i in items if i["reason_for"]]
        heads += [f"原因：{labels.get(i['id'], i['id'])}" for i in reasons]
        heads.append(NO_DEALINGS)
        sheet.append(heads)
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        for k, item in enumerate(items):
            cell = sheet.cell(row=1, column=len(fixed) + k + 1)
            cell.comment = Comment(_note(item), "csat")
        for k, item in enumerate(reasons):
            cell = sheet.cell(row=1, column=len(fixed) + len(items) + k + 1)
            cell.fill = PatternFill("solid", fgColor=REQUIRED_FILL)
            cell.comment = Comment(f"required when {item['label']} is answered {' / '.join(item['reason_for'])} "
                                   "(写明详细原因)", "csat")
        for r in rows:
            values = {"id": f"{status['round']}-{rater}-{r['subject']}" + (f"-{form}" if form else ""),
                      "round": status["round"], "ruleset": status["ruleset"], "period": status["period"], "form": form,
                      "subject": r["subject"], "rater": rater}
            sheet.append([values[c] for _, c in fixed])
        last = max(len(rows) + 1, 2)
        for k, item in enumerate(items):
            letter = sheet.cell(row=1, column=len(fixed) + k + 1).column_letter
            if item["kind"] == "choice":
                options = [c["value"] for c in item["choices"]] + (["N/A"] if item["na"] else [])
                dv = DataValidation(type="list", formula1='"' + ",".join(options) + '"', allow_blank=True)
            else:
                low, high = item.get("minimum"), item.get("maximum")
                dv = DataValidation(type="whole" if item.get("whole") else "decimal", operator="between",
                                    formula1=str(low if low is not None else 0),
                                    formula2=str(high if high is not None else 10 ** 9), allow_blank=True)
            dv.promptTitle, dv.prompt = item["label"][:32], _note(item)[:255]
            dv.errorTitle, dv.error = "csat", f"expected {_note(item)}"[:255]
            sheet.add_data_validation(dv)
            dv.add(f"{letter}2:{letter}{last}")
        nd = sheet.cell(row=1, column=len(heads))
        nd.comment = Comment("是: no dealings with this department this month (neither an answer nor a missing "
                             "return); leave the answers blank", "csat")
        dv = DataValidation(type="list", formula1='"是"', allow_blank=True)
        sheet.add_data_validation(dv)
        dv.add(f"{nd.column_letter}2:{nd.column_letter}{last}")
        sheet.freeze_panes = sheet.cell(row=2, column=len(fixed) + 1)
        for k in range(1, len(heads) + 1):
            sheet.column_dimensions[sheet.cell(row=1, column=k).column_letter].width = 16
    book.save(path)


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
    engine = c.engine()
    status = engine.round_status(round_id)
    described = engine.describe_ruleset(status["ruleset"], status["period"])
    raters = list(dict.fromkeys(r["rater"] for r in status["assignments"]))
    if rater is not None:
        if rater not in raters:
            raise CsatError(f"rater {rater!r} has no assignment in round {round_id}")
        targets = {rater: output}
    else:
        os.makedirs(output, exist_ok=True)
        targets = {r: os.path.join(output, f"{r.replace('/', '-')}.xlsx") for r in raters}
    for who, path in targets.items():
        write_form(path, who, [r for r in status["assignments"] if r["rater"] == who], status, described)
        click.echo(f"wrote {path}")
