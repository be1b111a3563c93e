"""Benchmark: the memory one training micro-batch adds over the weights, our path against transformers' own loss.

    python -m bench.step_memory      # from the repository root (it imports bench.live_memory)

train_throughput.py's peak column compares each recipe's own sample of micro-batches, whose largest differs from
recipe to recipe; this is the like-for-like check: one micro-batch of 8 examples (100-135 tokens, the first 70% of
each masked as prompt), gpt2-124M with random weights, forward and backward of

- ours packed: Family.token_nll on the packed row (data.packing=padding_free, model.attn_implementation sdpa_varlen),
  with train.yaml's fast_gelu (gelu_new as one fused kernel, models/backbone.py fuse_gelu);
- ours padded: Family.token_nll on the padded batch, fast_gelu too;
- transformers' loss: the model as transformers builds it, its own loss on the padded batch (labels passed in),
  what the HF Trainer and TRL's SFTTrainer call (TRL adds its own metrics over the logits on top).

Memory is live allocated bytes (glibc mallinfo2, live_memory.live_bytes) over the weights alone, sampled every
50 ms (live_memory.INTERVAL): after the forward (what autograd keeps) and at the peak of the backward (the
gradients included).
"""

from __future__ import annotations

import copy
import gc

from bench.live_memory import LivePeak, live_bytes

LENGTHS = [100, 105, 110, 115, 120, 125, 130, 135]


def main() -> None:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from lamini_lm.data.collate import Collate
    from lamini_lm.models import attention
    from lamini_lm.models.backbone import fuse_gelu
    from lamini_lm.models.families import DecoderOnly

    attention.register()
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(attn_implementation=attention.NAME)).train()
    plain = copy.deepcopy(model)  # transformers' own, gelu_new as it comes
    fuse_gelu(model)
    family = DecoderOnly()
    g = torch.Generator().manual_seed(1)
    ids = [torch.randint(0, 50000, (n,), generator=g).tolist() for n in LENGTHS]
    rows = {"input_ids": ids, "labels": [[-100] * int(0.7 * len(x)) + x[int(0.7 * len(x)):] for x in ids]}

    def ours(packed: bool):
        batch = Collate(0, False, packed=packed)((rows, None))
        return family.token_nll(model, batch) / batch["step_target_tokens"]

    def transformers_loss():
        batch = Collate(0, False)((rows, None))
        return plain(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]).loss

    print(f"one micro-batch of {len(LENGTHS)} examples, {sum(LENGTHS)} tokens; gradients "
          f"{sum(p.numel() for p in model.parameters()) * 4 / 2**20:.0f} MB")
    print(f"{'path':22s} {'after forward MB':>16s} {'peak MB':>8s}")
    for name, step in [("ours packed", lambda: ours(True)), ("ours padded", lambda: ours(False)),
                       ("transformers' loss", transformers_loss)]:
        for _ in range(2):  # the second pass is measured: first-call allocations are paid
            model.zero_grad(set_to_none=True)
            plain.zero_grad(set_to_none=True)
            gc.collect()
            base, sampler = live_bytes(), LivePeak()
            loss = step()
            kept = live_bytes() - base
            loss.backward()
            peak = sampler.close() - base
        print(f"{name:22s} {kept / 2**20:>16.0f} {peak / 2**20:>8.0f}")


if __name__ == "__main__":
    main()
