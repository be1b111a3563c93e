"""A new architecture is one config for the planner too: an OPT and a Qwen2 student, neither of which the package
describes, declared in a config of their own (its `planner` node) and planned as autograd keeps and torch counts."""

import pytest

from lamini_lm import config
from lamini_lm.errors import UserError
from lamini_lm.training import plan

HEAD = """defaults:
  - base/decoder_only@_here_
  - _self_
name: {name}
hub_id: null
revision: null
init: random
lamini_name: LaMini-{name}
params: 3.3M
tokenizer: ${{asset:gpt2_tokenizer}}
micro_batch_size: 8
"""
# OPT: LayerNorm, separate q/k/v projections with biases, relu, dropout on the residual stream, its own field names
OPT = HEAD.format(name="tiny_opt") + """architecture: {model_type: opt, vocab_size: 50272, hidden_size: 64, ffn_dim: 128,
               num_hidden_layers: 2, num_attention_heads: 2, max_position_embeddings: 512, word_embed_proj_dim: 64}
fsdp_block: transformers.models.opt.modeling_opt.OPTDecoderLayer
planner:
  fields:
    hidden: hidden_size
    ffn: ffn_dim
    heads: num_attention_heads
    attention_width: hidden_size
    kv_width: hidden_size
    layers: num_hidden_layers
    activation: activation_function
    dropout: dropout
    attention_dropout: attention_dropout
  norm: layer
"""
# Qwen2: RMSNorm, grouped-query attention (one key/value head for two query heads), SwiGLU
QWEN2 = HEAD.format(name="tiny_qwen2") + """architecture: {model_type: qwen2, vocab_size: 50257, hidden_size: 64,
               intermediate_size: 128, num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 1,
               max_position_embeddings: 512, tie_word_embeddings: true}
fsdp_block: transformers.models.qwen2.modeling_qwen2.Qwen2DecoderLayer
planner:
  fields:
    hidden: hidden_size
    ffn: intermediate_size
    heads: num_attention_heads
    attention_width: hidden_size
    kv_width: num_key_value_heads * (hidden_size // num_attention_heads)
    layers: num_hidden_layers
    activation: hidden_act
    gated_ffn: true
    attention_dropout: attention_dropout
  norm: rms
"""
MODELS = {"tiny_opt": OPT, "tiny_qwen2": QWEN2}


@pytest.fixture(scope="module")
def searchpath(tmp_path_factory):
    conf = tmp_path_factory.mktemp("conf")
    (conf / "model").mkdir()
    for name, text in MODELS.items():
        (conf / "model" / f"{name}.yaml").write_text(text)
    return f"hydra.searchpath=[file://{conf}]"


def _cfg(searchpath, *overrides):
    return config.compose("train", ["paths.output_dir=/tmp/unused", searchpath, "trainer=cpu", *overrides])


def _built(cfg):
    import torch

    from lamini_lm.models.backbone import build_family, build_random
    from lamini_lm.models.spec import ModelSpec

    spec = config.typed(cfg.model, ModelSpec, "model")
    family = build_family(spec)
    torch.manual_seed(0)
    return spec, family, build_random(family.auto(), spec.architecture).train()


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("shape", [(2, 48, 16), (3, 20, 20)])
def test_an_architecture_declared_in_its_config_is_planned_as_autograd_keeps(searchpath, name, shape):
    from lamini_lm.training.throughput import batch
    from tests.helpers.kept import kept_bytes

    cfg = _cfg(searchpath, f"model={name}")
    _, family, net = _built(cfg)
    b, length, target = shape
    kept = kept_bytes(family, net, batch(family, net.config.vocab_size, b, length, target))
    acts = plan.point(plan.setup(cfg), "single", b, length, target, False).acts
    planned = acts.layers + acts.other + 4 * net.config.vocab_size * b * min(target, length - 1)  # one fp32 loss row
    assert planned == pytest.approx(kept, rel=0.03)
    out = plan.plan(cfg)  # the whole command: states, the largest micro-batch, its accumulation
    assert out["params"] == net.num_parameters() and out["largest"][0]["fits"] > 0


@pytest.mark.parametrize("name", MODELS)
def test_its_executed_flops_are_what_torch_counts(searchpath, name):
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from lamini_lm.training.flops import FlopCoefficients

    spec, _, net = _built(_cfg(searchpath, f"model={name}"))
    ids = torch.randint(1, 500, (3, 11))
    data = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}
    net.set_attn_implementation("eager")  # the same products as matmuls: torch's counter skips CPU flash attention
    with FlopCounterMode(display=False) as counter:
        net(**data).logits.sum().backward()  # transformers' own head: every row projected
    ours = FlopCoefficients(net, spec.planner).of_batch(data, head_rows=ids.numel())
    assert ours == pytest.approx(counter.get_total_flops(), rel=1e-9)


@pytest.mark.parametrize("override, fragments", [
    ("~model.planner", ["model.planner:", "no description of the opt architecture", "conf/model/base/opt.yaml"]),
    ("model.planner.fields.ffn=ffn_width", ["model.planner.fields.ffn: 'ffn_width'", "no field ffn_width"]),
    ("model.planner.fields.ffn='ffn_dim ** 2'", ["model.planner.fields.ffn: 'ffn_dim ** 2'", "field names, numbers"]),
    ("model.planner.norm=batch", ["model.planner.norm: 'batch' is not one of layer, rms"]),
])
def test_a_missing_or_wrong_description_is_one_user_error(searchpath, override, fragments):
    with pytest.raises(UserError) as e:
        plan.setup(_cfg(searchpath, "model=tiny_opt", override))
    assert all(f in str(e.value) for f in fragments) and "\n" not in str(e.value), str(e.value)


def test_a_model_config_without_the_node_is_planned_by_its_model_types_base_config():
    # tiny_llama without model.planner (as a model config of one's own that extends no base config): the planner
    # reads conf/model/base/llama.yaml, named after its model_type, as the training run's FLOP count does
    def acts(*extra):
        cfg = config.compose("train", ["paths.output_dir=/tmp/unused", "trainer=cpu", "model=tiny_llama", *extra])
        return plan.point(plan.setup(cfg), "single", 2, 48, 16, False).acts

    assert acts("~model.planner") == acts()
    assert acts("model.planner.norm=layer") != acts()  # the node, when there is one, is what is read
