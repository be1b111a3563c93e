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
