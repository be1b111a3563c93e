"""objective=online_kd: a teacher model run beside the student. Its loss against a computation of its own (the
teacher's rows, and its own text across tokenizers), against token_kd given the whole vocabulary from the same
teacher, accumulation, the on-policy share, the teacher kept out of training's state, the planner, train.py end to
end (GPT-2-tokenizer-free tiny Llama, T5 of the real SmolLM2 teacher, a resume), and a user's mistakes as one line."""

import json
import math

import numpy as np
import pytest
import torch

from lamini_lm import assets, config, targets
from lamini_lm.data.collate import Collate
from lamini_lm.data.tokenization import Tokenize
from lamini_lm.errors import UserError
from lamini_lm.models.families import IGNORE_INDEX, DecoderOnly
from lamini_lm.training.objectives.base import Objective
from lamini_lm.training.objectives.online_kd import OnlineKD, TeacherText
from tests.helpers.run import fails_with, run_entry, run_script_inprocess
from tests.test_train_objective import _buckets, _reference, _softmax

SMOL = "SmolLM2-135M-Instruct.Q4_1.gguf"
RECORDS = {"instruction": ["Name a colour.", "Give the capital of France and say why it matters.", "Say hi.",
                           "Add 2 and 3."],
           "response": ["Blue, like the sky at noon.", "Paris, the seat of government.", "Hi there!", "5"]}


@pytest.fixture(scope="module")
def smol_tok(tmp_path_factory):
    """SmolLM2-135M-Instruct's tokenizer (the real teacher's), read once from its GGUF file and saved as a folder that
    loads in a second: a tiny model of it is a student or teacher of the teacher's own tokenizer."""
    from transformers import AutoTokenizer

    folder = tmp_path_factory.mktemp("smollm2_tokenizer")
    AutoTokenizer.from_pretrained(str(assets.path("smollm2")), gguf_file=SMOL).save_pretrained(folder)
    return str(folder)


def tiny(smol_tok, name="tiny_llama"):
    """Overrides of a tiny randomly initialised model of SmolLM2's tokenizer (as student: model.*; as teacher:
    objective.teacher.*)."""
    return [f"tokenizer={smol_tok}", "architecture.vocab_size=49152"] if name == "tiny_llama" else []


def objective(smol_tok, *overrides, teacher="tiny_llama") -> OnlineKD:
    """online_kd with a tiny teacher of SmolLM2's tokenizer and, like SmolLM2's config, its chat template."""
    cfg = config.compose("train", ["objective=online_kd", f"model@objective.teacher={teacher}",
                                   *[f"objective.teacher.{o}" for o in tiny(smol_tok, teacher)],
                                   "objective.teacher.prompt_style=chat", *overrides])
    return targets.build(cfg.objective, "objective", base=Objective)


def student(name, smol_tok=None):
    """(family, float64 model in eval mode, tokenizer) of a tiny student; tiny_llama of SmolLM2's tokenizer."""
    from lamini_lm.models.backbone import build_family, load_model, load_tokenizer
    from lamini_lm.models.spec import ModelSpec

    extra = [f"model.{o}" for o in tiny(smol_tok, name)] if smol_tok else []
    spec = config.typed(config.compose("train", [f"model={name}", *extra]).model, ModelSpec, "model")
    family = build_family(spec)
    torch.manual_seed(1)
    return family, load_model(spec, family).to(torch.float64).eval(), load_tokenizer(spec)


def rows_of(family, tok, obj, records=RECORDS):
    """The records tokenised as train.py does, with the objective's columns (decided here, as the datamodule does)."""
    import datasets

    cols = obj.columns(datasets.Dataset.from_dict(records), tok, family, None)
    enc = Tokenize(tok, family.style(), family, 512, 512, columns=cols)(records)
    keep = ["input_ids", "labels", *(cols.widths if cols else ())]
    return {k: enc[k] for k in keep}, (cols.widths if cols else {})


def picked(model, family, rows):
    """The model's own full logits at each example's target positions, picked here (float64 numpy)."""
    out = []
    with torch.no_grad():
        for x, y in zip(rows["input_ids"], rows["labels"]):
            if isinstance(family, DecoderOnly):
                logits = model(input_ids=torch.tensor([x])).logits[0]
                out += [logits[p - 1].numpy() for p in family.target_positions(y)]
            else:
                logits = model(input_ids=torch.tensor([x]), labels=torch.tensor([y])).logits[0]
                out += [logits[p].numpy() for p in family.target_positions(y)]
    return out


def expected(obj, s_logits, t_logits, targets_, known, shared):
    """The loss by hand: per target token (1 - alpha) CE + alpha T^2 D where the teacher meets it, CE elsewhere."""
    a, T, total = obj.alpha, obj.temperature, 0.0
    for z, y, t, ok in zip(s_logits, targets_, t_logits, known):
        q = _softmax(z)
        ce = -math.log(q[y])
        if not ok:
            total += ce
            continue
        if shared:
            d = _reference(_softmax(t / T), _softmax(z / T), obj.divergence, obj.beta)
        else:  # ULD: the teacher's top-k sorted probabilities and the student's k largest, each with its rest
            t_top = sorted(_softmax(t), reverse=True)[:obj.top_k]
            s_top = sorted(q, reverse=True)[:obj.top_k]
            d = float(np.abs(_buckets(t_top, 1 - sum(t_top), T) - _buckets(s_top, 1 - sum(s_top), T)).sum())
        total += (1 - a) * ce + a * T * T * d
    return total


# -- the teacher's rows --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("settings,packed", [(dict(alpha=0.3, temperature=2.0, divergence="forward_kl"), False),
                                             (dict(alpha=0.7, temperature=0.5, divergence="jsd", beta=0.2), True),
                                             (dict(alpha=1.0, temperature=1.0, divergence="reverse_kl"), True)])
def test_on_the_teachers_rows_the_loss_is_the_full_divergence_computed_apart(smol_tok, settings, packed):
    family, model, tok = student("tiny_llama", smol_tok)
    obj = objective(smol_tok, *[f"objective.{k}={v}" for k, v in settings.items()])
    rows, widths = rows_of(family, tok, obj)
    assert obj.same_rows and widths == {}
    batch = Collate(tok.pad_token_id, False, packed=packed)((rows, None))
    assert packed == ("cu_seq_lens_q" in batch)
    with torch.no_grad():
        got = obj.loss(family, model, batch)
    teacher = obj.teacher(model, torch.device("cpu"))
    assert next(teacher.parameters()).dtype == torch.float64  # the student's compute dtype
    targets_ = [y[p] for y in rows["labels"] for p in family.target_positions(y)]
    want = expected(obj, picked(model, family, rows), picked(teacher, family, rows), targets_,
                    [True] * len(targets_), True)
    assert math.isclose(got.total.item(), want, rel_tol=1e-9)
    assert got.logs["kd_aligned"].item() == 1.0 and got.logs["kd_loss"].item() > 0


def test_on_the_teachers_rows_it_is_token_kd_given_the_teachers_whole_vocabulary(smol_tok):
    """The strong cross-check: token_kd's exact top-k divergence, fed k = V of the same teacher's log-probabilities at
    every target token, is online_kd's loss (the two rest buckets, both floored at REST_FLOOR, the only difference)."""
    from lamini_lm.training.objectives.token_kd import TokenKD

    family, model, tok = student("tiny_llama", smol_tok)
    settings = dict(alpha=0.6, temperature=1.5, divergence="jsd", beta=0.3)
    obj = objective(smol_tok, *[f"objective.{k}={v}" for k, v in settings.items()])
    rows, _ = rows_of(family, tok, obj)
    teacher = obj.teacher(model, torch.device("cpu"))
    lp = torch.log_softmax(torch.tensor(np.stack(picked(teacher, family, rows))), -1)
    order = lp.argsort(-1, descending=True)
    counts = [len(family.target_positions(y)) for y in rows["labels"]]
    ids, values = order.split(counts), lp.gather(-1, order).split(counts)
    stored = {**rows, "kd_ids": [x.numpy().reshape(-1) for x in ids],
              "kd_logprobs": [x.numpy().reshape(-1) for x in values]}
    v = lp.shape[-1]
    batch = Collate(tok.pad_token_id, False, columns={"kd_ids": v, "kd_logprobs": v})((stored, None))
    kd = TokenKD(**settings)
    kd.exact = True
    with torch.no_grad():
        online, offline = obj.loss(family, model, batch), kd.loss(family, model, batch)
    assert math.isclose(online.total.item(), offline.total.item(), rel_tol=1e-6)
    assert online.logs["kd_aligned"] == offline.logs["kd_aligned"] == 1
    kd.alpha = 0.0  # the check can fail: the text's cross-entropy alone is another number
    assert not math.isclose(online.total.item(), kd.loss(family, model, batch).total.item(), rel_tol=1e-3)



def test_the_teacher_computes_in_the_dtype_the_student_computes_in(smol_tok):
    obj = objective(smol_tok)
    student_ = torch.nn.Linear(2, 2)
    cpu = torch.device("cpu")
    teacher = obj.teacher(student_, cpu)
    assert next(teacher.parameters()).dtype == torch.float32 and not teacher.training
    with torch.autocast("cpu", dtype=torch.bfloat16):  # bf16-mixed: the autocast dtype, no fp32 copy kept
        assert obj.teacher(student_, cpu) is teacher and next(teacher.parameters()).dtype == torch.bfloat16
    assert next(obj.teacher(student_.to(torch.bfloat16), cpu).parameters()).dtype == torch.bfloat16  # bf16-true
    assert next(obj.teacher(student_.double(), cpu).parameters()).dtype == torch.float64
    assert not any(p.requires_grad for p in teacher.parameters())

# -- its own text, across tokenizers ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["tiny_gpt2", "tiny_t5"])
def test_across_tokenizers_the_teacher_reads_its_own_format_and_meets_tokens_that_start_where_its_do(smol_tok, name):
    from lamini_lm.config import PACKAGE_DIR
    from lamini_lm.token_bytes import token_bytes

    family, model, tok = student(name)
    obj = objective(smol_tok)
    lines = (PACKAGE_DIR / "data" / "sample" / "lamini_sample.jsonl").read_text().splitlines()[:60]
    records = {k: [json.loads(x)[k] for x in lines] for k in ("instruction", "response")}
    rows, widths = rows_of(family, tok, obj, records)
    assert not obj.same_rows and not obj.shared_vocab and widths == TeacherText.widths
    from transformers import AutoTokenizer

    ttok = AutoTokenizer.from_pretrained(smol_tok)
    table, t_table = token_bytes(tok), token_bytes(ttok)
    aligned = total = 0
    for i, (instruction, response) in enumerate(zip(records["instruction"], records["response"])):
        t_ids, t_labels = rows["okd_input_ids"][i].tolist(), rows["okd_labels"][i].tolist()
        # its own format: SmolLM2's chat template around the instruction, then the response and its EOS
        head = ttok.apply_chat_template([{"role": "user", "content": instruction}], tokenize=False,
                                        add_generation_prompt=True)
        assert ttok.decode(t_ids).startswith(head) and t_ids[-1] == ttok.eos_token_id
        t_positions = DecoderOnly().target_positions(t_labels)
        labels = rows["labels"][i]
        positions = family.target_positions(labels)
        assert len(rows["okd_rows"][i]) == len(positions)
        ids = tok(response, add_special_tokens=False)["input_ids"]
        for n, (p, r) in enumerate(zip(positions, rows["okd_rows"][i].tolist())):
            total += 1
            if r < 0:
                continue
            aligned += 1
            # both predict the next token from the same text: the bytes of the response before each
            t_before = b"".join(t_table[x] for x in t_labels[t_positions[0]:t_positions[r]])
            if labels[p] == tok.eos_token_id:  # the EOS meets the teacher's EOS, after the whole response
                assert t_labels[t_positions[r]] == ttok.eos_token_id and t_before == response.encode()
                continue
            s_before = b"".join(table[x] for x in ids[:n])
            if name == "tiny_gpt2":
                assert s_before == t_before
            elif tok.unk_token_id not in ids[:n]:  # SentencePiece: the pieces before spell the text before, but
                # for its whitespace (a "▁" stands for any; newlines are normalised away) and characters it lacks
                assert b"".join(s_before.split()) == b"".join(t_before.split())
    # measured on these 60 sample records: 0.963 of GPT-2's target tokens (its EOS included: all but where the two
    # BPEs cut the text differently), 0.843 of T5's
    assert {"tiny_gpt2": 0.94, "tiny_t5": 0.8}[name] < aligned / total < 1, aligned / total


# the teacher's own sequences in one packed row (its attention keeps them apart), or padded (one that does not)
@pytest.mark.parametrize("name,attention", [("tiny_gpt2", "sdpa_varlen"), ("tiny_t5", "sdpa")])
def test_across_tokenizers_the_loss_is_uld_on_the_teachers_own_text_computed_apart(smol_tok, name, attention):
    family, model, tok = student(name)
    obj = objective(smol_tok, "objective.alpha=0.4", "objective.temperature=2.0", "objective.top_k=7",
                    f"objective.teacher.attn_implementation={attention}")
    rows, widths = rows_of(family, tok, obj)
    batch = Collate(tok.pad_token_id, family.separate_labels, columns=widths)((rows, None))
    with torch.no_grad():
        got = obj.loss(family, model, batch)
    teacher = obj.teacher(model, torch.device("cpu"))
    # the teacher on each of its own sequences alone, unpadded; a student token takes the row its column names
    t_rows = picked(teacher, DecoderOnly(), {"input_ids": [x.tolist() for x in rows["okd_input_ids"]],
                                             "labels": [y.tolist() for y in rows["okd_labels"]]})
    counts = np.cumsum([0] + [len(DecoderOnly().target_positions(y.tolist())) for y in rows["okd_labels"]])
    index = [int(r) + int(o) if r >= 0 else -1 for rs, o in zip(rows["okd_rows"], counts) for r in rs]
    targets_ = [y[p] for y in rows["labels"] for p in family.target_positions(y)]
    want = expected(obj, picked(model, family, rows), [t_rows[j] if j >= 0 else None for j in index], targets_,
                    [j >= 0 for j in index], False)
    assert math.isclose(got.total.item(), want, rel_tol=1e-9)
    assert 0.5 < got.logs["kd_aligned"].item() <= 1


# -- accumulation, packing -----------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.numerics
@pytest.mark.parametrize("name", ["tiny_llama", "tiny_gpt2", "tiny_t5"])
def test_online_kd_gives_the_same_gradient_whatever_the_accumulation(smol_tok, name):
    from tests.helpers.accumulation import GRADIENT_GAP, accumulated_grads, gradient_gap

    family, model, tok = student(name, smol_tok if name == "tiny_llama" else None)
    obj = objective(smol_tok, "objective.alpha=0.6", "objective.temperature=2.0", "objective.divergence=jsd")
    rows, widths = rows_of(family, tok, obj)
    collate = Collate(tok.pad_token_id, family.separate_labels, columns=widths)
    total = sum(len(family.target_positions(y)) for y in rows["labels"])
    module = family.module(model, _spec(name), _optim())
    module.objective = obj
    module.log = lambda *a, **k: None

    def grads(micro_batches, accumulation):
        return accumulated_grads(module, collate, rows, total, micro_batches, accumulation)

    one = grads([[0, 1, 2, 3]], 1)
    assert one.abs().max() > 1e-4
    assert gradient_gap(one, grads([[0], [1], [2], [3]], 4)) <= GRADIENT_GAP["float64"]
    assert gradient_gap(one, grads([[2, 1], [0, 3]], 2)) <= GRADIENT_GAP["float64"]
    teacher = obj.teacher(model, torch.device("cpu"))
    # no gradient ever reaches the teacher, and it is none of the module's parameters or state
    assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())
    assert not teacher.training
    own = {id(p) for p in module.parameters()}
    assert not any(id(p) in own for p in teacher.parameters())
    assert set(module.state_dict()) == {f"model.{k}" for k in model.state_dict()}
    obj.alpha = 0.0  # the check can fail: a different loss moves the gradient far more
    assert gradient_gap(one, grads([[0, 1, 2, 3]], 1)) > 100 * GRADIENT_GAP["float64"]


def _spec(name):
    from lamini_lm.models.spec import ModelSpec

    return config.typed(config.compose("train", [f"model={name}"]).model, ModelSpec, "model")


def _optim():
    from lamini_lm.training.spec import OptimSpec

    return OptimSpec(lr=1e-3)


# -- on-policy -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("packed", [False, True])
def test_an_on_policy_batch_distils_the_teacher_over_the_students_own_samples(smol_tok, packed):
    import random

    family, model, tok = student("tiny_llama", smol_tok)
    obj = objective(smol_tok, "objective.lmbda=1", "objective.max_new_tokens=5", "objective.alpha=0.5",
                    "objective.temperature=2.0")
    rows, _ = rows_of(family, tok, obj)
    batch = Collate(tok.pad_token_id, False, packed=packed)((rows, None))
    torch.manual_seed(3)
    random.seed(0)
    got = obj.loss(family, model, batch)
    assert got.logs["on_policy"] == 1 and got.logs["kd_aligned"] == 1
    got.total.backward()
    assert any(p.grad is not None and p.grad.abs().max() > 0 for p in model.parameters())
    # the same samples again (same seed), the loss by hand: the students' prompts, each continued by its sample
    torch.manual_seed(3)
    prompts_ = [x[:next(i for i, v in enumerate(y) if v != IGNORE_INDEX)] for x, y in zip(rows["input_ids"],
                                                                                           rows["labels"])]
    teacher = obj.teacher(model, torch.device("cpu"))
    want = n = 0
    width = max(map(len, prompts_))
    ids = torch.tensor([[tok.pad_token_id] * (width - len(p)) + p for p in prompts_])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts_])
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=mask, do_sample=True, top_k=0, top_p=1.0,
                             temperature=1.0, max_new_tokens=5, pad_token_id=tok.pad_token_id,
                             eos_token_id=tok.eos_token_id)
    for p, s in zip(prompts_, out[:, width:].tolist()):
        s = s[:s.index(tok.eos_token_id) + 1] if tok.eos_token_id in s else s
        seq = {"input_ids": [p + s], "labels": [[IGNORE_INDEX] * len(p) + s]}
        for z, t in zip(picked(model, family, seq), picked(teacher, family, seq)):
            want += _reference(_softmax(t / 2.0), _softmax(z / 2.0), "forward_kl", 0.5)
            n += 1
    own = sum(len(family.target_positions(y)) for y in rows["labels"])
    assert math.isclose(got.total.item(), 0.5 * 4 * want * own / n, rel_tol=1e-9)


# -- the planner ---------------------------------------------------------------------------------------------------

def test_the_planner_counts_the_teachers_weights_forward_and_logits(smol_tok):
    from lamini_lm.training import memory, plan, preflight
    from lamini_lm.training.spec import PlanSpec

    base = ["model=gpt2", "trainer=gpu", "trainer.precision=bf16-mixed"]
    seq = plan.setup(config.compose("train", base))
    kd = plan.setup(config.compose("train", [*base, "objective=online_kd"]))  # SmolLM2-135M-Instruct teaches
    one, eight = (plan.point(kd, "single", b, 512, 512, False) for b in (1, 8))
    plain = plan.point(seq, "single", 8, 512, 512, False)
    assert plain.objective == 0 and eight.total == plain.total + eight.objective
    # by hand: 134.5M weights in bf16; per token one layer's tensors (in and out, q, k, v, the attention's output:
    # 2 x 576 + 2 x 576 + 2 x 192; the gated feed-forward's three 1,536-wide ones) in bf16; per target token the
    # teacher's logits (bf16, fp32, its log-softmax) and the divergence's three fp32 tensors over 49,152 entries
    params = 134_515_008
    per_example = 512 * 2 * (4 * 576 + 2 * 192 + 3 * 1536) + 511 * 49152 * (2 + 4 + 4 + 12)
    assert one.objective == params * 2 + per_example
    assert eight.objective == params * 2 + 8 * per_example
    assert memory.PRECISION["bf16-mixed"][1] == 2
    # the preflight: a device that holds the student's plan but not the teacher's beside it stops the run
    batch = ["micro_batch_size=8", "global_batch_size=8", "plan.reserve_gb=0"]
    cfg = config.compose("train", [*base, *batch, "objective=online_kd"])
    alone = config.compose("train", [*base, *batch])
    p = config.typed(alone.plan, PlanSpec, "plan")
    fits = plan.point(plan.setup(alone), "single", 8, p.length, p.target_length, False).total
    preflight.verdict(alone, p, int(fits) + 1, 1)
    with pytest.raises(UserError, match="the planner puts the peak at"):
        preflight.verdict(cfg, p, int(fits) + 1, 1)
    # a teacher the planner cannot size: the preflight is skipped, as for a student without an architecture
    unsized = config.compose("train", [*base, *batch, "objective=online_kd", "objective.teacher.architecture=null"])
    preflight.verdict(unsized, p, 1, 1)
    with pytest.raises(UserError, match="objective.teacher.architecture: teacher 'smollm2_135m' carries none"):
        plan.setup(unsized)
    # the table shows it
    out = plan.plan(cfg)
    assert plan.render(out).count("teacher") >= 2 and all(r["objective"] > 0 for r in out["rows"])


# -- train.py ------------------------------------------------------------------------------------------------------

SMALL = ["logger=csv", "data.val_size=32", "global_batch_size=8", "trainer.max_epochs=1", "data.max_target_length=48",
         "callbacks.sample_generations.num_samples=0", "callbacks.throughput.peak_flops=1e12"]


def _same_tokenizer(smol_tok):
    """A tiny Llama student and a tiny Llama teacher, both of SmolLM2's tokenizer (the teacher its chat template too),
    on packed rows, a quarter of the micro-batches on-policy."""
    return ["model=tiny_llama", *[f"model.{o}" for o in tiny(smol_tok)], "objective=online_kd",
            "model@objective.teacher=tiny_llama", *[f"objective.teacher.{o}" for o in tiny(smol_tok)],
            "objective.teacher.prompt_style=chat", "objective.lmbda=0.25", "objective.max_new_tokens=8",
            "data.packing=padding_free", "micro_batch_size=4", "+trainer.max_steps=4", *SMALL]


def _history(run):
    import csv

    with open(run / "csv" / "metrics.csv", newline="") as f:
        return [{k: v for k, v in row.items() if k.startswith("train/") and v} for row in csv.DictReader(f)]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_train_py_distils_on_the_teachers_rows_and_a_resume_rebuilds_the_teacher(tmp_path, smol_tok, capfd,
                                                                                 monkeypatch):
    from safetensors.torch import load_file

    def train(run, *more):
        return run_script_inprocess("train.py", *_same_tokenizer(smol_tok), f"hydra.run.dir={run}", *more,
                                    capfd=capfd, monkeypatch=monkeypatch, cwd=tmp_path)

    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    res = train(straight)
    assert res.returncode == 0, res.stderr[-3000:]
    metrics = json.loads((straight / "metrics.json").read_text())
    assert metrics["global_step"] == 4 and metrics["train/kd_aligned"] == 1 and metrics["train/kd_loss"] > 0
    history = _history(straight)
    assert any(r.get("train/on_policy") == "1.0" for r in history) and \
        any(r.get("train/on_policy") == "0.0" for r in history)
    # the teacher is in neither the checkpoint, its optimizer state, nor the export
    _, alone, _ = student("tiny_llama", smol_tok)
    ckpt = torch.load(straight / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert set(ckpt["state_dict"]) == {f"model.{k}" for k in alone.state_dict()}
    assert len(ckpt["optimizer_states"][0]["state"]) == len(list(alone.parameters()))
    exported = load_file(straight / "hf" / "model.safetensors")
    assert sum(v.numel() for v in exported.values()) == alone.num_parameters() < 3_500_000  # the 3.2M student alone
    assert "on the student's rows" in (straight / "train.log").read_text()
    # stopped by SIGTERM after step 2, resumed: the same history, the teacher rebuilt from its config
    res = train(stopped, "+callbacks.stop._target_=tests.helpers.kill.KillAtStep", "+callbacks.stop.step=2",
                "+callbacks.stop.sig=SIGTERM")
    assert res.returncode == 143, res.stderr[-3000:]
    res = train(stopped, "~callbacks.stop")
    assert res.returncode == 0, res.stderr[-3000:]
    assert _history(stopped) == history
    assert (straight / "train.log").read_text().count("teacher tiny_llama loaded") == 1
    assert (stopped / "train.log").read_text().count("teacher tiny_llama loaded") == 2


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_train_py_distils_the_real_smollm2_teacher_into_a_t5_student(tmp_path):
    res = run_entry("train.py", "model=tiny_t5", "objective=online_kd", *SMALL, "+trainer.max_steps=2",
                    "export.enabled=false", f"hydra.run.dir={tmp_path}")
    assert res.returncode == 0, res.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["global_step"] == 2
    # measured: 0.87 of T5's target tokens in these two steps meet one of SmolLM2's (its EOS included)
    assert 0.6 < metrics["train/kd_aligned"] < 1 and 0 < metrics["train/kd_loss"] < 2
    log = (tmp_path / "train.log").read_text()
    assert "teacher smollm2_135m loaded (134.5M parameters" in log and "ULD on its top 20" in log


@pytest.mark.slow
def test_a_users_mistake_with_online_kd_is_one_line(tmp_path, smol_tok, capfd, monkeypatch):
    def run(*argv):
        return run_script_inprocess("train.py", "model=tiny_gpt2", "objective=online_kd", *SMALL, *argv,
                                    capfd=capfd, monkeypatch=monkeypatch, cwd=tmp_path)

    fails_with(run("objective.teacher=tiny_llama"), "objective.teacher=tiny_llama", "model@objective.teacher=<name>")
    fails_with(run("objective.top_k=0"), "objective.top_k=0", "positive whole number")
    fails_with(run("objective.lmbda=1.5"), "objective.lmbda=1.5", "[0, 1]")
    fails_with(run("objective.divergence=kl"), "objective.divergence=kl", "forward_kl, reverse_kl, jsd")
    fails_with(run("objective.teacher.gguf_file=nope.gguf"), "model.gguf_file=nope.gguf is not in the model folder")
    # on-policy samples need the teacher's own tokenizer: found once the tokenizers are read (the student has loaded)
    teacher = ["model@objective.teacher=tiny_llama", *[f"objective.teacher.{o}" for o in tiny(smol_tok)]]
    fails_with(run(*teacher, "objective.lmbda=0.5"), "objective.lmbda=0.5",
               "decoder-only student of the teacher's own tokenizer")
