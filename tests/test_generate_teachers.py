"""Teachers are chosen by config alone: one of your own is one module plus one config file, and a
setting a teacher does not take is one line naming it, never ignored."""

from __future__ import annotations

import json

import pytest
from tests.helpers.eval_compose import compose as eval_compose
from tests.helpers.generate_kit import compose, read_jsonl, run
from tests.helpers.run import run_entry

from lamini_lm.errors import UserError

ECHO = """\
_target_: tests.helpers.echo_teacher.EchoTeacher
model: echo-1
prefix: "echo: "
max_tokens: {instructions: 64, responses: 64}
"""
# every way to choose it: a config file of your own (here in a folder on Hydra's search path), or
# overrides alone on top of no teacher at all
CHOICES = {
    "config_file": ["teacher=echo"],
    "overrides": ["~teacher", "+teacher._target_=tests.helpers.echo_teacher.EchoTeacher", "+teacher.model=echo-1",
                  "+teacher.prefix='echo: '", "+teacher.max_tokens={instructions: 64, responses: 64}"],
}


def _conf(tmp_path, name: str, text: str) -> str:
    (tmp_path / "conf" / "teacher").mkdir(parents=True, exist_ok=True)
    (tmp_path / "conf" / "teacher" / f"{name}.yaml").write_text(text)
    return f"hydra.searchpath=[file://{tmp_path / 'conf'}]"


@pytest.mark.parametrize("how", CHOICES)
def test_a_teacher_outside_the_repository_runs_the_responses_stage(tmp_path, monkeypatch, how):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # none needed: nothing of teacher=openai is built
    alpaca = tmp_path / "alpaca.jsonl"
    alpaca.write_text("".join(json.dumps(r) + "\n" for r in [
        {"instruction": "Name a colour.", "input": ""},
        {"instruction": "Add two and two.", "input": ""},
        {"instruction": "REFUSE this one.", "input": ""},
    ]))
    out = tmp_path / "out"
    overrides = [_conf(tmp_path, "echo", ECHO), *CHOICES[how], f"out_dir={out}", "size=smoke",
                 "size.self_instruct_without_topic=0", "size.self_instruct_with_topic=0", "size.alpaca=3",
                 f"seed_pools.alpaca.path={alpaca}", "progress=false", "decontam.n=0", "max_rejected=1"]
    records = run(overrides)
    assert sorted((r["instruction"], r["response"]) for r in records) == [
        ("Add two and two.", "echo: Add two and two."), ("Name a colour.", "echo: Name a colour.")]
    assert {r["meta"]["teacher_model"] for r in records} == {"echo-1"}
    stored = {s["reply"]["finish_reason"] for s in read_jsonl(out / "requests" / "responses.jsonl")}
    assert stored == {"stop", "rejected"}  # the stage stored the refusal, as for any teacher
    report = json.loads((out / "report.json").read_text())
    assert report["responses"]["teacher"]["requests_sent"] == 3
    assert report["assembly"]["dropped"] == {"response_rejected": 1}
    run(overrides)  # a rerun: the store has every reply, the teacher is given nothing to send
    assert json.loads((out / "report.json").read_text())["responses"]["teacher"]["requests_sent"] == 0


@pytest.mark.parametrize("overrides, message", [
    (["+teacher.concurency=8"], r"teacher\.concurency is not a setting of lamini_lm\.teachers\.openai\.OpenAITeacher; "
                                r"its settings: model, max_tokens, params, logprobs, base_url, .*concurrency"),
    (["teacher=openai_batch", "+teacher.rpm=100"], r"teacher\.rpm is not a setting of .*OpenAIBatchTeacher"),
    (["~teacher.base_url"], r"teacher\.base_url is missing: lamini_lm\.teachers\.openai\.OpenAITeacher needs it"),
    (["teacher.http_transport=curl"], r"teacher\.http_transport=curl is unknown; choose aiohttp or httpx"),
    (["teacher._target_=lamini_lm.teachers.nope.Teacher"], r"teacher\._target_=lamini_lm\.teachers\.nope\.Teacher "
                                                           r"cannot be imported"),
    (["teacher._target_=collections.OrderedDict"], r"is not a subclass of lamini_lm\.teachers\.base\.Teacher"),
    (["~teacher._target_", "+teacher.kind=openai"], r"teacher has no _target_.*teacher\.kind is now teacher\._target_"),
    # values no request could work with: refused when the teacher is built, not by a hang or the server
    (["teacher.concurrency=0"], r"^teacher\.concurrency=0 must be a whole number of requests in flight, at least 1"),
    (["teacher.concurrency=abc"], r"^teacher\.concurrency=abc must be a whole number"),
    (["teacher.max_tokens.responses=-5"], r"^teacher\.max_tokens\.responses=-5 must be a whole number of tokens"),
    (["teacher=hf_local", "teacher.max_tokens.instructions=0"], r"^teacher\.max_tokens\.instructions=0 must be"),
    (["teacher.params.temperature=-1"], r"^teacher\.params\.temperature=-1 must be a number of at least 0"),
    (["teacher.timeout=-1"], r"^teacher\.timeout=-1 must be a number of seconds above 0"),
    (["teacher.connect_timeout=0"], r"^teacher\.connect_timeout=0 must be a number of seconds above 0"),
    (["teacher=openai_batch", "teacher.timeout=0"], r"^teacher\.timeout=0 must be a number of seconds above 0"),
    (["teacher.max_attempts=0"], r"^teacher\.max_attempts=0 must be a whole number, at least 1"),
    (["teacher.base_url=notaurl"], r"^teacher\.base_url=notaurl must start with http:// or https://"),
    (["teacher=openai_batch", "teacher.base_url=api.openai.com"], r"^teacher\.base_url=api\.openai\.com must start"),
    (["teacher=hf_local", "teacher.batch_size=0"], r"^teacher\.batch_size=0 must be a whole number of requests"),
    (["teacher.logprobs=21"], r"^teacher\.logprobs=21 must be at most 20: the most alternatives per token that "
                              r"OpenAITeacher returns"),
    (["teacher=openai_batch", "teacher.logprobs=50"], r"^teacher\.logprobs=50 must be at most 20"),
    (["teacher.logprobs=-1"], r"^teacher\.logprobs=-1 must be a whole number of alternatives per response token"),
    (["teacher=hf_local", "teacher.logprobs=x"], r"^teacher\.logprobs=x must be a whole number"),
    (["teacher=hf_local", "teacher.logprobs=2.5"], r"^teacher\.logprobs=2\.5 must be a whole number"),
    # a teacher of your own returns none until it says it does (Teacher.max_logprobs)
    ([*CHOICES["overrides"], "+teacher.logprobs=5"], r"^teacher\.logprobs=5 is not something EchoTeacher returns: "
                                                     r"set it to 0"),
])
def test_a_wrong_teacher_setting_is_one_error_naming_it(tmp_path, overrides, message):
    from lamini_lm.teachers import build

    cfg = compose([f"out_dir={tmp_path}", *overrides])
    with pytest.raises(UserError, match=message) as e:
        build(cfg.teacher, cfg.prices)
    assert "\n" not in str(e.value)


def test_the_edges_of_the_teacher_checks_are_accepted(tmp_path):
    from lamini_lm.teachers import build

    cfg = compose([f"out_dir={tmp_path}", "teacher.concurrency=1", "teacher.max_attempts=1", "teacher.timeout=0.5",
                   "teacher.params.temperature=null", "teacher.max_tokens.responses=1", "teacher.base_url=http://h:1/v1"])
    teacher = build(cfg.teacher, cfg.prices)
    assert teacher.timeout == 0.5 and teacher.params["temperature"] is None and teacher.max_tokens["responses"] == 1
    cfg = compose([f"out_dir={tmp_path}", "teacher.params.temperature=0"])
    assert build(cfg.teacher, cfg.prices).params["temperature"] == 0


def test_a_misspelt_key_in_a_teacher_file_stops_generate_with_one_line(tmp_path):
    mine = _conf(tmp_path, "mine", "defaults:\n  - openai\n  - _self_\n\nconcurency: 8\n")
    res = run_entry("generate.py", mine, "teacher=mine", "dry_run=true", f"out_dir={tmp_path / 'out'}",
                    f"hydra.run.dir={tmp_path / 'h'}", timeout=300)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines() == [
        "error: teacher.concurency is not a setting of lamini_lm.teachers.openai.OpenAITeacher; its settings: model, "
        "max_tokens, params, logprobs, base_url, api_key_env, http_transport, timeout, connect_timeout, max_attempts, "
        "backoff_base, backoff_max, concurrency, max_rate_limit_waits, rpm, tpm"]
    assert not (tmp_path / "out" / "dry_run.json").exists()


def test_the_judge_checks_its_teacher_settings_too(tmp_path):
    from lamini_lm.evaluation import judge

    (tmp_path / "responses").mkdir()
    cfg = eval_compose(tmp_path / "out", "mode=human_judge", f"human.responses={tmp_path / 'responses'}",
                       "+teacher.concurency=8")
    with pytest.raises(UserError, match=r"^teacher\.concurency is not a setting of"):
        judge.judge(cfg.judge, cfg.human, cfg.teacher, cfg.prices)
