"""objective=token_kd: the teacher's stored top-k meets the student's target tokens (the teacher's own tokenizer,
GPT-2's BPE, T5's SentencePiece), the loss against a computation of its own, accumulation and packing, train.py
end to end, and a user's mistakes as one line."""

import functools
import json
import math

import numpy as np
import pytest
import torch

from lamini_lm import assets, prompts
from lamini_lm.data.collate import Collate
from lamini_lm.data.tokenization import Tokenize
from lamini_lm.errors import UserError
from lamini_lm.logprobs import SIDECAR, TokenLogprobs, write_sidecar
from lamini_lm.models.families import DecoderOnly, EncoderDecoder
from lamini_lm.token_bytes import token_bytes
from lamini_lm.training.objectives.alignment import TopKColumns
from lamini_lm.training.objectives.token_kd import TokenKD
from tests.helpers.run import fails_with, run_entry, run_script_inprocess
from tests.test_train_objective import _buckets, _reference, _softmax

K = 5
SMOL = dict(gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")


def _sample(n):
    from lamini_lm.config import PACKAGE_DIR

    lines = (PACKAGE_DIR / "data" / "sample" / "lamini_sample.jsonl").read_text().splitlines()
    return [json.loads(x) for x in lines[:n]]


@pytest.fixture(scope="module")
def teacher_tok():
    """SmolLM2-135M-Instruct's tokenizer (the hf_local teacher's), read from its GGUF file."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(assets.path("smollm2")), **SMOL)


def _tokenizer(name):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(assets.path(name)))
    tok.pad_token = tok.pad_token or tok.eos_token
    return tok


@functools.lru_cache(maxsize=4)
def _table(tok):
    return token_bytes(tok)


def teacher_reply(tok, response, rng, lead="", k=K):
    """What generate stores for a teacher that wrote ``lead + response`` (its own tokens, stripped to the response):
    at each token k alternatives of its vocabulary, the sampled one among them, most likely first. Returns it and the
    alternatives' token ids."""
    table = _table(tok)
    ids = tok(lead + response, add_special_tokens=False)["input_ids"]
    alts = [[i, *rng.choice([j for j in rng.integers(0, len(table), 3 * k) if j != i and table[j]], k - 1,
                            replace=False)] for i in ids]
    for row in alts:
        rng.shuffle(row)
    lp = np.log(np.sort(rng.dirichlet(np.ones(k), len(ids)) * 0.95, -1)[:, ::-1])
    t = TokenLogprobs([table[i] for i in ids], [[table[j] for j in row] for row in alts], lp)
    return t.trimmed(response), alts


def _write(path, records, tok, seed=0, leads=(), k=K):
    rng = np.random.default_rng(seed)
    replies = {}
    for i, r in enumerate(records):
        replies[r["id"]] = teacher_reply(tok, r["response"], rng, " " if i in leads else "", k)
    write_sidecar(path, [(rid, t) for rid, (t, _) in replies.items()], teacher="SmolLM2-135M-Instruct")
    return replies


def _columns(records, tok, family, sidecar, exact):
    batch = {k: [r[k] for r in records] for k in ("instruction", "response", "id")}
    style = prompts.get("alpaca" if isinstance(family, DecoderOnly) else "raw")
    cols = TopKColumns(sidecar, tok, family, exact, K)
    enc = Tokenize(tok, style, family, 512, 512, columns=cols)(batch)
    return enc, [np.asarray(x).reshape(-1, K) for x in enc["kd_logprobs"]], \
        [np.asarray(x).reshape(-1, K) for x in enc["kd_ids"]] if exact else None


def test_on_the_teachers_own_tokenizer_every_response_token_gets_its_own_distribution(tmp_path, teacher_tok):
    records = _sample(6)
    sidecar = tmp_path / SIDECAR
    # record 1's teacher wrote a leading space, stripped from the response: its first token is " X", not "X"
    replies = _write(sidecar, records, teacher_tok, leads=(1,))
    records[5] = {**records[5], "response": records[5]["response"] + " Edited."}  # its tokens no longer spell it
    family = DecoderOnly()
    enc, lps, ids = _columns(records, teacher_tok, family, sidecar, exact=True)
    for i, r in enumerate(records):
        positions = family.target_positions(enc["labels"][i])
        assert lps[i].shape == ids[i].shape == (len(positions), K)  # a row per target token
        n = len(teacher_tok(r["response"], add_special_tokens=False)["input_ids"])
        assert len(positions) == n + 1  # the response's tokens, then the EOS
        t, alts = replies[r["id"]]
        if i == 5:
            assert (lps[i] == -np.inf).all() and (ids[i] == -1).all()
            continue
        assert len(t.tokens) == n  # the student's tokens are the teacher's: position q is the teacher's q
        np.testing.assert_array_equal(ids[i][:n], alts[-n:])  # the alternatives as student ids: their own
        np.testing.assert_array_equal(lps[i][:n], t.top_logprobs.astype(np.float16))
        assert (lps[i][n] == -np.inf).all() and (ids[i][n] == -1).all()  # the EOS: no teacher distribution


@pytest.mark.parametrize("name,family", [("gpt2_tokenizer", DecoderOnly()), ("t5_tokenizer", EncoderDecoder())])
def test_across_tokenizers_a_token_meets_the_teacher_token_that_starts_where_it_does(tmp_path, teacher_tok, name,
                                                                                      family):
    records = _sample(30)
    sidecar = tmp_path / SIDECAR
    replies = _write(sidecar, records, teacher_tok, leads=(0, 3))
    tok = _tokenizer(name)
    enc, lps, _ = _columns(records, tok, family, sidecar, exact=False)
    aligned = total = 0
    for i, r in enumerate(records):
        text = r["response"].encode()
        t = replies[r["id"]][0]
        # each teacher token by its sorted log-probs (made-up, so no two alike)
        by_row = {np.sort(t.top_logprobs[j])[::-1].astype(np.float16).tobytes(): j
                  for j, (a, b) in enumerate(t.byte_spans()) if b > a}
        positions = family.target_positions(enc["labels"][i])
        ids = tok(r["response"], add_special_tokens=False)["input_ids"]
        assert lps[i].shape == (len(positions), K) and (lps[i][-1] == -np.inf).all()  # the EOS has none
        for q, row in enumerate(lps[i][:len(ids)]):
            total += 1
            if row[0] == -np.inf:
                continue
            aligned += 1
            # the teacher's distribution at one of its tokens, which starts where this one does
            at = max(t.byte_spans()[by_row[row.tobytes()]][0], 0)
            if name == "gpt2_tokenizer":  # byte-level: the decoded tokens before it are the text before it (unless
                before = tok.decode(ids[:q])  # they end inside a character, which decodes as U+FFFD)
                assert len(before.encode()) == at or "\ufffd" in before
            elif ids[q] != tok.unk_token_id:  # the piece's text follows the whitespace at that byte; a lone "▁" is
                piece = tok.convert_ids_to_tokens(ids[q])  # that whitespace
                rest = piece.lstrip("▁").encode()
                assert text[at:].lstrip().startswith(rest) if rest else text[at:at + 1].isspace(), (piece, at)
    # measured on these 30 sample responses: 0.93 of GPT-2's response tokens, 0.82 of T5's
    assert aligned / total > {"gpt2_tokenizer": 0.85, "t5_tokenizer": 0.7}[name], aligned / total


def test_the_log_probs_read_as_indices_are_what_get_gives(tmp_path, teacher_tok):
    from lamini_lm.logprobs import Sidecar

    records = _sample(4)
    _write(tmp_path / SIDECAR, records, teacher_tok, leads=(1,), k=3)
    sidecar = Sidecar(tmp_path / SIDECAR)
    for r in records:
        t = sidecar[r["id"]]
        sampled, top, lp, start = sidecar.indices(r["id"])
        assert [sidecar.tokens[i] for i in sampled] == t.tokens and start == t.start
        assert [[sidecar.tokens[j] for j in row if j >= 0] for row in top] == t.top_tokens
        np.testing.assert_array_equal(lp.astype(np.float32), t.top_logprobs)


def test_match_auto_is_exact_only_when_the_teachers_tokens_are_the_students(tmp_path, teacher_tok):
    import datasets

    records = _sample(4)
    _write(tmp_path / SIDECAR, records, teacher_tok)
    ds = datasets.Dataset.from_list(records)
    data = tmp_path / "d_all.jsonl"
    assert TokenKD().columns(ds, teacher_tok, DecoderOnly(), data).widths == {"kd_ids": K, "kd_logprobs": K}
    assert TokenKD().columns(ds, _tokenizer("gpt2_tokenizer"), DecoderOnly(), data).widths == {"kd_logprobs": K}
    assert TokenKD(match="exact").columns(ds, _tokenizer("gpt2_tokenizer"), DecoderOnly(), data).widths == \
        {"kd_ids": K, "kd_logprobs": K}
    with pytest.raises(UserError, match=r"1 of the 4 records have no teacher log-probs in .*id 'nope'"):
        TokenKD().columns(datasets.Dataset.from_list([*records[:3], {**records[3], "id": "nope"}]), teacher_tok,
                          DecoderOnly(), data)
    with pytest.raises(UserError, match="4 of the 4 records have no id"):
        TokenKD().columns(ds.remove_columns("id"), teacher_tok, DecoderOnly(), data)


# -- the loss -------------------------------------------------------------------------------------------------------

def _model(family):
    from tests.test_train_loss import _module

    torch.manual_seed(0)
    return _module("decoder_only" if isinstance(family, DecoderOnly) else "encoder_decoder").model.to(torch.float64)


def _toy_rows(family, tok, exact, seed=0):
    """Two records tokenised, and per target token a made-up teacher top-k (student ids when exact), a third of the
    rows without one."""
    records = {"instruction": ["Name a colour.", "Say hi."], "response": ["Blue, like the sky at noon.", "Hi there!"]}
    style = prompts.get("alpaca" if isinstance(family, DecoderOnly) else "raw")
    enc = Tokenize(tok, style, family, 64, 64)(records)
    rng = np.random.default_rng(seed)
    rows = {"input_ids": enc["input_ids"], "labels": enc["labels"], "kd_logprobs": [], "kd_ids": []}
    for labels in enc["labels"]:
        n = len(family.target_positions(labels))
        lp = np.log(np.sort(rng.dirichlet(np.ones(K), n) * 0.9, -1)[:, ::-1]).astype(np.float16)
        lp[:, -1] = -np.inf  # a teacher that gave k - 1
        lp[rng.random(n) < 0.33] = -np.inf
        rows["kd_logprobs"].append(lp.reshape(-1))
        rows["kd_ids"].append(np.stack([rng.choice(len(tok), K, replace=False) for _ in range(n)]).astype(np.int32)
                              .reshape(-1))
    if not exact:
        del rows["kd_ids"]
    return rows


CASES = [(dict(alpha=0.3, temperature=2.0, divergence="forward_kl"), True),
         (dict(alpha=0.7, temperature=0.5, divergence="jsd", beta=0.2), True),
         (dict(alpha=1.0, temperature=1.0, divergence="reverse_kl"), True),
         (dict(alpha=0.5, temperature=1.5), False)]


@pytest.mark.parametrize("settings,exact", CASES)
@pytest.mark.parametrize("family,tok_name", [(DecoderOnly(), "gpt2_tokenizer"), (EncoderDecoder(), "t5_tokenizer")])
def test_the_loss_is_the_formula_computed_apart(family, tok_name, settings, exact):
    tok = _tokenizer(tok_name)
    model = _model(family).eval()
    rows = _toy_rows(family, tok, exact)
    widths = {"kd_logprobs": K, **({"kd_ids": K} if exact else {})}
    batch = Collate(tok.pad_token_id, family.separate_labels, columns=widths)((rows, None))
    objective = TokenKD(**settings)
    objective.exact = exact
    with torch.no_grad():
        got = objective.loss(family, model, batch)
        # the model's own full logits, the predicting position of each target picked here
        if isinstance(family, DecoderOnly):
            full = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            picked = [full[i, p - 1] for i, y in enumerate(rows["labels"]) for p in family.target_positions(y)]
        else:
            full = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                         labels=batch["labels"]).logits
            picked = [full[i, p] for i, y in enumerate(rows["labels"]) for p in family.target_positions(y)]
    targets = [y[p] for y in rows["labels"] for p in family.target_positions(y)]
    lps = np.concatenate(rows["kd_logprobs"]).reshape(-1, K).astype(np.float64)
    ids = np.concatenate(rows["kd_ids"]).reshape(-1, K) if exact else None
    a, T = settings["alpha"], settings["temperature"]
    want, ce_sum, known = 0.0, 0.0, 0
    for n, (z, y) in enumerate(zip(picked, targets)):
        q = _softmax(z.numpy())
        ce = -math.log(q[y])
        ce_sum += ce
        keep = [c for c in range(K) if lps[n, c] > -np.inf]
        if not keep:
            want += ce
            continue
        known += 1
        t_top = [math.exp(lps[n, c]) for c in keep]
        s_top = [q[ids[n, c]] for c in keep] if exact else sorted(q, reverse=True)[:len(keep)]
        t_b, s_b = _buckets(t_top, 1 - sum(t_top), T), _buckets(s_top, 1 - sum(s_top), T)
        d = _reference(t_b, s_b, settings.get("divergence"), settings.get("beta", 0.5)) if exact else \
            float(np.abs(t_b - s_b).sum())
        want += (1 - a) * ce + a * T * T * d
    assert 0 < known < len(targets)
    assert math.isclose(got.total.item(), want, rel_tol=1e-10)
    assert math.isclose(got.logs["nll"].item(), ce_sum / len(targets), rel_tol=1e-10)
    assert math.isclose(got.logs["kd_aligned"].item(), known / len(targets), rel_tol=1e-6)


@pytest.mark.numerics
@pytest.mark.parametrize("exact", [True, False])
@pytest.mark.parametrize("family,tok_name", [(DecoderOnly(), "gpt2_tokenizer"), (EncoderDecoder(), "t5_tokenizer")])
def test_token_kd_gives_the_same_gradient_whatever_the_accumulation(family, tok_name, exact):
    from tests.helpers.accumulation import GRADIENT_GAP, accumulated_grads, gradient_gap
    from tests.test_train_loss import _module

    torch.manual_seed(0)
    tok = _tokenizer(tok_name)
    records = {"instruction": ["Name a colour.", "Give the capital of France and say why it matters.", "Say hi.",
                               "Add 2 and 3."],
               "response": ["Blue.", "Paris, the seat of government.", "Hi!", "5"]}
    style = prompts.get("alpaca" if isinstance(family, DecoderOnly) else "raw")
    enc = Tokenize(tok, style, family, 512, 512)(records)
    rng = np.random.default_rng(0)
    rows = {"input_ids": enc["input_ids"], "labels": enc["labels"], "kd_logprobs": [], "kd_ids": []}
    for y in enc["labels"]:
        n = len(family.target_positions(y))
        lp = np.log(np.sort(rng.dirichlet(np.ones(K), n) * 0.9, -1)).astype(np.float16)
        lp[-1] = -np.inf
        rows["kd_logprobs"].append(lp.reshape(-1))
        rows["kd_ids"].append(rng.integers(0, len(tok), n * K).astype(np.int32))
    widths = {"kd_logprobs": K, **({"kd_ids": K} if exact else {})}
    collate = Collate(tok.pad_token_id, family.separate_labels, columns=widths)
    total = sum(enc["target_length"])
    module = _module("decoder_only" if isinstance(family, DecoderOnly) else "encoder_decoder").to(torch.float64)
    module.objective = TokenKD(alpha=0.6, temperature=2.0, divergence="jsd", beta=0.3)
    module.objective.exact = exact
    module.log = lambda *a, **k: None

    def grads(micro_batches, accumulation):
        return accumulated_grads(module, collate, rows, total, micro_batches, accumulation)

    one = grads([[0, 1, 2, 3]], 1)
    assert one.abs().max() > 0.01
    assert gradient_gap(one, grads([[0], [1], [2], [3]], 4)) <= GRADIENT_GAP["float64"]
    assert gradient_gap(one, grads([[2, 1], [0, 3]], 2)) <= GRADIENT_GAP["float64"]
    module.objective.alpha = 0.0  # the check can fail: a different loss moves the gradient far more
    assert gradient_gap(one, grads([[0, 1, 2, 3]], 1)) > 100 * GRADIENT_GAP["float64"]


@pytest.mark.numerics
@pytest.mark.parametrize("model_name", ["tiny_llama", "tiny_t5"])
def test_a_packed_row_gives_token_kd_the_padded_rows_loss_and_gradient(model_name):
    from tests.test_packing import RTOL, _setup

    family, model, tok, rows = _setup(model_name, True)
    rng = np.random.default_rng(1)
    rows = {**rows, "kd_logprobs": [], "kd_ids": []}
    for y in rows["labels"]:
        n = len(family.target_positions(y))
        lp = np.log(np.sort(rng.dirichlet(np.ones(K), n) * 0.9, -1)).astype(np.float16)
        lp[0] = -np.inf
        rows["kd_logprobs"].append(lp.reshape(-1))
        rows["kd_ids"].append(rng.integers(0, len(tok), n * K).astype(np.int32))
    objective = TokenKD(alpha=0.5, temperature=2.0)
    objective.exact = True
    out = {}
    for packed in (True, False):
        batch = Collate(tok.pad_token_id, family.separate_labels, packed=packed,
                        columns={"kd_logprobs": K, "kd_ids": K})((rows, None))
        model.zero_grad()
        loss = objective.loss(family, model, batch)
        loss.total.backward()
        out[packed] = loss, torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    assert "cu_seq_lens_q" in Collate(tok.pad_token_id, family.separate_labels, packed=True)((rows, None))
    (lp, gp), (ld, gd) = out[True], out[False]
    assert torch.isclose(lp.total, ld.total, rtol=RTOL, atol=0)
    assert lp.logs["kd_aligned"] == ld.logs["kd_aligned"] and 0 < ld.logs["kd_aligned"] < 1
    assert ((gp - gd).abs().max() / gd.abs().max()).item() <= RTOL


# -- train.py -------------------------------------------------------------------------------------------------------

SMALL = ["logger=csv", "data=jsonl", "data.val_size=8", "global_batch_size=8", "trainer.max_epochs=1",
         "callbacks.sample_generations.max_new_tokens=4", "export.enabled=false"]


@pytest.fixture(scope="module")
def kd_data(tmp_path_factory, teacher_tok):
    """24 sample records and their teacher log-probs (SmolLM2's tokens) beside them, as generate.py writes them."""
    folder = tmp_path_factory.mktemp("d_all")
    records = _sample(24)
    (folder / "d_all.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    _write(folder / SIDECAR, records, teacher_tok, leads=(2,))
    return folder / "d_all.jsonl"


@pytest.mark.slow
@pytest.mark.parametrize("model_args", [
    ["model=tiny_t5"],
    # a student of the teacher's own tokenizer: the exact divergence
    ["model=tiny_llama", "model.hub_id=${asset:smollm2}", f"model.gguf_file={SMOL['gguf_file']}",
     "model.tokenizer=${model.hub_id}", "model.architecture.vocab_size=49152", "objective.divergence=jsd"],
], ids=["t5_uld", "smollm2_tokenizer_exact"])
def test_train_py_distils_the_stored_top_k(tmp_path, kd_data, model_args):
    res = run_entry("train.py", *model_args, "objective=token_kd", f"data.path={kd_data}", *SMALL,
                    f"hydra.run.dir={tmp_path}")
    assert res.returncode == 0, res.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["global_step"] == 2
    # measured: ~0.8 of T5's target tokens (its EOS and the tokens cut differently have none), ~0.95 of the
    # teacher's own tokenizer's (all but the EOS)
    exact = "tiny_llama" in model_args[0]
    assert (0.9 if exact else 0.6) < metrics["train/kd_aligned"] < 1
    assert metrics["train/kd_loss"] > 0 and math.isfinite(metrics["val/loss"])
    log = (tmp_path / "train.log").read_text()
    assert ("exact top-k divergence" if exact else "ULD's sorted-probability") in log


@pytest.mark.slow
def test_a_gpt2_student_distils_the_stored_top_k_across_tokenizers(tmp_path, kd_data, capfd, monkeypatch):
    res = run_script_inprocess("train.py", "model=tiny_gpt2", "objective=token_kd", f"data.path={kd_data}", *SMALL,
                               f"hydra.run.dir={tmp_path / 'run'}", capfd=capfd, monkeypatch=monkeypatch, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert 0.8 < metrics["train/kd_aligned"] < 1 and metrics["train/kd_loss"] > 0  # measured: 0.92
    assert "ULD's sorted-probability" in (tmp_path / "run" / "train.log").read_text()


@pytest.mark.slow
def test_a_users_mistake_with_token_kd_is_one_line(tmp_path, kd_data, capfd, monkeypatch):
    def run(*argv):
        return run_script_inprocess("train.py", "model=tiny_gpt2", "objective=token_kd", *SMALL, *argv, capfd=capfd,
                                    monkeypatch=monkeypatch, cwd=tmp_path)

    data = f"data.path={kd_data}"
    fails_with(run(data, "objective.alpha=1.5"), "objective.alpha=1.5", "[0, 1]")
    fails_with(run(data, "objective.temperature=0"), "objective.temperature=0", "positive")
    fails_with(run(data, "objective.divergence=kl"), "objective.divergence=kl", "forward_kl, reverse_kl, jsd")
    fails_with(run(data, "objective.beta=2"), "objective.beta=2")
    fails_with(run(data, "objective.match=same"), "objective.match=same", "auto, exact, uld")
    alone = tmp_path / "alone.jsonl"  # records without their log-probs beside them
    alone.write_text(kd_data.read_text())
    fails_with(run(f"data.path={alone}"), f"no teacher log-probs at {tmp_path / SIDECAR}", "teacher.logprobs=<k>")
    # records the log-probs do not cover: found once the data is read (the model has loaded)
    other = tmp_path / "other" / "d_all.jsonl"
    other.parent.mkdir()
    other.write_text("".join(json.dumps({**json.loads(x), "id": f"x{i}"}) + "\n"
                             for i, x in enumerate(kd_data.read_text().splitlines())))
    fails_with(run(f"data.path={other}", f"objective.logprobs={kd_data.parent / SIDECAR}"),
               "24 of the 24 records have no teacher log-probs", "id 'x0'")
