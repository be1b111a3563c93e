"""GPU acceptance suite: run it on the GPU box before a long sweep (`python -m pytest -m gpu -rP`, under ten
minutes on one node; -rP prints the measured figures). Never part of CPU CI: pyproject's addopts deselect the
`gpu` marker, and each test skips with its reason where CUDA, a second GPU or DeepSpeed is missing.

Everything composes the real configs; the tiny models except for throughput and memory, which build herd
members at their true shape (model.init=random: no Hub needed)."""

import json
import time

import pytest

from lamini_lm import config
from lamini_lm.models.spec import ModelSpec
from tests.helpers.run import run_entry

pytestmark = pytest.mark.gpu

TINY = ["tiny_gpt2", "tiny_gpt_neo", "tiny_t5"]  # one of each architecture the herd uses
RECORDS = {
    "instruction": ["Name a colour.", "Give the capital of France and explain briefly why it matters so much.",
                    "Say hi.", "Add 2 and 3."],
    "response": ["Blue.", "Paris, the seat of government.", "Hi!", "5"],
}
# a short run of a tiny model: 16 examples per step, 5 steps; last.ckpt after every step, so it holds the
# final weights the export must equal
SMALL = ["data.limit=96", "data.val_size=16", "global_batch_size=16", "micro_batch_size=4", "trainer.max_epochs=1",
         "logger=csv", "callbacks.sample_generations.num_samples=1", "callbacks.sample_generations.max_new_tokens=4",
         "callbacks.last_checkpoint.every_n_train_steps=1"]
# bf16 keeps 8 significant bits (relative rounding 2^-9); a tiny model's loss and gradient under bf16-mixed
# autocast stay within these of fp32. Stated, not yet measured on a GPU (loosen only with a measurement); the
# same comparison under CPU bf16 autocast measured a loss gap <= 1.4e-4 (relative) and cosine >= 0.9995
BF16_LOSS_RTOL = 2e-2
BF16_GRAD_COSINE = 0.99


def _gpus(n: int = 1) -> int:
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device: the GPU acceptance suite runs on the GPU box")
    if torch.cuda.device_count() < n:
        pytest.skip(f"needs {n} GPUs, this machine has {torch.cuda.device_count()}")
    return torch.cuda.device_count()


def _spec(*overrides: str) -> ModelSpec:
    return config.typed(config.compose("train", list(overrides)).model, ModelSpec, "model")


def _batch(spec: ModelSpec, family, device, packed: bool = False, records: dict = RECORDS):
    """``records`` tokenised and collated as training does (padding and masks, or one packed row; the step's
    target-token count)."""
    from lamini_lm.data.collate import Collate
    from lamini_lm.data.tokenization import Tokenize
    from lamini_lm.models.backbone import load_tokenizer

    tok = load_tokenizer(spec)
    toks = Tokenize(tok, family.style(spec.prompt_style), family, 512, 512)(records)
    rows = {"input_ids": toks["input_ids"], "labels": toks["labels"]}
    batch = Collate(tok.pad_token_id, separate_labels=family.separate_labels, packed=packed)(
        (rows, sum(toks["target_length"])))
    return {k: v.to(device) if hasattr(v, "to") else v for k, v in batch.items()}


def _loss_and_grad(model, family, batch, context):
    import torch

    model.zero_grad()
    with context:
        loss = family.token_nll(model, batch) / batch["step_target_tokens"]
    loss.backward()
    grad = torch.cat([p.grad.float().flatten() for p in model.parameters() if p.grad is not None])
    return loss.detach().float(), grad


def _tiny_on_cuda(name: str):
    """(spec, family, model): the tiny model ``name`` on the GPU in eval mode (no dropout: every pass compared sees
    the same network)."""
    import torch

    from lamini_lm.models.backbone import build_family, load_model

    _gpus(1)
    spec = _spec(f"model={name}")
    family = build_family(spec)
    torch.manual_seed(0)
    return spec, family, load_model(spec, family).cuda().eval()


def _assert_bf16_close(reference, measured, what: str) -> None:
    """Loss and gradient of ``measured`` within bf16's rounding of ``reference`` (both (loss, grad)); prints them."""
    import torch

    (ref_loss, ref_grad), (loss, grad) = reference, measured
    assert torch.isclose(loss, ref_loss, rtol=BF16_LOSS_RTOL), (loss.item(), ref_loss.item())
    cosine = torch.nn.functional.cosine_similarity(grad, ref_grad, dim=0).item()
    assert cosine >= BF16_GRAD_COSINE, cosine
    print(f"{what}: loss {ref_loss.item():.5f} against {loss.item():.5f}, gradient cosine {cosine:.5f}")


@pytest.mark.parametrize("name", TINY)
def test_a_bf16_mixed_step_matches_fp32(name):
    import contextlib

    import torch
    from lightning.pytorch.plugins.precision import MixedPrecision

    spec, family, model = _tiny_on_cuda(name)
    precision = config.compose("train", ["trainer=gpu"]).trainer.precision
    assert precision == "bf16-mixed"  # what trainer=gpu|ddp|fsdp train with
    batch = _batch(spec, family, "cuda")
    _assert_bf16_close(_loss_and_grad(model, family, batch, contextlib.nullcontext()),
                       _loss_and_grad(model, family, batch, MixedPrecision(precision, "cuda").forward_context()),
                       f"{name}, fp32 against bf16-mixed")
    # and one optimizer step under bf16-mixed leaves finite fp32 weights (the master copy stays fp32)
    torch.optim.AdamW(model.parameters(), lr=1e-3).step()
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in model.parameters())


def test_the_two_job_ddp_sweep_runs_each_job_once_on_two_gpus(tmp_path):
    _gpus(2)
    sweep = tmp_path / "sweep"
    res = run_entry("train.py", "-m", "model=tiny_t5,tiny_gpt2", "trainer=ddp", "trainer.devices=2", *SMALL,
                    f"hydra.sweep.dir={sweep}")
    assert res.returncode == 0, res.stderr[-3000:]
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit())
    assert [j.name for j in jobs] == ["0", "1"] and not (tmp_path / "multirun").exists()
    for job in jobs:
        ranks = [json.loads((job / "ranks" / f"rank{r}.json").read_text()) for r in (0, 1)]
        assert {r["world_size"] for r in ranks} == {2} and ranks[0]["config_sha256"] == ranks[1]["config_sha256"]
        metrics = json.loads((job / "metrics.json").read_text())
        # 16 examples per step = 4 per micro-batch x 2 GPUs x 2 accumulation steps; 80 training examples
        assert (metrics["world_size"], metrics["accumulate_grad_batches"], metrics["global_step"]) == (2, 2, 5)
        assert (job / "hf" / "model.safetensors").exists()


def _export(run):
    from safetensors.torch import load_file

    return load_file(run / "hf" / "model.safetensors")


def _same_weights(export: dict, state: dict, rtol: float = 0.0) -> None:
    """Every exported tensor equals the checkpoint's (the LightningModule's keys: "model." + the HF key)."""
    import torch

    assert export, "empty export"
    for key, tensor in export.items():
        ref = state["model." + key].float().cpu()
        ok = torch.equal(tensor.float(), ref) if rtol == 0 else torch.allclose(tensor.float(), ref, rtol=rtol,
                                                                              atol=1e-6)
        assert ok, key


def _train(tmp_path, *overrides, model="tiny_gpt2"):
    run = tmp_path / "run"
    res = run_entry("train.py", f"model={model}", *SMALL, *overrides, f"hydra.run.dir={run}")
    assert res.returncode == 0, res.stderr[-3000:]
    assert json.loads((run / "metrics.json").read_text())["global_step"] == 5
    return run


@pytest.mark.parametrize("model", ["tiny_gpt2", "tiny_t5"])  # both under trainer=fsdp's activation checkpointing
def test_the_fsdp_export_equals_the_unsharded_weights(tmp_path, model):
    import torch

    devices = min(_gpus(1), 2)
    run = _train(tmp_path, "trainer=fsdp", f"trainer.devices={devices}", model=model)
    # trainer=fsdp saves full state dicts: last.ckpt (written after the last step) holds the unsharded weights
    state = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    _same_weights(_export(run), state)


def test_the_deepspeed_zero2_export_equals_the_consolidated_weights(tmp_path):
    import torch
    from lightning.pytorch.utilities.deepspeed import convert_zero_checkpoint_to_fp32_state_dict

    pytest.importorskip("deepspeed", reason="DeepSpeed is not installed (pip install -r requirements-gpu.txt)")
    devices = min(_gpus(1), 2)
    run = _train(tmp_path, "trainer=deepspeed", f"trainer.devices={devices}")
    # last.ckpt is a ZeRO folder; Lightning's own tool consolidates its fp32 master weights
    out = tmp_path / "consolidated.pt"
    convert_zero_checkpoint_to_fp32_state_dict(run / "checkpoints" / "last.ckpt", out)
    state = torch.load(out, map_location="cpu", weights_only=False)["state_dict"]
    # the export is the module's weights: under bf16-mixed DeepSpeed keeps them in bf16, rounded from the
    # fp32 master copy (relative 2^-8)
    _same_weights(_export(run), state, rtol=2 ** -8)


@pytest.mark.parametrize("name", ["tiny_gpt2", "tiny_t5"])
def test_a_packed_row_under_bf16_mixed_trains_as_the_padded_batch(name):
    # data.packing=padding_free on CUDA: sdpa_varlen per example (T5: with its block of the position bias) under
    # autocast gives the padded batch's loss and gradient (exact in float64 on the CPU: tests/test_packing.py)
    from lightning.pytorch.plugins.precision import MixedPrecision

    spec, family, model = _tiny_on_cuda(name)
    assert model.config._attn_implementation == "sdpa_varlen"

    def step(packed):
        context = MixedPrecision("bf16-mixed", "cuda").forward_context()
        return _loss_and_grad(model, family, _batch(spec, family, "cuda", packed), context)

    _assert_bf16_close(step(False), step(True), f"{name}, padded against packed")


def _objective_loss_and_grad(name: str, kind: str, device: str, context_of):
    """(fp32, bf16-mixed) (loss, gradient) pairs of objective ``kind`` on a packed micro-batch of tiny ``name``:
    token_kd with a made-up stored top-20 (of the student's own vocabulary for GPT-2: exact; ULD for T5), online_kd
    with a tiny GPT-2 teacher (GPT-2's rows and full vocabulary; T5: its own text, aligned by bytes, ULD)."""
    import contextlib

    import datasets
    import torch

    from lamini_lm import targets
    from lamini_lm.data.collate import Collate
    from lamini_lm.data.tokenization import Tokenize
    from lamini_lm.models.backbone import build_family, load_model, load_tokenizer
    from lamini_lm.training.objectives.base import Objective

    spec = _spec(f"model={name}")
    family, tok = build_family(spec), load_tokenizer(spec)
    torch.manual_seed(0)
    model = load_model(spec, family).to(device).eval()
    teacher = ["model@objective.teacher=tiny_gpt2"] if kind == "online_kd" else []
    obj = targets.build(config.compose("train", [f"objective={kind}", *teacher, "objective.alpha=0.5",
                                                 "objective.temperature=2.0", "objective.divergence=jsd"]).objective,
                        "objective", base=Objective)
    cols = obj.columns(datasets.Dataset.from_dict(RECORDS), tok, family, None) if kind == "online_kd" else None
    widths = cols.widths if cols else {}
    toks = Tokenize(tok, family.style(spec.prompt_style), family, 512, 512, columns=cols)(RECORDS)
    rows = {k: toks[k] for k in ("input_ids", "labels", *widths)}
    batch = Collate(tok.pad_token_id, family.separate_labels, packed=True, columns=widths)(
        (rows, sum(toks["target_length"])))
    batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
    if kind == "token_kd":
        obj.exact = name == "tiny_gpt2"
        n = int(sum(toks["target_length"]))
        g = torch.Generator().manual_seed(0)
        probs = torch.distributions.Dirichlet(torch.ones(20)).sample((n,)).sort(-1, descending=True).values * 0.9
        batch["kd_logprobs"] = probs.log().half().to(device)
        batch["kd_ids"] = torch.randint(0, len(tok), (n, 20), generator=g, dtype=torch.int32).to(device)

    def step(context):
        model.zero_grad()
        with context:
            out = obj.loss(family, model, batch)
        assert out.logs["kd_aligned"] > 0.5  # the divergence is taken (CPU, this batch: T5 0.8 of its targets)
        loss = out.total / batch["step_target_tokens"]
        loss.backward()
        grad = torch.cat([p.grad.float().flatten() for p in model.parameters() if p.grad is not None])
        return loss.detach().float(), grad

    # fp32 first: the teacher follows the student's compute dtype, and once cast to bf16 its weights stay rounded
    return step(contextlib.nullcontext()), step(context_of())


@pytest.mark.parametrize("kind", ["token_kd", "online_kd"])
@pytest.mark.parametrize("name", ["tiny_gpt2", "tiny_t5"])
def test_a_distillation_objectives_bf16_mixed_step_matches_fp32(name, kind):
    # objective=token_kd / online_kd under trainer=gpu: the divergence's log-softmaxes, gathers and top-k in the
    # autocast dtype (and the teacher in bf16) keep the loss and gradient within bf16's rounding of fp32's
    from lightning.pytorch.plugins.precision import MixedPrecision

    _gpus(1)
    reference, mixed = _objective_loss_and_grad(
        name, kind, "cuda", lambda: MixedPrecision("bf16-mixed", "cuda").forward_context())
    _assert_bf16_close(reference, mixed, f"{name}, objective={kind}, fp32 against bf16-mixed")


@pytest.mark.parametrize("name", ["tiny_gpt2", "tiny_t5"])
def test_compiled_blocks_under_bf16_mixed_train_as_eager_ones(name):
    # compile=true on CUDA before a GPU config turns it on: each block compiled with dynamic shapes, packed rows of
    # three lengths under autocast, against eager (the CPU check in float32: tests/test_train_compile.py)
    from lightning.pytorch.plugins.precision import MixedPrecision

    from lamini_lm.models.backbone import compile_blocks

    spec, family, model = _tiny_on_cuda(name)
    batches = [_batch(spec, family, "cuda", packed=True)]
    for cut in (1, 2):  # fewer examples: shorter rows, so the compiled code meets several lengths
        batches.append(_batch(spec, family, "cuda", packed=True, records={k: v[cut:] for k, v in RECORDS.items()}))

    def steps():  # a fresh autocast context per pass: one can be entered only once
        return [_loss_and_grad(model, family, b, MixedPrecision("bf16-mixed", "cuda").forward_context())
                for b in batches]

    eager = steps()
    assert compile_blocks(model, spec.fsdp_block) > 0
    for reference, compiled in zip(eager, steps()):
        _assert_bf16_close(reference, compiled, f"{name}, eager against compiled")


def test_training_attention_runs_a_fused_sdpa_kernel(monkeypatch):
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from lamini_lm.models.backbone import build_family, load_model

    _gpus(1)
    spec = _spec("model=tiny_gpt2")
    family = build_family(spec)
    model = load_model(spec, family).cuda().eval()
    # what load_model gives the decoder-only herd: sdpa_varlen, transformers' sdpa for a padded batch like this one
    assert model.config._attn_implementation == "sdpa_varlen"
    calls = []
    sdpa = torch.nn.functional.scaled_dot_product_attention
    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention",
                        lambda *a, **k: calls.append(1) or sdpa(*a, **k))
    batch = _batch(spec, family, "cuda")  # padded, as in training: an attention mask, not just causal
    used = None
    with torch.autocast("cuda", dtype=torch.bfloat16), torch.no_grad():
        family.token_nll(model, batch)
        assert len(calls) == model.config.n_layer  # every layer went through SDPA
        for backend in (SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION):
            try:
                with sdpa_kernel(backend):  # only this kernel allowed: it raises if it cannot take the batch
                    family.token_nll(model, batch)
                used = backend.name
                break
            except RuntimeError:
                continue
    print(f"attention: sdpa, kernel {used} ({torch.cuda.get_device_name()})")
    assert used is not None, "neither flash nor memory-efficient SDPA takes a training batch: the math kernel runs"


# true-shape members at their configured micro-batch and activation checkpointing and 512 tokens, as under
# experiment=lamini_paper (DDP: a whole model per GPU); gpt2_xl is the largest, at micro-batch 8 with checkpointing
THROUGHPUT = ["gpt2", "flan_t5_base", "gpt2_large", "gpt2_xl"]
SEQ = 512
GB = 1e9


@pytest.mark.parametrize("name", THROUGHPUT)
def test_true_shape_throughput_and_peak_memory(name, record_property):
    import torch

    from lamini_lm.models.backbone import build_family, checkpoint_blocks, load_model

    _gpus(1)
    spec = _spec(f"model={name}", "model.init=random")
    family = build_family(spec)
    model = load_model(spec, family).cuda().train()
    if spec.activation_checkpointing:
        checkpoint_blocks(model)
    mb = spec.micro_batch_size
    ids = torch.randint(100, 30000, (mb, SEQ), device="cuda")
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)
    torch.cuda.reset_peak_memory_stats()

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = family.token_nll(model, batch) / ids.numel()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(2):  # warm-up: kernels chosen, optimizer state allocated
        step()
    torch.cuda.synchronize()
    start, steps = time.perf_counter(), 5
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    tokens_per_s = steps * mb * SEQ * (2 if family.separate_labels else 1) / (time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() / GB
    record_property("tokens_per_s", round(tokens_per_s))
    record_property("peak_memory_gb", round(peak, 2))
    print(f"{name} ({model.num_parameters() / 1e6:.0f}M, micro-batch {mb} x {SEQ}"
          f"{', checkpointed' if spec.activation_checkpointing else ''}): {tokens_per_s:,.0f} tokens/s, "
          f"peak {peak:.1f} GB on {torch.cuda.get_device_name()}")
    # the model configs promise their micro-batch fits 40 GB in bf16 at 512 tokens
    assert peak <= 40, f"micro_batch_size={mb} needs {peak:.1f} GB: lower it in conf/model/{name}.yaml"


def test_the_preflight_stops_a_run_whose_plan_passes_this_gpu(tmp_path):
    # train.py's real path on a GPU: gpt2_xl at 32 sequences without checkpointing is planned at 89 GB per device,
    # over any one GPU here; the run stops in one line before the model loads (it would need the Hub otherwise)
    _gpus(1)
    res = run_entry("train.py", "model=gpt2_xl", "model.init=random", "experiment=lamini_paper", "trainer.devices=1",
                    "micro_batch_size=32", "activation_checkpointing=false", "plan.length=2048",
                    f"hydra.run.dir={tmp_path / 'run'}", timeout=300)
    assert res.returncode == 2 and "the planner puts the peak at" in res.stderr, res.stderr[-2000:]
    assert "set micro_batch_size=" in res.stderr and not (tmp_path / "run" / "checkpoints").exists()
