"""A round's questionnaires as Excel workbooks, one per rater — the subjects to rate pre-filled,
a column per item headed by its label, drop-downs of the accepted answers, the reason columns
marked where the method requires one, a note on each header, and a 收到日期 column (the day a
form was handed in, when it is keyed in later: the return's ``received``). Filled in Excel or
WPS, a workbook ingests unchanged (``csat ingest`` reads these headers)."""
from __future__ import annotations

from typing import IO, Any

from ..errors import CsatError

#: the fixed columns of a form, headed as Chinese sheets head them (csat ingest reads these headers)
FIXED = (("编号", "id"), ("轮次", "round"), ("规则", "ruleset"), ("月份", "period"), ("表单", "form"),
         ("被考核单位", "subject"), ("评价单位", "rater"), ("收到日期", "received"))
#: the column of the day a form was handed in (text cells: what is typed stays YYYY-MM-DD)
RECEIVED = "收到日期"
#: the last column: the rater had no dealings with the subject this month (the row becomes a no_dealings)
NO_DEALINGS = "无业务往来"
REQUIRED_FILL = "FFF2CC"


def _note(item: dict[str, Any]) -> str:
    if item["kind"] == "number":
        accepted = f"{item.get('minimum', '')}–{item.get('maximum', '')}".strip("–")
    else:
        accepted = " / ".join(c["value"] for c in item.get("choices", ()))
    return f"{item['label']}: {accepted}" + (" or N/A (不知道/不适用)" if item["na"] else "")


def write_form(path: str | IO[bytes], rater: str, rows: list[dict[str, Any]], status: dict[str, Any],
               described: dict[str, Any]) -> None:
    """One rater's workbook, written to ``path`` (a file name or a binary file)."""
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
                      "subject": r["subject"], "rater": rater, "received": None}
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
        got = sheet.cell(row=1, column=heads.index(RECEIVED) + 1)
        got.comment = Comment("the day this form was handed in (YYYY-MM-DD), when it is keyed in later: "
                              "lateness goes by it; leave blank: the day it is ingested", "csat")
        for row in range(2, last + 1):
            sheet.cell(row=row, column=got.column).number_format = "@"
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
