"""Activation checkpointing (activation_checkpointing=true) changes memory, not the gradient, in every family, by
both routes: transformers' own switch (every strategy but FSDP: models/backbone.py checkpoint_blocks) and FSDP's
policy (trainer=fsdp).

FSDP itself refuses a CPU accelerator (tests/test_gpu.py runs it on a GPU); its checkpointing is Lightning's own
code, called here on the composed config's policy exactly as Lightning's FSDPStrategy calls it: torch's
checkpoint_wrapper around every `model.fsdp_block`."""

import pytest
import torch
from hydra.utils import instantiate
from lightning.fabric.strategies.fsdp import _activation_checkpointing_kwargs, _setup_activation_checkpointing
from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import CheckpointWrapper

from lamini_lm import config
from lamini_lm.data.collate import Collate
from lamini_lm.models.backbone import build_family, checkpoint_blocks, load_model
from lamini_lm.models.families import IGNORE_INDEX
from lamini_lm.models.spec import ModelSpec


def _gradient(family, model, batch):
    model.zero_grad(set_to_none=True)
    torch.manual_seed(1)  # the same dropout masks in both runs (a recomputed block replays its RNG state)
    family.token_nll(model, batch).backward()
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


@pytest.mark.parametrize("route", ["fsdp", "transformers"])
@pytest.mark.parametrize("name", ["tiny_gpt2", "tiny_gpt_neo", "tiny_llama", "tiny_t5"])
def test_a_checkpointed_block_gives_the_plain_blocks_gradient(name, route):
    cfg = config.compose("train", [f"model={name}", "trainer=fsdp", "activation_checkpointing=true"])
    spec = config.typed(cfg.model, ModelSpec, "model")
    family = build_family(spec)
    torch.manual_seed(0)
    model = load_model(spec, family).double().train()
    g = torch.Generator().manual_seed(2)
    ids = [torch.randint(5, 200, (n,), generator=g).tolist() for n in (9, 14, 6)]
    if family.separate_labels:  # T5: the response is a second sequence
        rows = {"input_ids": ids, "labels": [x[:4] for x in ids]}
    else:  # the first tokens stand for the masked prompt
        rows = {"input_ids": ids, "labels": [[IGNORE_INDEX] * 3 + x[3:] for x in ids]}
    batch = Collate(0, family.separate_labels)((rows, None))
    plain = _gradient(family, model, batch)

    if route == "fsdp":
        policy = instantiate(cfg.trainer.strategy.activation_checkpointing_policy)
        _setup_activation_checkpointing(model, _activation_checkpointing_kwargs(None, policy))
        wrapped = [m for m in model.modules() if isinstance(m, CheckpointWrapper)]
        assert wrapped and all(type(m._checkpoint_wrapped_module) in policy for m in wrapped)
    else:
        checkpoint_blocks(model)
        assert model.is_activation_checkpointing
    # T5 used to fail here: its decoder filled a key/value cache in the forward but not in the recompute
    # (torch's CheckpointError); training now runs without the cache
    assert torch.allclose(_gradient(family, model, batch), plain, rtol=1e-9, atol=1e-12)


def test_fsdp_checkpoints_only_when_asked():
    off = config.compose("train", ["model=tiny_gpt2", "trainer=fsdp"]).trainer.strategy
    assert instantiate(off.activation_checkpointing_policy) is None
    on = config.compose("train", ["model=tiny_gpt2", "trainer=fsdp", "activation_checkpointing=true"]).trainer.strategy
    assert {c.__name__ for c in instantiate(on.activation_checkpointing_policy)} == {"GPT2Block"}
