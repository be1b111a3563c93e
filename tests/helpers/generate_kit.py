"""Shared helpers for the generate tests: compose the real config, run the pipeline, a fake server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers.openai_server import FakeOpenAI

ROOT = Path(__file__).resolve().parents[2]
KEY = "sk-test-NEVER-ON-DISK-0123456789"


def compose(overrides: list[str]):
    from hydra import compose as hcompose
    from hydra import initialize_config_dir

    from lamini_lm import config  # noqa: F401

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return hcompose("generate", overrides=overrides)


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
    return [json.loads(x) for x in Path(path).read_text().splitlines() if x.strip()]


@pytest.fixture
def server():
    srv = FakeOpenAI()
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def api_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    return KEY


def assert_no_key(folder, key: str = KEY) -> None:
    for p in Path(folder).rglob("*"):
        if p.is_file():
            assert key.encode() not in p.read_bytes(), f"API key written to {p}"
