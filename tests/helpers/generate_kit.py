"""Shared helpers for the generate tests: compose the real config, run the pipeline, check for the key.

The fixtures they use (`server`, a fake OpenAI server, and `api_key`) live in tests/conftest.py.
"""

from __future__ import annotations

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
