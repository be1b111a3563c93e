"""Run an entry point the way a user does: a fresh process, offline, in the repository root."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_entry(script: str, *overrides: str, timeout: int = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """``env`` adds to (or overrides) this process's environment."""
    env = {**os.environ, **(env or {})}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, script, *overrides], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def fails_with(res: subprocess.CompletedProcess, *fragments: str) -> str:
    """Assert what an entry point does with a user's mistake: exit 2, one `error:` line holding every fragment,
    no traceback. Returns that line."""
    assert res.returncode == 2, res.stderr[-2000:]
    lines = [x for x in res.stderr.strip().splitlines() if x.startswith("error:")]
    assert len(lines) == 1, res.stderr[-2000:]
    assert "Traceback" not in res.stderr
    for f in fragments:
        assert f in lines[0], lines[0]
    return lines[0]
