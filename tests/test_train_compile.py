"""compile=true: torch.compile'd transformer blocks (dynamic shapes) train the same model as eager ones."""

import pytest
import torch
from torch._dynamo.utils import counters

from lamini_lm import config
from lamini_lm.data.collate import Collate
from lamini_lm.models.backbone import build_family, compile_blocks, load_model
from lamini_lm.models.families import IGNORE_INDEX
from lamini_lm.models.spec import ModelSpec

pytestmark = pytest.mark.slow  # inductor compiles each block's forward and backward: ~80 s from a cold cache


@pytest.mark.parametrize("name", ["tiny_gpt2", "tiny_t5"])
def test_compiled_blocks_give_the_eager_loss_and_gradient_on_packed_rows_of_any_length(name):
    spec = config.typed(config.compose("train", [f"model={name}"]).model, ModelSpec, "model")
    family = build_family(spec)
    torch.manual_seed(0)
    model = load_model(spec, family).eval()  # no dropout: the two runs draw no random numbers
    g = torch.Generator().manual_seed(1)

    def batch(lengths):
        ids = [torch.randint(5, 200, (n,), generator=g).tolist() for n in lengths]
        if family.separate_labels:  # T5: one packed row of inputs, one of labels (half as long)
            rows = {"input_ids": ids, "labels": [x[: max(1, len(x) // 2)] for x in ids]}
        else:
            rows = {"input_ids": ids, "labels": [[IGNORE_INDEX] * 3 + x[3:] for x in ids]}
        return Collate(0, family.separate_labels, packed=True)((rows, None))

    def loss_and_grad(b):
        model.zero_grad(set_to_none=True)
        loss = family.token_nll(model, b)
        loss.backward()
        return loss.detach(), torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])

    batches = [batch([9, 14, 6]), batch([30, 5]), batch([7, 7, 7, 7])]  # three row lengths: dynamic shapes
    eager = [loss_and_grad(b) for b in batches]
    c = model.config
    layers = c.n_layer if hasattr(c, "n_layer") else c.num_layers + c.num_decoder_layers
    assert compile_blocks(model, spec.fsdp_block) == layers
    counters.clear()
    for b, (loss, grad) in zip(batches, eager):
        c_loss, c_grad = loss_and_grad(b)
        # fused kernels sum in another order: fp32 rounding, far below what a wrong graph would change
        assert torch.allclose(c_loss, loss, rtol=1e-5) and torch.allclose(c_grad, grad, rtol=1e-4, atol=1e-6)
    assert counters["stats"]["unique_graphs"] > 0  # compiled code ran, not an eager fallback
