"""teacher=hf_local: the whole pipeline for real with SmolLM2-135M-Instruct, no network."""

from __future__ import annotations

import json

import pytest
from tests.helpers.generate_kit import read_jsonl, run


@pytest.mark.slow
def test_hf_local_runs_the_pipeline_offline(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # no key needed
    alpaca = tmp_path / "alpaca.jsonl"
    alpaca.write_text("".join(json.dumps(r) + "\n" for r in [
        {"instruction": "What is the capital of France?", "input": ""},
        {"instruction": "Translate to French", "input": "Good morning"},
    ]))
    out = tmp_path / "out"
    records = run([
        f"out_dir={out}", "teacher=hf_local", "size=smoke", "size.self_instruct_without_topic=2",
        "size.self_instruct_with_topic=0", "size.alpaca=2", f"source.alpaca.path={alpaca}",
        "teacher.max_tokens.instructions=8", "teacher.max_tokens.responses=16", "instructions.max_rounds=1",
        "responses.drop_truncated=false", "progress=false", "decontam.n=0",
    ])
    alp = [r for r in records if r["instruction_source"] == "alpaca"]
    assert sorted(r["instruction"] for r in alp) == sorted(
        ["What is the capital of France?", "Translate to French:Good morning"])
    assert all(r["response"] and r["meta"]["teacher_model"] == "SmolLM2-135M-Instruct" for r in alp)
    assert all(0 < r["meta"]["usage"]["completion_tokens"] <= 16 for r in alp)
    paris = next(r for r in alp if "France" in r["instruction"])
    assert "paris" in paris["response"].lower()
    # the instruction stage copes with a reply that holds no (or few) <example> items
    rep = json.loads((out / "report.json").read_text())["instructions"]["subsets"]["self_instruct_without_topic"]
    assert rep["requests"] == 1 and rep["kept"] + rep["shortfall"] == 2
    assert len(read_jsonl(out / "requests" / "responses.jsonl")) == len(read_jsonl(out / "instructions.jsonl"))
