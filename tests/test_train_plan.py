"""The planner (python -m lamini_lm.training.plan): its arithmetic on the real configs, the activation model against
the bytes autograd keeps in tiny real models, and its one-line errors. Peak memory measured against the prediction
at the herd's true shapes is bench/memory_planner.py's job."""

import json

import pytest

from lamini_lm import config
from lamini_lm.analysis.tables import paper_numbers
from lamini_lm.errors import UserError
from lamini_lm.training import plan
from tests.helpers.run import fails_with, run_entry


def _cfg(*overrides):
    return config.compose("train", ["paths.output_dir=/tmp/unused", *overrides])


def _setup(*overrides):
    return plan.setup(_cfg(*overrides))


FAMILIES = ["model=gpt2", "model=flan_t5_small", "model=t5_small", "model=smollm2_135m", "model=gpt_neo_125m"]


@pytest.mark.parametrize("model", FAMILIES)
def test_checkpointing_lowers_activations_and_more_tokens_raise_them(model):
    s = _setup(model, "trainer=ddp", "trainer.devices=8")
    full = plan.point(s, "ddp", 8, 512, 512, checkpointing=False)
    ckpt = plan.point(s, "ddp", 8, 512, 512, checkpointing=True)
    assert ckpt.acts.layers < full.acts.layers / 3
    assert ckpt.acts.loss == full.acts.loss and ckpt.states == full.states  # only what the blocks keep changes
    assert plan.point(s, "ddp", 16, 512, 512, False).acts.total == pytest.approx(2 * full.acts.total)
    assert plan.point(s, "ddp", 8, 256, 256, False).acts.total < full.acts.total
    # the loss: three fp32 vocabulary rows per target token at the start of backward
    targets = 8 * (512 if s.family.separate_labels else 511)  # decoder-only: the last position predicts nothing
    assert full.acts.loss == 3 * 4 * s.dims["vocab"] * targets
    # one target: the output layer's new weight gradient (V x h, fp32 under bf16-mixed) beside the logits' one
    assert plan.point(s, "ddp", 1, 512, 1, False).acts.loss == 4 * s.dims["vocab"] * (1 + s.dims["h"])


def test_bf16_keeps_less_than_fp32_and_cuda_keeps_no_s2_attention():
    gpu, cpu = _setup("model=gpt2", "trainer=gpu"), _setup("model=gpt2", "trainer=cpu")
    assert (gpu.device, gpu.kernel, cpu.device, cpu.kernel) == ("cuda", "fused", "cpu", "math")  # CPU: dropout
    fp32 = _setup("model=gpt2", "trainer=gpu", "trainer.precision=32-true")
    assert plan.point(gpu, "single", 4, 512, 512, False).acts.layers < plan.point(fp32, "single", 4, 512, 512,
                                                                                   False).acts.layers
    math = _setup("model=gpt2", "trainer=gpu", "plan.attention=math")
    # the s^2 term: doubling the length more than doubles what the math kernel keeps, not the fused one
    fused = [plan.point(gpu, "single", 1, n, n, False).acts.layers for n in (512, 1024)]
    kept = [plan.point(math, "single", 1, n, n, False).acts.layers for n in (512, 1024)]
    assert fused[1] == pytest.approx(2 * fused[0]) and kept[1] > 2.1 * kept[0]


GATED_T5 = "tiny_t5 +model.architecture.feed_forward_proj=gated-gelu"  # Flan-T5's feed-forward (gelu_new)


@pytest.mark.parametrize("model", ["tiny_gpt2", "tiny_t5", "tiny_llama", "tiny_gpt_neo", GATED_T5])
@pytest.mark.parametrize("shape", [(2, 48, 16), (3, 20, 20)])
@pytest.mark.parametrize("fast_gelu", [True, False])
def test_the_activation_model_is_what_autograd_keeps(model, shape, fast_gelu):
    # fp32 on this CPU, the kernel the CPU picks: every saved tensor's bytes, against the planner's kept bytes
    import torch

    from lamini_lm.config import typed
    from lamini_lm.models.backbone import build_family, build_random, fuse_gelu
    from lamini_lm.models.spec import ModelSpec
    from lamini_lm.training.throughput import batch
    from tests.helpers.kept import kept_bytes

    name, *extra = model.split()
    cfg = _cfg(f"model={name}", *extra, "trainer=cpu", f"fast_gelu={fast_gelu}")
    spec = typed(cfg.model, ModelSpec, "model")
    family = build_family(spec)
    torch.manual_seed(0)
    net = build_random(family.auto(), spec.architecture).train()
    if fast_gelu:  # as training/run.py does
        fuse_gelu(net)
    b, length, target = shape
    kept = kept_bytes(family, net, batch(family, net.config.vocab_size, b, length, target))
    acts = plan.point(plan.setup(cfg), "single", b, length, target, False).acts
    vocab_rows = (target if family.separate_labels else min(target, length - 1)) * b
    planned = acts.layers + acts.other + 4 * net.config.vocab_size * vocab_rows  # the loss keeps one fp32 row
    assert planned == pytest.approx(kept, rel=0.03)


def test_the_largest_micro_batch_grows_with_memory_and_its_accumulation_divides():
    s = _setup("model=gpt2", "experiment=lamini_paper", "trainer.devices=8")
    sizes = [plan.largest_micro_batch(s, "ddp", gb * 1e9, 512, 512, False) for gb in (4, 8, 16, 36, 80)]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]
    assert plan.largest_micro_batch(s, "ddp", 1e9, 512, 512, False) == 0  # the states alone exceed 1 GB
    for ckpt in (False, True):
        big = plan.largest_micro_batch(s, "ddp", 36e9, 512, 512, ckpt)
        assert plan.point(s, "ddp", big, 512, 512, ckpt).total <= 36e9 < plan.point(s, "ddp", big + 1, 512, 512,
                                                                                    ckpt).total
    for largest in (1, 7, 55, 94, 5000):
        b, acc = plan.dividing(largest, 1024, 8)
        assert b <= largest and b * 8 * acc == 1024
    assert plan.dividing(3, 1000, 8) == (1, 125) and plan.dividing(3, 12, 8) is None


@pytest.mark.slow
def test_the_command_plans_the_papers_run_from_a_given_rate():
    res = run_entry("-m", "lamini_lm.training.plan", "model=flan_t5_small", "experiment=lamini_paper",
                    "trainer.devices=8", "plan.tokens_per_s=1000", "plan.json=true")
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout)
    assert (out["devices"], out["precision"], out["trainer_strategy"]) == (8, "bf16-mixed", "ddp")
    assert {r["strategy"] for r in out["largest"]} == {"ddp", "fsdp", "deepspeed"}
    for r in out["largest"]:
        assert 1024 % (r["micro_batch"] * 8) == 0 and r["micro_batch"] * 8 * r["accumulation"] == 1024
    d_all = paper_numbers()["all"]  # Table 1: 130.60M + 84.78M tokens; + two EOS per example
    tokens = (d_all["ins_tokens_M"] + d_all["res_tokens_M"] + 2 * d_all["samples_M"]) * 1e6
    assert out["time"]["hours"] == pytest.approx(5 * tokens / (1000 * 8) / 3600)
    text = plan.render(out)
    assert "| ddp | yes | " in text and f"{out['time']['hours']:,.1f} h (given)" in text


@pytest.mark.parametrize("packing, padding", [("padding_free", "0.0"), ("padded", "0.08")])
def test_tokens_per_s_is_measured_on_this_device(packing, padding):
    out = plan.plan(_cfg("model=tiny_gpt2", "plan.measure=true", "plan.measure_length=32", "plan.measure_steps=1",
                         f"data.packing={packing}"))
    t = out["time"]
    assert t["rate_from"].startswith("measured on cpu") and t["tokens_per_s_per_device"] > 0 and t["hours"] > 0
    assert t["rate_from"].endswith(f"x (1 - padding {padding})")  # a packed run computes no padding
    assert [r["strategy"] for r in out["largest"]] == ["single", "single"]  # trainer=cpu: one device, no sharding


@pytest.mark.parametrize("override, fragments", [
    ("plan.length=0", ["plan.length: 0", "positive"]),
    ("plan.attention=flash", ["plan.attention=flash", "auto, fused, math"]),
    ("plan.reserve_gb=50", ["plan.reserve_gb: 50", "below plan.memory_gb=40"]),
    ("plan.tokens_per_s=-5", ["plan.tokens_per_s: -5"]),
    ("plan.micro_batches=[0]", ["plan.micro_batches: [0]"]),
    ("trainer.precision=64-true", ["trainer.precision=64-true"]),
])
def test_bad_input_is_one_user_error(override, fragments):
    with pytest.raises(UserError) as e:
        plan.plan(_cfg("model=gpt2", override))
    assert all(f in str(e.value) for f in fragments), str(e.value)


def test_the_command_says_it_in_one_line():
    fails_with(run_entry("-m", "lamini_lm.training.plan", "model=gpt2", "plan.length=-3"), "plan.length: -3")
    fails_with(run_entry("-m", "lamini_lm.training.plan", "model=nope"), "model")


@pytest.mark.parametrize("override, message", [
    ("global_batch_size=0", "error: global_batch_size and micro_batch_size must be positive"),
    ("export.push_to_hub=true", "error: export.push_to_hub: true is not a Hub repo id"),
])
def test_the_command_refuses_what_train_py_refuses(override, message, capsys):
    """The planner checks train.py's whole config (TrainSpec), not only the keys it plans with."""
    with pytest.raises(SystemExit) as e:
        plan.main(["model=gpt2", override])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith(message) and err.count("\n") == 1
