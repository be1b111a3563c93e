"""The planner's tables in the docs come from the planner: every block between `<!-- planner: <command> -->` and
`<!-- /planner -->` in README.md and docs/*.md is that command's output today, so a changed default or planner
shows here instead of in a stale page. `python tests/test_docs_planner.py` rewrites the blocks."""

import contextlib
import io
import re
import shlex
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"(<!-- planner: python -m lamini_lm\.training\.plan (?P<args>.*?) -->\n)(?P<body>.*?)(<!-- /planner -->)",
                   re.S)
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _output(args: str) -> str:
    from lamini_lm.training.plan import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(shlex.split(args))
    return out.getvalue().strip() + "\n\n"  # a blank line ends the last table before the closing marker


def _blocks():
    return [(page, m) for page in PAGES for m in BLOCK.finditer(page.read_text())]


def test_the_docs_show_the_herd_plan():
    assert any("experiment=lamini_herd" in m["args"] for _, m in _blocks())


@pytest.mark.parametrize("page,block", _blocks(), ids=lambda x: x.name if isinstance(x, Path) else x["args"])
def test_a_planner_block_is_the_planners_output_today(page, block):
    assert block["body"] == _output(block["args"]), (
        f"{page.relative_to(ROOT)}: the planner now prints something else for `{block['args']}`; "
        "rewrite the blocks with python tests/test_docs_planner.py")


if __name__ == "__main__":  # rewrite every block with the planner's output
    sys.path.insert(0, str(ROOT))
    for page in PAGES:
        text = page.read_text()
        new = BLOCK.sub(lambda m: m[1] + _output(m["args"]) + m[4], text)
        if new != text:
            page.write_text(new)
            print(f"rewrote {page.relative_to(ROOT)}")
