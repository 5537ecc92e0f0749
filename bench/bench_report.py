"""How fast a browser renders `csat report` for a year of 50 subjects in each of the five rule sets
(issue 15: target < 2 s), in headless Chromium, beyond the time it takes for an empty page.

    .venv/bin/python bench/bench_report.py            # median of 3
"""
from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import synth  # noqa: E402
from bench import csat_command  # noqa: E402


def main(runs: int = 3) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("no chromium: apt-get install chromium")
    with tempfile.TemporaryDirectory(prefix="csat-report-bench-") as work:
        folder = Path(work)
        data = folder / "year.jsonl"
        with open(data, "w", encoding="utf-8") as f:
            synth.write_jsonl(iter(synth.report_year()), f)
        db, html, empty = folder / "year.db", folder / "year.html", folder / "empty.html"
        empty.write_text("<!DOCTYPE html><html><body>x</body></html>", encoding="utf-8")
        csat = [*csat_command(), "--db", str(db)]
        subprocess.run([*csat, "ingest", str(data)], check=True, capture_output=True)
        t0 = time.perf_counter()
        subprocess.run([*csat, "report", "--period", "2024", "-o", str(html)], check=True, capture_output=True)
        written = time.perf_counter() - t0

        def load(page: Path) -> float:
            t = time.perf_counter()
            subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.as_uri()],
                           check=True, capture_output=True)
            return time.perf_counter() - t
        render = statistics.median(load(html) - load(empty) for _ in range(runs))
        print(f"report for a year of 50 subjects × 5 rule sets: {html.stat().st_size / 1e6:.1f} MB, "
              f"written in {written:.1f} s, rendered in {render:.2f} s beyond an empty page "
              f"(target < 2 s: {'met' if render < 2 else 'NOT MET'})")


if __name__ == "__main__":
    main()
