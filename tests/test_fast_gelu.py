"""fast_gelu=true (train.yaml): gelu_new runs as transformers' GELUTanh, torch's one-kernel tanh GELU. The same
function: loss and gradients equal the model as transformers builds it; the export's config is untouched."""

import copy

import pytest
import torch
from transformers.activations import GELUTanh, NewGELUActivation

from lamini_lm import config
from lamini_lm.models.backbone import build_family, fuse_gelu, load_model
from lamini_lm.models.spec import ModelSpec
from lamini_lm.training import run
from lamini_lm.training.spec import TrainSpec
from lamini_lm.training.throughput import batch

GATED_T5 = ["model=tiny_t5", "+model.architecture.feed_forward_proj=gated-gelu"]  # Flan-T5's feed-forward


def _acts(model, cls) -> int:
    return sum(type(m) is cls for m in model.modules())


@pytest.mark.parametrize("overrides, layers", [(["model=tiny_gpt2"], 2), (["model=tiny_gpt_neo"], 2),
                                                (GATED_T5, 4)])
def test_the_fused_gelu_gives_the_same_loss_and_gradients(overrides, layers):
    spec = config.typed(config.compose("train", overrides).model, ModelSpec, "model")
    family = build_family(spec)
    torch.manual_seed(0)
    plain = load_model(spec, family).double().eval()  # eval: no dropout, both models see the same network
    fused = copy.deepcopy(plain)
    assert fuse_gelu(fused) == layers == _acts(plain, NewGELUActivation) and _acts(fused, NewGELUActivation) == 0
    data = batch(family, plain.config.vocab_size, 3, 24, 12)

    def loss_and_grad(model):
        model.zero_grad(set_to_none=True)
        loss = family.token_nll(model, data)
        loss.backward()
        return loss.detach(), torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])

    def same(a, b):  # float64: two forms of one function differ by rounding only
        return torch.allclose(a[0], b[0], rtol=1e-12) and torch.allclose(a[1], b[1], rtol=1e-9, atol=1e-12)

    reference = loss_and_grad(plain)
    assert same(loss_and_grad(fused), reference)
    assert not same(loss_and_grad(_with(plain, torch.nn.GELU())), reference)  # the exact GELU is another function


def _with(model, act):
    """A copy of ``model`` with every gelu_new swapped for ``act`` (the check that the test can tell them apart)."""
    other = copy.deepcopy(model)
    for parent in other.modules():
        for name, child in parent.named_children():
            if type(child) is NewGELUActivation:
                setattr(parent, name, act)
    return other


@pytest.mark.parametrize("fast_gelu, cls", [(True, GELUTanh), ("false", NewGELUActivation)])
def test_training_builds_the_model_as_fast_gelu_says_and_the_config_keeps_gelu_new(tmp_path, fast_gelu, cls):
    cfg = config.compose("train", ["model=tiny_gpt2", f"fast_gelu={fast_gelu}", f"paths.output_dir={tmp_path}"])
    module, _, _ = run._build(config.typed(cfg, TrainSpec), reader=None, checkpoint=False)
    assert _acts(module.model, cls) == module.model.config.n_layer
    assert module.model.config.activation_function == "gelu_new"  # what save_pretrained writes into the export
