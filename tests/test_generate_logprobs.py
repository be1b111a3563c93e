"""teacher.logprobs=k: the teacher's top-k alternatives per response token, stored with each reply (a resume keeps
them, a rerun pays nothing) and written beside D_ALL as d_all.logprobs.parquet, keyed by record id. The OpenAI
paths against the fake server; the real SmolLM2 teacher against its own logits, computed independently."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tests.helpers.generate_kit import compose, read_jsonl, run, tiny
from tests.helpers.openai_server import fake_logprobs, key_of
from tests.helpers.run import fails_with, run_script_inprocess

from lamini_lm.errors import UserError
from lamini_lm.logprobs import SIDECAR, Sidecar, TokenLogprobs

ROOT = Path(__file__).resolve().parents[1]


def _same(a: TokenLogprobs, b: TokenLogprobs, atol: float = 0.0) -> None:
    assert a.tokens == b.tokens and a.top_tokens == b.top_tokens and a.start == b.start
    assert np.array_equal(np.isinf(a.top_logprobs), np.isinf(b.top_logprobs))
    finite = np.isfinite(a.top_logprobs)
    np.testing.assert_allclose(a.top_logprobs[finite], b.top_logprobs[finite], atol=atol)


def _sent_by_the_server(body: dict, content: str) -> TokenLogprobs:
    """What the fake server answered for ``body``, read independently of reply_from_body."""
    k = body["top_logprobs"]
    items = fake_logprobs(content, k, key_of(body))["content"]
    lp = np.full((len(items), k), -np.inf, np.float32)
    for i, x in enumerate(items):
        lp[i, : len(x["top_logprobs"])] = [a["logprob"] for a in x["top_logprobs"]]
    return TokenLogprobs([bytes(x["bytes"]) for x in items],
                         [[bytes(a["bytes"]) for a in x["top_logprobs"]] for x in items], lp)


def _check_sidecar(out: Path, records: list[dict], k: int) -> Sidecar:
    """Every record's sidecar entry is what the server sent for its response request, trimmed to the response."""
    side = Sidecar(out / SIDECAR)
    assert side.k == k and side.teacher == "gpt-3.5-turbo" and set(side) == {r["id"] for r in records}
    stored = {s["id"]: s for s in read_jsonl(out / "requests" / "responses.jsonl")}
    for r in records:
        body = stored[r["meta"]["response_request_id"]]["request"]
        assert body["logprobs"] is True and body["top_logprobs"] == k
        want = _sent_by_the_server(body, stored[r["meta"]["response_request_id"]]["reply"]["content"])
        got = side[r["id"]]
        _same(got, want.trimmed(r["response"]), atol=5e-3)  # float16
        text = b"".join(got.tokens)
        assert text[got.start : got.start + len(r["response"].encode())] == r["response"].encode()
    return side


def test_sync_and_batch_api_round_trip_into_the_sidecar(server, api_key, tmp_path):
    records = run(tiny(tmp_path / "s", server.base_url, "teacher.logprobs=5"))
    assert len(records) == 18
    side = _check_sidecar(tmp_path / "s", records, 5)
    # only response requests ask for them: instructions are not distilled
    asked = [b for b in server.bodies if "logprobs" in b]
    assert len(asked) == 18 and all("system" in json.dumps(b) for b in asked)
    report = json.loads((tmp_path / "s" / "report.json").read_text())["assembly"]["logprobs"]
    assert report["file"] == SIDECAR and report["records"] == 18 and report["k"] == 5 and report["left_out"] == {}
    assert report["bytes"] == (tmp_path / "s" / SIDECAR).stat().st_size
    assert report["response_tokens"] == sum(len(side[r["id"]].tokens) for r in records)
    assert report["bytes_per_token"] == pytest.approx(report["bytes"] / report["response_tokens"])

    batch = run(tiny(tmp_path / "b", server.base_url, "teacher=openai_batch", "teacher.poll_interval=0.05",
                     "teacher.logprobs=5"))
    assert [r["id"] for r in batch] == [r["id"] for r in records]
    from_batch = _check_sidecar(tmp_path / "b", batch, 5)
    for r in records:
        _same(from_batch[r["id"]], side[r["id"]])

    # a rerun pays nothing: the log-probs live in the store with each reply, the sidecar is written again alike
    sent = len(server.log)
    again = tmp_path / "s" / SIDECAR
    before = again.read_bytes()
    run(tiny(tmp_path / "s", server.base_url, "teacher.logprobs=5"))
    assert len(server.log) == sent and again.read_bytes() == before
    # assembling with other teacher settings (here: without teacher.logprobs) finds none of these requests
    with pytest.raises(UserError, match=r"none of the 18 instructions has a response .* holds 18 replies to other "
                                        r"requests: give the teacher settings .*logprobs"):
        run(tiny(tmp_path / "s", server.base_url, "stage=assemble"))


def test_without_logprobs_the_requests_are_todays(server, api_key, tmp_path):
    from lamini_lm.distill.stages import response_request
    from lamini_lm.teachers import build
    from tests.helpers.generate_kit import spec

    s = spec([f"out_dir={tmp_path}"])
    teacher = build(s.teacher, s.prices)
    # pinned: the id of a response request made before teacher.logprobs existed; a store of then resumes as is
    req = response_request(teacher, s.prompts, "Name three primary colours.")
    assert "logprobs" not in req.body and "top_logprobs" not in req.body
    assert req.id == "8dec81d71231f63b076d114e5faa93fd"  # computed with the code before teacher.logprobs
    records = run(tiny(tmp_path / "o", server.base_url))
    assert not any("logprobs" in b for b in server.bodies) and not (tmp_path / "o" / SIDECAR).exists()
    assert "logprobs" not in json.loads((tmp_path / "o" / "report.json").read_text())["assembly"]
    assert all("logprobs" not in s["reply"] for s in read_jsonl(tmp_path / "o" / "requests" / "responses.jsonl"))
    assert len(records) == 18


def test_a_server_that_ignores_logprobs_stops_the_run_and_stores_no_reply_without_them(server, api_key, tmp_path):
    server.honor_logprobs = False
    out = tmp_path / "o"
    with pytest.raises(UserError) as e:
        run(tiny(out, server.base_url, "teacher.logprobs=5"))
    message = str(e.value)
    assert "\n" not in message and message.startswith(f"teacher.logprobs=5: {server.base_url} answered a request "
                                                      "without log-probs")
    assert "teacher.logprobs=0" in message
    assert read_jsonl(out / "requests" / "responses.jsonl") == []  # none stored: a rerun elsewhere asks again
    assert len(read_jsonl(out / "requests" / "instructions.jsonl")) > 0  # what needs none is kept

    batch = tmp_path / "b"
    with pytest.raises(UserError, match=r"^teacher\.logprobs=5: .* answered 18 requests of a batch without log-probs"):
        run(tiny(batch, server.base_url, "teacher=openai_batch", "teacher.poll_interval=0.05", "teacher.logprobs=5"))
    assert read_jsonl(batch / "requests" / "responses.jsonl") == []
    events = [e["event"] for e in read_jsonl(batch / "batches" / "responses.jsonl")]
    assert events == ["uploaded", "created"]  # not collected: its output stays on the server


def test_a_record_whose_tokens_do_not_spell_its_response_is_left_out_and_counted(server, api_key, tmp_path,
                                                                                monkeypatch):
    import tests.helpers.openai_server as srv

    real = srv.fake_logprobs
    # a server whose tokens differ from its text for some replies (e.g. a stop string it cut from the text only)
    monkeypatch.setattr(srv, "fake_logprobs", lambda content, k, seed: real(
        content + (" STOP" if seed < "6" else ""), k, seed))
    out = tmp_path / "o"
    records = run(tiny(out, server.base_url, "teacher.logprobs=3"))
    report = json.loads((out / "report.json").read_text())["assembly"]["logprobs"]
    odd = report["left_out"]["tokens_differ_from_response"]
    assert 0 < odd < 18 and report["records"] == 18 - odd == len(Sidecar(out / SIDECAR)) and len(records) == 18


def test_the_store_keeps_logprobs_on_disk_and_reads_them_back(tmp_path):
    from lamini_lm.teachers.store import Reply, Request, RequestStore

    lp = TokenLogprobs([b" Hi", b"!"], [[b" Hi", b" Hello"], [b"!", b"."]], [[-0.1, -2.5], [-0.01, -5.0]])
    a, b = Request({"model": "m", "messages": [], "n": 1}), Request({"model": "m", "messages": [], "n": 2})
    store = RequestStore(tmp_path / "s.jsonl")
    store.append(a, Reply(" Hi!", "stop", {}, "m", logprobs=lp))
    store.append(b, Reply("plain", "stop", {}, "m"))
    assert store.get(a.id).logprobs is None  # in memory: only where its line is
    _same(store.logprobs(a.id), lp, atol=1e-3)
    assert store.logprobs(b.id) is None and store.has_logprobs(a.id) and not store.has_logprobs(b.id)
    store.close()
    line = json.loads((tmp_path / "s.jsonl").read_text().splitlines()[0])
    assert set(line["reply"]["logprobs"]) == {"k", "start", "n", "vocab", "index", "zlib"}  # no float lists
    again = RequestStore(tmp_path / "s.jsonl")
    _same(again.logprobs(a.id), lp, atol=1e-3)
    assert again.get(a.id) == Reply(" Hi!", "stop", {}, "m") and again.logprobs(b.id) is None
    again.close()


def test_a_reply_body_as_the_api_shapes_it():
    from lamini_lm.teachers.openai_api import MissingLogprobs, reply_from_body

    request = {"model": "gpt-x", "messages": [], "logprobs": True, "top_logprobs": 2}

    def body(content, logprobs):
        return {"choices": [{"message": {"content": content}, "finish_reason": "stop", "logprobs": logprobs}]}

    # `bytes` wins where a token is part of a character; without it, the token's text; more than k: the k likeliest
    content = [{"token": "bytes:\\xc3", "bytes": [0xC3], "logprob": -0.1,
                "top_logprobs": [{"token": "x", "bytes": None, "logprob": -3.0},
                                 {"token": "bytes:\\xc3", "bytes": [0xC3], "logprob": -0.1},
                                 {"token": "y", "bytes": [121], "logprob": -2.0}]},
               {"token": "\u00a9 ok", "logprob": -0.2, "top_logprobs": [{"token": "\u00a9 ok", "logprob": -0.2}]}]
    reply = reply_from_body(body("\u00e9 ok", {"content": content}), request)
    t = reply.logprobs
    assert t.tokens == [b"\xc3", "\u00a9 ok".encode()] and t.top_tokens == [[b"\xc3", b"y"], ["\u00a9 ok".encode()]]
    np.testing.assert_allclose(t.top_logprobs, [[-0.1, -2.0], [-0.2, -np.inf]])
    assert reply_from_body(body("", None), request).logprobs is None  # no text (a refusal): nothing to distil
    with pytest.raises(MissingLogprobs):
        reply_from_body(body("text", None), request)
    assert reply_from_body(body("text", None), {"model": "gpt-x"}).logprobs is None  # not asked


def test_the_dry_run_shows_their_size(tmp_path, capsys):
    from lamini_lm.distill.pipeline import run as pipeline_run

    result = pipeline_run(compose([f"out_dir={tmp_path}", "dry_run=true", "teacher.logprobs=20", "size=smoke"]))
    lp = result["logprobs"]
    tokens = sum(r["completion_tokens_est"] for name, r in result["rows"].items() if name.startswith("responses/"))
    assert lp["k"] == 20 and lp["response_tokens_est"] == tokens > 0
    assert lp["store_bytes_est"] > lp["sidecar_bytes_est"] > 0
    shown = capsys.readouterr().out
    assert f"teacher.logprobs=20: the top 20 alternatives of ~{tokens:,} response tokens" in shown
    assert f"in {SIDECAR}; no extra cost (the API charges no tokens for logprobs)" in shown
    assert json.loads((tmp_path / "dry_run.json").read_text())["logprobs"] == lp
    off = pipeline_run(compose([f"out_dir={tmp_path / 'off'}", "dry_run=true", "size=smoke"]))
    assert "logprobs" not in off and "teacher.logprobs" not in capsys.readouterr().out


def test_push_to_hub_uploads_the_sidecar_into_the_dataset_repo(server, api_key, tmp_path, monkeypatch):
    import datasets
    import huggingface_hub

    pushed, uploaded = [], []
    monkeypatch.setattr(datasets.Dataset, "push_to_hub", lambda self, repo, **kw: pushed.append((repo, len(self))))
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_file", lambda self, **kw: uploaded.append(kw))
    out = tmp_path / "o"
    run(tiny(out, server.base_url, "teacher.logprobs=2", "push_to_hub=someone/lamini-test"))
    assert pushed == [("someone/lamini-test", 18)]
    (up,) = uploaded
    assert up["path_or_fileobj"] == str(out / SIDECAR) and up["path_in_repo"] == SIDECAR
    assert up["repo_id"] == "someone/lamini-test" and up["repo_type"] == "dataset"


def test_generate_py_refuses_a_bad_logprobs_with_exit_2(tmp_path, capfd, monkeypatch):
    res = run_script_inprocess("generate.py", "teacher.logprobs=21", "dry_run=true", f"out_dir={tmp_path / 'out'}",
                               f"hydra.run.dir={tmp_path / 'h'}", capfd=capfd, monkeypatch=monkeypatch, cwd=ROOT)
    fails_with(res, "teacher.logprobs=21 must be at most 20")


@pytest.mark.slow
def test_hf_local_stores_its_own_distribution_and_a_resume_keeps_it(tmp_path, monkeypatch):
    import torch
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    from lamini_lm.teachers.hf_local import HFLocalTeacher
    from lamini_lm.teachers.store import RequestStore

    loaded, calls = {}, []
    load = HFLocalTeacher._load

    def once(self):  # one model for the three runs below (loading the GGUF takes most of this test's time)
        if "lm" not in loaded:
            loaded["lm"] = load(self)
            model = loaded["lm"][0]
            generate = model.generate
            model.generate = lambda **kw: calls.append(1) or generate(**kw)
        self._lm = loaded["lm"]
        return self._lm

    monkeypatch.setattr(HFLocalTeacher, "_load", once)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    alpaca = tmp_path / "alpaca.jsonl"
    alpaca.write_text("".join(json.dumps({"instruction": i, "input": ""}) + "\n" for i in [
        "What is the capital of France?", "Write the French word for coffee, with its accent.",
        "Name two colours.", "Translate 'naïve café' to English."]))
    out = tmp_path / "out"
    overrides = [f"out_dir={out}", "teacher=hf_local", "teacher.logprobs=20", "teacher.batch_size=2", "size=smoke",
                 "size.self_instruct_without_topic=0", "size.self_instruct_with_topic=0", "size.alpaca=4",
                 f"seed_pools.alpaca.path={alpaca}", "teacher.max_tokens.responses=16", "responses.drop_truncated=false",
                 "progress=false", "decontam.n=0"]
    records = run(overrides)
    assert len(records) == 4 and len(calls) == 2  # 4 requests in batches of 2
    report = json.loads((out / "report.json").read_text())["assembly"]["logprobs"]
    assert report["records"] == 4 and report["left_out"] == {} and report["k"] == 20

    model, tok = loaded["lm"]
    piece_of = bytes_to_unicode()  # transformers' own byte -> character table, the forward direction
    to_id = lambda raw: tok.convert_tokens_to_ids("".join(piece_of[b] for b in raw))  # noqa: E731
    side, store = Sidecar(out / SIDECAR), RequestStore(out / "requests" / "responses.jsonl")
    stored = {s["id"]: s["request"] for s in read_jsonl(out / "requests" / "responses.jsonl")}
    for r in records:
        rid = r["meta"]["response_request_id"]
        whole = store.logprobs(rid)
        _same(side[r["id"]], whole.trimmed(r["response"]))
        assert b"".join(whole.tokens).decode("utf-8").strip() == r["response"]
        assert len(whole.tokens) == r["meta"]["usage"]["completion_tokens"] and whole.k == 20
        # the teacher's own log-softmax, computed apart: one forward pass over prompt + response (teacher forcing)
        prompt = tok(tok.apply_chat_template(stored[rid]["messages"], tokenize=False, add_generation_prompt=True),
                     add_special_tokens=False)["input_ids"]
        new = [to_id(t) for t in whole.tokens]
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([prompt + new])).logits[0, len(prompt) - 1 : -1]
        own = torch.log_softmax(logits.float(), dim=-1)
        top = own.topk(20, dim=-1).values.numpy()
        np.testing.assert_allclose(whole.top_logprobs, top, atol=2e-2, rtol=2e-3)  # float16, batch padding
        for t, alts in enumerate(whole.top_tokens):
            ids = [to_id(a) for a in alts]
            np.testing.assert_allclose(whole.top_logprobs[t], own[t, ids].numpy(), atol=2e-2, rtol=2e-3)

    # a kill after 3 replies: the rerun generates only the batch of the missing one (its stored batch-mate again,
    # padded as before, not stored twice) and gives the same log-probs and the same sidecar
    whole_sidecar = (out / SIDECAR).read_bytes()
    before = {r["id"]: store.logprobs(r["meta"]["response_request_id"]) for r in records}
    store.close()
    lines = (out / "requests" / "responses.jsonl").read_text().splitlines(keepends=True)
    (out / "requests" / "responses.jsonl").write_text("".join(lines[:3]))
    (out / SIDECAR).unlink()
    calls.clear()
    again = run(overrides)
    assert len(calls) == 1 and [r["id"] for r in again] == [r["id"] for r in records]
    resumed = RequestStore(out / "requests" / "responses.jsonl")
    for r in records:
        _same(resumed.logprobs(r["meta"]["response_request_id"]), before[r["id"]])
    resumed.close()
    assert (out / SIDECAR).read_bytes() == whole_sidecar
    calls.clear()
    run(overrides)
    assert calls == []  # everything stored: nothing generated again

    # greedy without repetition_penalty: the token written is, at every position, the teacher's own most likely one
    greedy = run([f"out_dir={tmp_path / 'greedy'}", *overrides[1:], "teacher.params.repetition_penalty=null",
                  "size.alpaca=2"])
    side = Sidecar(tmp_path / "greedy" / SIDECAR)
    assert len(greedy) == 2 and all(t == alts[0] for r in greedy for t, alts in zip(side[r["id"]].tokens,
                                                                                 side[r["id"]].top_tokens))


def test_each_token_is_named_by_the_bytes_it_adds_to_the_text():
    from tokenizers import Tokenizer, decoders, models
    from transformers import AutoTokenizer, PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    from lamini_lm import assets
    from lamini_lm.token_bytes import _unicode_to_byte, token_bytes

    assert _unicode_to_byte() == {c: b for b, c in bytes_to_unicode().items()}
    text = "Hello , world.\n It's é 日本  x\t\tdone ünïcödé 🙂"
    gpt2 = AutoTokenizer.from_pretrained(assets.path("gpt2_tokenizer"))  # byte-level BPE: a character may be split
    ids = gpt2(text)["input_ids"]
    table = token_bytes(gpt2, size=len(gpt2) + 3)  # an output layer with rows beyond the tokenizer: b""
    assert b"".join(table[i] for i in ids) == text.encode() and table[-3:] == [b""] * 3
    assert any(len(table[i].decode("utf-8", "replace")) != len(table[i].decode("utf-8", "ignore")) for i in ids)
    t5 = AutoTokenizer.from_pretrained(assets.path("t5_tokenizer"))  # SentencePiece: "▁" is a space
    ids = t5("Hello world, it is done", add_special_tokens=False)["input_ids"]
    table = token_bytes(t5)
    assert b"".join(table[i] for i in ids) == b" Hello world, it is done"
    assert table[t5.eos_token_id] == b"</s>"  # a special token: its own text
    # SentencePiece with byte fallback (Llama 2): <0xNN> is the byte NN
    vocab = {"<unk>": 0, "\u2581Hi": 1, "<0xC3>": 2, "<0xA9>": 3, "\u2581": 4}
    sp = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>", byte_fallback=True))
    sp.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()])
    assert token_bytes(PreTrainedTokenizerFast(tokenizer_object=sp)) == [b"<unk>", b" Hi", b"\xc3", b"\xa9", b" "]
