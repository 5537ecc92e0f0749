"""ward-care: a rule set written as an outside author would, for the tests of org roll-ups with
complaints. Nurses' care is rated 0–100 per response for a ward; a ward's month is the mean of
its ratings less ``deduction`` per complaint filed against it that month; a department (any
unit with wards below it) pools its wards' ratings and answers for their complaints too
(``MonthInput.below``)."""
from __future__ import annotations

from decimal import Decimal

import msgspec

from csat.engine.events import ResponseRecorded
from csat.engine.numbers import div
from csat.engine.ruleset import Credit, Figure, MonthInput, Problem, RuleSet, Trace, module_file


class Params(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    deduction: Decimal
    precision: int = 2


class WardCare(RuleSet):
    id = "ward-care"
    version = "1.0"
    title = "病区护理满意度 (ward care, tests)"
    metrics = ("care",)
    params_type = Params
    defaults_path = module_file(__file__, "wardcare.toml")
    uses_org = True
    uses_cases = True

    def check_response(self, response: ResponseRecorded, params: Params) -> list[Problem]:
        care = response.answers.get("care")
        if not isinstance(care, int) or not 0 <= care <= 100:
            return [Problem("answers.care", f"expected a whole number 0–100, got {care!r}")]
        return []

    def credits(self, response, params, chain):
        return [Credit(response.subject)] + [Credit(unit, "department", response.subject)
                                             for unit in chain(response.subject, response.period)]

    def score_month(self, month: MonthInput, trace: Trace | None) -> list[Figure]:
        if not month.counted:
            return []
        ratings = [Decimal(c.response.answers["care"]) for c in month.counted]
        mean = div(sum(ratings), Decimal(len(ratings)))
        complaints = [c for c in (*month.cases, *month.below) if c.kind == "complaint"]
        score = mean - month.params.deduction * len(complaints)
        if trace:
            trace.step("care", f"mean of {len(ratings)} ratings − {month.params.deduction} × "
                       f"{len(complaints)} complaints ({', '.join(c.subject for c in complaints)})", score)
        return [Figure("care", score, len(ratings), state={"score": score})]
