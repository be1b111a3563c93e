"""Shared helpers for the generate tests: compose the real config, run the pipeline, check for the key.

The fixtures they use (`server`, a fake OpenAI server, and `api_key`) live in tests/conftest.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from lamini_lm.jsonl import iter_jsonl

ROOT = Path(__file__).resolve().parents[2]
KEY = "sk-test-NEVER-ON-DISK-0123456789"


def compose(overrides: list[str]):
    """conf/generate.yaml with ``overrides``, composed as generate.py does."""
    from lamini_lm import config

    return config.compose("generate", overrides)


def spec(overrides: list[str]):
    """The typed config the stages get (GenerateSpec: composed, then checked as generate.py's entry does)."""
    from lamini_lm.distill.pipeline import check

    return check(compose(overrides))


def tiny(out_dir, url, *extra) -> list[str]:
    """Overrides for a small, fast run against the fake server."""
    return [
        f"out_dir={out_dir}",
        f"teacher.base_url={url}",
        "size=smoke",
        "size.self_instruct_without_topic=12",
        "size.self_instruct_with_topic=6",
        "instructions.per_call.self_instruct_without_topic=5",
        "instructions.per_call.self_instruct_with_topic=5",
        "teacher.backoff_base=0.01",
        "teacher.timeout=2",
        "progress=false",
        "decontam.n=0",
        *extra,
    ]


def run(overrides: list[str]):
    from lamini_lm.distill.pipeline import run as pipeline_run

    return pipeline_run(compose(overrides))


def read_jsonl(path) -> list[dict]:
    return [obj for _, obj in iter_jsonl(path)]


def assert_no_key(folder, key: str = KEY) -> None:
    for p in Path(folder).rglob("*"):
        if p.is_file():
            assert key.encode() not in p.read_bytes(), f"API key written to {p}"


def lines(path) -> int:
    """Newlines in ``path`` (0 when it does not exist): the finished requests of a store."""
    path = Path(path)
    return path.read_bytes().count(b"\n") if path.exists() else 0


def spawn(overrides: list[str]) -> subprocess.Popen:
    """generate.py as a user starts it, in a process group of its own (so a test can signal the group)."""
    env = {**os.environ, "OPENAI_API_KEY": KEY, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.Popen([sys.executable, str(ROOT / "generate.py"), *overrides], env=env, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)


def wait_for_lines(path, n: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    """Until ``path`` holds ``n`` lines; the process must still be running then."""
    deadline = time.time() + timeout
    while lines(path) < n and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    assert proc.poll() is None, proc.stderr.read()[-2000:]
