"""compile=true: torch.compile'd transformer blocks (dynamic shapes) train the same model as eager ones."""

import torch
from torch._dynamo.utils import counters

from lamini_lm import config
from lamini_lm.data.collate import Collate
from lamini_lm.models.backbone import build_family, compile_blocks, load_model
from lamini_lm.models.families import IGNORE_INDEX
from lamini_lm.models.spec import ModelSpec


def test_compiled_blocks_give_the_eager_loss_and_gradient_on_packed_rows_of_any_length():
    spec = config.typed(config.compose("train", ["model=tiny_gpt2"]).model, ModelSpec, "model")
    family = build_family(spec)
    torch.manual_seed(0)
    model = load_model(spec, family).eval()  # no dropout: the two runs draw no random numbers
    g = torch.Generator().manual_seed(1)

    def batch(lengths):
        ids = [torch.randint(5, 200, (n,), generator=g).tolist() for n in lengths]
        rows = {"input_ids": ids, "labels": [[IGNORE_INDEX] * 3 + x[3:] for x in ids]}
        return Collate(0, False, packed=True)((rows, None))

    def loss_and_grad(b):
        model.zero_grad(set_to_none=True)
        loss = family.token_nll(model, b)
        loss.backward()
        return loss.detach(), torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])

    batches = [batch([9, 14, 6]), batch([30, 5]), batch([7, 7, 7, 7])]  # three row lengths: dynamic shapes
    eager = [loss_and_grad(b) for b in batches]
    assert compile_blocks(model, spec.fsdp_block) == model.config.n_layer
    counters.clear()
    for b, (loss, grad) in zip(batches, eager):
        c_loss, c_grad = loss_and_grad(b)
        # fused kernels sum in another order: fp32 rounding, far below what a wrong graph would change
        assert torch.allclose(c_loss, loss, rtol=1e-5) and torch.allclose(c_grad, grad, rtol=1e-4, atol=1e-6)
    assert counters["stats"]["unique_graphs"] > 0  # compiled code ran, not an eager fallback
