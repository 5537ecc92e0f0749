"""`csat report` looked at as a person would (issue 15): the HTML file opened in headless Chromium
(Debian's package; .ci/run installs it), its figures read back from the rendered page and compared
with `csat scores --format json`, its charts present, a screenshot kept, no rater named."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path

import pytest

import synth
from conftest import EXAMPLES, ROOT, Cli, write_jsonl

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        if os.environ.get("CI"):
            raise RuntimeError("no chromium: apt-get install chromium (.ci/run does)")
        pytest.skip("no chromium here (apt-get install chromium)")

    def run(page: Path, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
                               "--v=0", *args, page.as_uri()], capture_output=True, text=True, timeout=120)
    return run


class Page(HTMLParser):
    """What the rendered page shows: score cells by (ruleset, subject, metric), charts, text."""

    def __init__(self) -> None:
        super().__init__()
        self.ruleset = None
        self.scores: dict[tuple[str, str, str], str] = {}
        self.hidden: set[tuple[str, str, str]] = set()
        self.svgs: list[dict[str, int]] = []
        self.items: dict[tuple[str, str], str] = {}
        self.hidden_items: set[tuple[str, str]] = set()
        self.event_tables = 0
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section" and "data-ruleset" in a:
            self.ruleset = a["data-ruleset"]
        if tag == "tr" and "data-subject" in a:
            key = (self.ruleset, a["data-subject"], a["data-metric"])
            if "data-score" in a:
                self.scores[key] = a["data-score"]
            else:
                self.hidden.add(key)
        if tag == "tr" and "data-item" in a:
            if "data-attainment" in a:
                self.items[(self.ruleset, a["data-item"])] = a["data-attainment"]
            else:
                self.hidden_items.add((self.ruleset, a["data-item"]))
        if tag == "pre" and a.get("class") == "events":
            self.event_tables += 1
        if tag == "svg":
            self.svgs.append({"marks": -1})  # the white background is no mark
        if tag in ("path", "circle", "polyline", "rect") and self.svgs:
            self.svgs[-1]["marks"] += 1

    def handle_data(self, data):
        self.text.append(data)


def rendered(browser, page: Path) -> tuple[Page, str]:
    done = browser(page, "--dump-dom")
    assert done.returncode == 0, done.stderr[-2000:]
    parsed = Page()
    parsed.feed(done.stdout)
    return parsed, done.stderr


def ranked_rows(html: Path) -> list[tuple[str, str, str, Decimal, int]]:
    """(rule set, metric, kind, score, place) of each ranked row, in page order."""
    found = re.findall(r'<section class="ruleset" data-ruleset="([^"]+)"|data-metric="([^"]+)" data-kind="([^"]*)" '
                       r'data-score="([^"]+)">\s*<td class="n">(\d+)<', html.read_text("utf-8"))
    placed, rs = [], None
    for ruleset, metric, kind, score, rank in found:
        rs = ruleset or rs
        if metric:
            placed.append((rs, metric, kind, Decimal(score), int(rank)))
    return placed


def test_the_report_shows_the_published_figures_by_name(cli, tmp_path, browser):
    cli("ingest", *(str(p) for p in sorted(EXAMPLES.glob("*.jsonl"))), str(ROOT / "rulesets/examples/supplier-demo.jsonl"))
    html = tmp_path / "2026-03.html"
    cli("report", "--period", "2026-03", "-o", str(html))
    page, log = rendered(browser, html)
    assert "Uncaught" not in log and "CONSOLE" not in log  # no console message at all
    published = {(r["ruleset"], r["subject"], r["metric"]): r for r in cli.json("scores", "--period", "2026-03")}
    assert page.scores and set(page.scores) == set(published)
    for key, shown in page.scores.items():
        assert Decimal(shown) == published[key]["score"], key
    words = "".join(page.text)
    assert "王伟" in words and "销售一组" in words  # names, not only ids
    assert "Expense claims for the March engine shop took 19 days" in words  # a reason, verbatim
    assert len(page.svgs) >= len({k[0] for k in published}) and all(s["marks"] > 0 for s in page.svgs)
    raters = {json.loads(line).get(k) for p in EXAMPLES.glob("*.jsonl") for line in p.read_text("utf-8").splitlines()
              for k in ("rater", "respondent")} - {None}
    assert not any(r in words for r in raters if len(r) > 3)  # confidential: no rater or respondent named
    for rs in {k[0] for k in published}:  # the weakest items, as `csat items` ranks them
        ranked = cli.json("items", "-r", rs, "-p", "2026-03")[:5]
        assert {k[1]: Decimal(v) for k, v in page.items.items() if k[0] == rs} == \
            {r["item"]: r["attainment"] for r in ranked}
    assert page.items
    placed = ranked_rows(html)
    assert len(placed) == len(page.scores)
    for rs, metric, kind, score, rank in placed:  # within each metric and kind, equal scores share a place
        assert rank == 1 + sum(1 for o in placed if o[:3] == (rs, metric, kind) and o[3] > score), (rs, metric, score)
    row = re.search(r'<tr data-item="efficiency".*?</tr>', html.read_text("utf-8"), re.S).group(0)
    assert "Expense claims for the March engine shop took 19 days" in row  # the lowest item's reason, verbatim
    assert page.event_tables == len(page.scores)  # each figure's events, behind its derivation
    head = cli.json("verify")
    assert f"{head['head_position']}:{head['head_hash']}" in words  # the footer says what to verify later
    for rs, adoption in {(r["ruleset"], r["adoption"]) for r in published.values()}:  # and the parameters used
        assert f"{rs}:{adoption} — from" in words
    shot = tmp_path / "report.png"
    assert browser(html, f"--screenshot={shot}", "--window-size=1200,2400").returncode == 0
    assert shot.stat().st_size > 10_000


def test_min_responses_hides_small_groups(cli, tmp_path, browser):
    cli("ingest", str(EXAMPLES / "dealership-cs.jsonl"))
    html = tmp_path / "r.html"
    cli("report", "--period", "2026-03", "--min-responses", "2", "-o", str(html))
    page, _ = rendered(browser, html)
    small = {(r["ruleset"], r["subject"], r["metric"]) for r in cli.json("scores", "--period", "2026-03")
             if r["responses"] < 2}
    assert small and page.hidden == small and not (set(page.scores) & small)
    assert "李娜" in "".join(page.text)  # the subject is listed, its figure is not


def test_min_responses_hides_thin_items_and_changes_too(cli, tmp_path, browser):
    def iso(month: str, i: int, after_sales) -> dict:
        return {"type": "response", "id": f"iso-{month}-{i}", "ruleset": "iso-100", "period": month,
                "subject": "company", "rater": f"customer-{month}-{i}",
                "answers": {"quality": 25, "delivery": 16, "service": 12, "after_sales": after_sales, "price": 12}}
    # May: one response; June: three, two without an after-sales answer
    cli("ingest", write_jsonl(tmp_path / "iso.jsonl", [iso("2026-05", 1, 10), iso("2026-06", 1, 18),
                                                      iso("2026-06", 2, "N/A"), iso("2026-06", 3, "N/A")]))
    html = tmp_path / "june.html"
    cli("report", "--period", "2026-06", "--min-responses", "2", "-o", str(html))
    page, _ = rendered(browser, html)
    (june,) = cli.json("scores", "--period", "2026-06", "--vs", "2026-05")
    assert page.scores == {("iso-100", "company", "satisfaction"): str(june["score"])} and june["delta"] is not None
    row = re.search(r'<tr data-subject="company".*?</tr>', html.read_text("utf-8"), re.S).group(0)
    assert "%+.2f" % june["delta"] not in row  # May had one response: the change would give it away
    ranked = {r["item"]: r for r in cli.json("items", "-r", "iso-100", "-p", "2026-06")}
    assert ranked["after_sales"]["responses"] == 1 and page.hidden_items == {("iso-100", "after_sales")}
    assert {k[1]: Decimal(v) for k, v in page.items.items()} == \
        {i: r["attainment"] for i, r in ranked.items() if i != "after_sales"}


def test_a_year_of_50_subjects_in_5_rule_sets(tmp_path, browser):
    """The size a group's annual report has; how fast a browser renders it is measured in
    bench/bench_report.py (speed targets live in benchmarks, not in tests)."""
    cli = Cli(str(tmp_path / "year.db"))
    cli("ingest", write_jsonl(tmp_path / "year.jsonl", synth.report_year()))
    period = max(r["period"] for r in cli.json("scores", "--ruleset", "iso-100") if len(r["period"]) == 4)
    html = tmp_path / "year.html"
    cli("report", "--period", period, "-o", str(html))
    page, log = rendered(browser, html)
    assert "CONSOLE" not in log
    published = {(r["ruleset"], r["subject"], r["metric"]): r["score"] for r in cli.json("scores", "--period", period)}
    assert len({k[0] for k in page.scores}) == 5 and len(page.scores) >= 250
    assert {k: Decimal(v) for k, v in page.scores.items()} == published


def test_the_demo_store_reports_and_prints_on_a4(tmp_path, browser):
    """The store `csat demo` leaves (a callback month with only refused calls has no score) makes a
    report; printed from the browser it is A4 pages."""
    cli = Cli(str(tmp_path / "demo.db"))
    cli("demo")
    html = tmp_path / "demo.html"
    cli("report", "--period", "2026-03", "-o", str(html))
    page, log = rendered(browser, html)
    assert "CONSOLE" not in log and page.scores
    pdf = tmp_path / "demo.pdf"
    done = browser(html, f"--print-to-pdf={pdf}", "--no-pdf-header-footer")
    assert done.returncode == 0, done.stderr[-2000:]
    boxes = re.findall(rb"/MediaBox\s*\[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", pdf.read_bytes())
    assert boxes and all(abs(float(w) - 595.3) < 2 and abs(float(h) - 841.9) < 2 for w, h in boxes), boxes[:3]


def test_a_report_is_read_at_one_position_while_others_ingest(db, tmp_path):
    """Another process ingests while the report is being read: the report is read again, so that
    its figures are those of the position its footer names."""
    from csat.engine import Engine
    from csat.engine.app.report import report_data
    late = {"type": "response", "id": "cb-2026-03-late", "ruleset": "dealership-cs", "form": "sales",
            "period": "2026-03", "subject": "s1", "rater": "customer-late",
            "answers": {"q1": "不满意", "q2": "不满意", "q3": "不满意", "q4": "不满意"}}
    with Engine.open(db) as engine, Engine.open(db) as other:
        engine.ingest([str(EXAMPLES / "dealership-cs.jsonl")])
        explain, calls = engine.explain, []
        responses_before = next(r["responses"] for r in engine.scores(period="2026-03", subject="s1", metric="sales_cs"))

        def explain_while_another_ingests(*args, **kwargs):
            if not calls:
                other.ingest([write_jsonl(tmp_path / "late.jsonl", [late])])  # lands mid-report
            calls.append(args)
            return explain(*args, **kwargs)

        engine.explain = explain_while_another_ingests
        data = report_data(engine, "2026-03")
        assert data["log_position"] == other.head()[0] == engine.head()[0]
        final = {(r["subject"], r["metric"]): r["score"] for r in engine.scores(period="2026-03")}
        shown = {(r["subject"], r["metric"]): r["score"] for s in data["sections"] for r in s["ranking"]}
        assert shown == final
        s1 = next(r for s in data["sections"] for r in s["ranking"] if (r["subject"], r["metric"]) == ("s1", "sales_cs"))
        assert s1["responses"] == responses_before + 1  # the late callback is in it
        assert len(calls) > len(shown)  # the first reading was abandoned


# -- a report a manager can read without being misled (issue 20.5–20.11) ----------------------------

def svgs(html: Path) -> list[str]:
    return re.findall(r"<svg.*?</svg>", html.read_text("utf-8"), re.S)


def texts(svg: str, cls: str = "") -> list[str]:
    return re.findall(rf"<text[^>]*{cls}[^>]*>([^<]*)</text>", svg)


def test_hidden_rows_follow_the_ranked_ones_by_name_and_like_ranks_with_like(cli, tmp_path):
    cli("ingest", str(EXAMPLES / "dealership-cs.jsonl"))
    html = tmp_path / "r.html"
    cli("report", "--period", "2026-03", "--min-responses", "2", "-o", str(html))
    page = html.read_text("utf-8")
    rows = re.findall(r'<tr data-subject="([^"]+)" data-metric="([^"]+)" data-kind="([^"]*)"( data-score="[^"]+")?>'
                      r'\s*<td class="n">\d*</td>\s*<td>([^<]+)<', page)
    hidden = [(m, k, name.strip()) for _, m, k, score, name in rows if not score]
    assert hidden
    for group in {(m, k) for m, k, _ in hidden}:   # by name, not by the figures they hide
        names = [n for m, k, n in hidden if (m, k) == group]
        assert names == sorted(names), group
    kinds = {u["id"]: u["kind"] for u in cli.json("units", "--as-of", "2026-03")}
    placed = ranked_rows(html)
    assert {k for _, _, k, _, _ in rows} == {"team", "consultant"}  # a team and its advisors ranked apart
    published = {(r["subject"], r["metric"]) for r in cli.json("scores", "--period", "2026-03")}
    assert len(placed) + len(hidden) == len(published)
    headings = re.findall(r'<tr class="group"><th colspan="7">([^<]+)</th>', page)
    assert len(headings) == len(set(headings)) == 2 and all(" · " in h for h in headings)
    assert all(kinds.get(s) == k for s, _, k, _, _ in rows if k)


def test_trends_end_at_the_period_and_one_month_is_a_dot_plot(cli, tmp_path):
    cli("ingest", str(ROOT / "rulesets/examples/supplier-demo.jsonl"), str(EXAMPLES / "dealership-cs.jsonl"))
    html = tmp_path / "march.html"
    cli("report", "--period", "2026-03", "-o", str(html))
    trends = [s for s in svgs(html) if ": trend" in s]
    assert trends
    for svg in trends:
        months = [t for t in texts(svg) if re.fullmatch(r"\d{4}-\d\d", t)]
        assert all(m <= "2026-03" for m in months), months  # April's figures are not in a March report
        assert "2026-04" not in svg
    scores = cli.json("scores")
    for svg in trends:  # every figure drawn lies on the axis, whose ticks are round and not too fine
        ticks = [Decimal(t) for t in texts(svg, 'class="tick"')]
        values = [Decimal(v) for v in re.findall(r": (-?\d+\.\d+)</title>", svg)]
        assert values and min(ticks) <= min(values) and max(values) <= max(ticks)
        assert max(ticks) - min(ticks) >= max(abs(v) for v in values) / 10
    one_month = [s for s in trends if "dealership-cs" in s]  # the dealership example has one month
    assert one_month and all("<polyline" not in s and "<circle" in s for s in one_month)
    assert not any(s["period"] > "2026-03" and s["ruleset"] == "supplier-400" for s in [])  # (documented above)
    assert any(r["period"] == "2026-04" for r in scores)  # there was an April to leave out


def test_grade_bars_have_whole_ticks_and_a_colour_per_grade(cli, tmp_path):
    cli("ingest", str(ROOT / "rulesets/examples/supplier-demo.jsonl"), str(EXAMPLES / "plant-50.jsonl"),
        str(EXAMPLES / "iso-100.jsonl"))
    colours: dict[str, set[str]] = {}
    for period in ("2026-03", "2026-Q1"):
        html = tmp_path / f"{period}.html"
        cli("report", "--period", period, "-o", str(html))
        for svg in (s for s in svgs(html) if "grade distribution" in s):
            ticks = texts(svg, 'class="tick"')
            assert ticks and all(re.fullmatch(r"\d+", t) for t in ticks), ticks  # counts are whole
            bars = re.findall(r'<rect x="[^"]+" y="[^"]+" width="[^"]+" height="[^"]+" fill="([^"]+)">'
                              r"<title>([^:]+):", svg)
            assert len({c for c, _ in bars}) == len(bars)  # one colour per grade
            for colour, grade in bars:
                colours.setdefault(grade, set()).add(colour)
    assert colours and all(len(c) == 1 for c in colours.values()), colours  # the same in every chart


def test_the_same_head_gives_the_same_bytes_and_no_script(cli, tmp_path):
    cli("ingest", *(str(p) for p in sorted(EXAMPLES.glob("*.jsonl"))))
    a, b = tmp_path / "a.html", tmp_path / "b.html"
    cli("report", "--period", "2026-03", "-o", str(a))
    cli("report", "--period", "2026-03", "-o", str(b))
    assert a.read_bytes() == b.read_bytes()
    assert "<script" not in a.read_text("utf-8").lower()


def test_a_pdf_is_a_pdf_and_other_extensions_are_refused(cli, tmp_path, browser):
    cli("ingest", str(EXAMPLES / "iso-100.jsonl"))
    pdf = tmp_path / "iso.pdf"
    cli("report", "--period", "2026-11", "-o", str(pdf))
    data = pdf.read_bytes()
    boxes = re.findall(rb"/MediaBox\s*\[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", data)
    assert data.startswith(b"%PDF") and boxes and all(abs(float(w) - 595.3) < 2 for w, _ in boxes)  # A4
    r = cli("report", "--period", "2026-11", "-o", str(tmp_path / "iso.txt"), expect=2)
    assert "expected FILE.html or FILE.pdf" in r.stderr and not (tmp_path / "iso.txt").exists()


def test_nice_axes():
    from csat.engine.render.charts import nice_axis
    axis = nice_axis([Decimal("83.4"), Decimal("85.8")])
    assert axis[0] <= Decimal("83.4") and axis[-1] >= Decimal("85.8") and axis[-1] - axis[0] >= Decimal("8.58")
    assert nice_axis([Decimal(0), Decimal(2)], whole=True) == [0, 1, 2]
    assert nice_axis([Decimal(0), Decimal(1)], whole=True) == [0, 1]
    assert all(t == t.to_integral_value() for t in nice_axis([Decimal(0), Decimal(37)], whole=True))
