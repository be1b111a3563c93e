"""The memory planner's states: weights, gradients and optimizer state per device under DDP, FSDP
full-shard and DeepSpeed ZeRO-2, from the herd's meta-device parameter counts."""

import pytest

from lamini_lm import config
from lamini_lm.errors import UserError
from lamini_lm.training.memory import GB, Shape, per_device, plan
from tests.helpers.run import run_entry


def test_the_zero_papers_figure_1_is_reproduced():
    # Rajbhandari et al. (2020), Figure 1: a 7.5B model on 64 devices, mixed-precision AdamW: baseline 120 GB,
    # P_os+g (ZeRO-2) 16.6 GB, P_os+g+p (full sharding) 1.9 GB per device
    psi = 7.5e9
    ddp = per_device(Shape(int(psi), 0, 0, 0), "ddp", "bf16-mixed", 64)
    bucket = ddp.gradients / 2  # DDP's all-reduce buckets, which the paper leaves out
    assert (ddp.total - bucket) / GB == pytest.approx(120)
    assert per_device(Shape(int(psi), 0, 0, 0), "deepspeed", "bf16-mixed", 64).total / GB == pytest.approx(16.6, abs=0.05)
    many_small_blocks = Shape(int(psi), 1, int(psi), int(psi))  # nothing gathered beyond the shards
    assert per_device(many_small_blocks, "fsdp", "bf16-mixed", 64).total / GB == pytest.approx(1.9, abs=0.05)


def _plan(*overrides):
    return plan(config.compose("train", ["paths.output_dir=/tmp/unused", "model=gpt2_xl", *overrides]))


def test_gpt2_xl_is_counted_by_block_on_the_meta_device():
    shape, strategy, world, _ = _plan("trainer=fsdp", "trainer.devices=8", "trainer.num_nodes=2")
    arch = config.compose("train", ["model=gpt2_xl"]).model.architecture
    d, vocab, context = arch.n_embd, arch.vocab_size, arch.n_positions
    assert (strategy, world, shape.blocks) == ("fsdp", 16, arch.n_layer)
    assert shape.block_params == 12 * d * d + 13 * d  # attention 4d^2+4d, MLP 8d^2+5d, two norms 4d
    assert shape.in_blocks == shape.blocks * shape.block_params  # GPT-2's blocks are all alike
    assert shape.root_params == vocab * d + context * d + 2 * d  # wte (tied lm_head), wpe, ln_f


def test_sharding_is_what_lets_the_big_members_fit_40_gb():
    ddp = _plan("trainer=ddp", "trainer.devices=8")[3]
    fsdp8, fsdp16 = _plan("trainer=fsdp", "trainer.devices=8")[3], _plan("trainer=fsdp", "trainer.devices=16")[3]
    zero8 = _plan("trainer=deepspeed", "trainer.devices=8")[3]
    assert _plan("trainer=ddp", "trainer.devices=16")[3] == ddp  # replication: more devices do not help
    assert fsdp16.total < fsdp8.total < zero8.total < ddp.total
    assert zero8.weights == _plan("trainer=deepspeed", "trainer.devices=16")[3].weights  # ZeRO-2 keeps them whole
    # 1.56B parameters x 20 bytes: DDP leaves too little of 40 GB for activations; FSDP on 8 leaves most of it
    assert ddp.total > 30 * GB and fsdp8.total < 6 * GB


@pytest.mark.slow
def test_a_device_count_the_planner_cannot_use_is_one_line():
    with pytest.raises(UserError, match="trainer.devices=-1"):
        _plan("trainer=ddp")  # all GPUs of a node: the planner needs the number
    res = run_entry("-m", "lamini_lm.training.plan", "model=gpt2_xl", "trainer=ddp")
    assert res.returncode == 2 and res.stderr.strip().startswith("error: trainer.devices=-1"), res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.slow
def test_the_command_prints_the_split():
    res = run_entry("-m", "lamini_lm.training.plan", "model=flan_t5_large", "trainer=fsdp", "trainer.devices=8")
    assert res.returncode == 0, res.stderr[-2000:]
    out = res.stdout
    assert "flan_t5_large: 783.2M parameters, bf16-mixed on 8 cuda device(s) (trainer: fsdp)" in out
    assert "| weights | gradients | optimizer | activations (of which loss) | total |" in out
    assert out.count("| fsdp | ") >= 4  # micro-batches 1 and 8, without and with checkpointing


def test_buffers_are_held_whole_on_every_device():
    # GPT-Neo keeps a causal-mask buffer in every attention layer (bool, max_positions^2): not a parameter, not sharded
    shape = _plan("model=gpt_neo_125m", "trainer=fsdp", "trainer.devices=8")[0]
    arch = config.compose("train", ["model=gpt_neo_125m"]).model.architecture
    assert shape.buffer_bytes >= arch.num_layers * arch.max_position_embeddings ** 2
    assert _plan("model=gpt2", "trainer=fsdp", "trainer.devices=8")[0].buffer_bytes < 1e6
    for strategy in ("single", "ddp", "fsdp", "deepspeed"):
        with_buf = per_device(Shape(1000, 10, 10, 100, buffer_bytes=123), strategy, "bf16-mixed", 4)
        without = per_device(Shape(1000, 10, 10, 100), strategy, "bf16-mixed", 4)
        assert with_buf.weights - without.weights == 123


def test_t5s_root_is_what_its_blocks_leave():
    # T5's decoder blocks (with cross-attention) are larger than its encoder blocks: the root must not go negative
    shape = _plan("model=flan_t5_large", "trainer=fsdp", "trainer.devices=8")[0]
    arch = config.compose("train", ["model=flan_t5_large"]).model.architecture
    assert shape.blocks == arch.num_layers + arch.num_decoder_layers
    # shared input embeddings + the untied lm_head + the two final norms (relative position biases sit in blocks)
    assert shape.root_params == 2 * arch.vocab_size * arch.d_model + 2 * arch.d_model
