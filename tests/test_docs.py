"""The documentation site builds with `mkdocs build --strict` and not one warning: every page is in the nav, every
link and anchor resolves, every included file (CHANGELOG.md, bench/README.md) exists."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def test_the_site_builds_strict_without_a_warning(tmp_path):
    # Material's end-of-life banner is a notice about the theme, not about these pages: switched off as it says
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    res = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
                          "--site-dir", str(tmp_path / "site")], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=300)
    out = ANSI.sub("", res.stdout + res.stderr)
    warnings = [line for line in out.splitlines() if re.match(r"\s*(WARNING|ERROR)\b", line)]
    assert res.returncode == 0 and not warnings, out[-4000:]
    pages = {p.relative_to(tmp_path / "site").as_posix() for p in (tmp_path / "site").rglob("index.html")}
    for page in ROOT.joinpath("docs").glob("*.md"):
        name = "index.html" if page.stem == "index" else f"{page.stem}/index.html"
        assert name in pages, f"docs/{page.name} was not built"
