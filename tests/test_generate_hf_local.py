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
        "size.self_instruct_with_topic=0", "size.alpaca=2", f"seed_pools.alpaca.path={alpaca}",
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
    kept = [it for it in read_jsonl(out / "instructions.jsonl") if it["subset"] == "self_instruct_without_topic"]
    assert rep["requests"] == 1 and rep["kept"] == len(kept) <= 2
    assert len(read_jsonl(out / "requests" / "responses.jsonl")) == len(read_jsonl(out / "instructions.jsonl"))


def _requests(n: int) -> list:
    from lamini_lm.teachers.store import Request

    words = "short a slightly longer prompt that keeps on going with more and more words".split()
    return [Request({"model": "SmolLM2-135M-Instruct", "max_tokens": 6, "do_sample": False,
                     "messages": [{"role": "user", "content": f"{i}: " + " ".join(words[: 1 + 3 * i % len(words)])}]})
            for i in range(n)]


def test_batch_plan_depends_on_the_requests_only():
    from lamini_lm.teachers.hf_local import plan_batches

    reqs = _requests(10)
    lengths = [len(r.body["messages"][0]["content"]) for r in reqs]
    plan = plan_batches(reqs, lengths, 4)
    assert [len(b) for b in plan] == [4, 4, 2]
    assert [lengths[reqs.index(r)] for b in plan for r in b] == sorted(lengths)  # less padding
    shuffled = list(zip(reqs, lengths))[::-1]
    assert plan_batches([r for r, _ in shuffled], [n for _, n in shuffled], 4) == plan
    sampled = [type(r)({**r.body, "do_sample": True}) for r in reqs[:3]]
    mixed = plan_batches(reqs + sampled, lengths + lengths[:3], 4)
    assert all(len({r.body["do_sample"] for r in b}) == 1 for b in mixed)  # one generate() call per setting


@pytest.mark.slow
def test_hf_local_rerun_after_a_kill_forms_the_same_batches_and_replies(tmp_path):
    from omegaconf import OmegaConf

    from lamini_lm.teachers import build
    from lamini_lm.teachers.store import RequestStore

    from lamini_lm.config import conf_dir

    tcfg = OmegaConf.load(conf_dir() / "teacher" / "hf_local.yaml")
    tcfg.batch_size = 4
    teacher = build(tcfg, prices=None, progress=False)
    model, _ = teacher._load()
    calls = []
    generate = model.generate
    model.generate = lambda **kw: calls.append(kw["input_ids"].tolist()) or generate(**kw)
    reqs = _requests(10)

    whole = tmp_path / "whole.jsonl"
    teacher.run(reqs, RequestStore(whole), "responses")
    first_run = list(calls)
    assert len(first_run) == 3
    # a kill after 6 results: batch 1 is stored, batch 2 half, batch 3 not at all
    killed = tmp_path / "killed.jsonl"
    killed.write_text("".join(whole.read_text().splitlines(keepends=True)[:6]))
    calls.clear()
    stats = teacher.run(reqs, RequestStore(killed), "responses")
    assert calls == first_run[1:]  # the same batches, padded the same way, as the uninterrupted run
    assert stats.done == 4
    resumed, uninterrupted = RequestStore(killed), RequestStore(whole)
    assert [resumed.get(r.id) for r in reqs] == [uninterrupted.get(r.id) for r in reqs]

    # a prompt longer than the model's context (SmolLM2: 8192) is refused like an API refuses it, not generated
    from lamini_lm.teachers.store import Request

    long = Request({**reqs[0].body, "messages": [{"role": "user", "content": " ".join(["word"] * 10_000)}]})
    calls.clear()
    stats = teacher.run([long, *reqs], RequestStore(tmp_path / "long.jsonl"), "responses")
    (refused, why), = stats.rejected
    assert refused.id == long.id and "exceeds the model's context of 8192 tokens" in why
    assert stats.done == 10 and calls == first_run  # the others batched exactly as before
