"""docs/distill_evidence.md's tables are bench/distill_evidence.py's rendering of the results file beside them
(bench/results/distill_evidence.json, which the page's command writes as <out>/results.json): a rerun that changes
a number, or an edit of the page by hand, shows here."""

import json
from pathlib import Path

from bench.distill_evidence import render

ROOT = Path(__file__).resolve().parents[1]


def test_the_pages_tables_are_the_results_file_rendered():
    results = json.loads((ROOT / "bench" / "results" / "distill_evidence.json").read_text())
    page = (ROOT / "docs" / "distill_evidence.md").read_text()
    rows = [line for line in render(results).splitlines() if line.startswith("|")]
    assert len(rows) == 2 + 9 + 1 + 2 + 6  # both tables: three students, three objectives, the teacher
    missing = [line for line in rows if line not in page.splitlines()]
    assert not missing, f"docs/distill_evidence.md lacks these rows of the rendered results: {missing}"
    assert {r["seed"] for r in results["runs"]} == {0, 1, 2} and results["date"] in page
