"""Training tokens/s of a model on the device at hand, from a short real run: its architecture with random
weights, full-length random sequences, forward + backward + AdamW steps through the family's own loss. The
planner turns it into the time of a whole run."""

from __future__ import annotations

import time

# torch and the model modules are imported inside the functions: the planner imports this module before its
# config check


def device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def batch(family, vocab: int, micro_batch: int, length: int, target_length: int, where: str = "cpu") -> dict:
    """Random full-length sequences shaped as the family trains them: decoder-only, ``length`` tokens of which the
    last ``target_length`` are targets; encoder-decoder, ``length`` input and ``target_length`` label tokens."""
    import torch

    from lamini_lm.models.families import IGNORE_INDEX

    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, vocab, (micro_batch, length), generator=g)
    if family.separate_labels:
        labels = torch.randint(5, vocab, (micro_batch, target_length), generator=g)
    else:
        labels = ids.clone()
        labels[:, :max(0, length - target_length)] = IGNORE_INDEX
    out = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}
    return {k: v.to(where) for k, v in out.items()}


def measure(spec, family, micro_batch: int, length: int, target_length: int, steps: int,
            precision: str, fast_gelu: bool) -> tuple[float, str]:
    """(real tokens/s, device) over ``steps`` timed steps after one untimed one; ``fast_gelu`` as train.yaml's."""
    import torch

    from lamini_lm.models.backbone import build_random, fuse_gelu

    where = device()
    model = build_random(family.auto(), spec.architecture).to(where).train()
    if fast_gelu:
        fuse_gelu(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    data = batch(family, model.config.vocab_size, micro_batch, length, target_length, where)
    # CPU autocast to bf16 is neither what a GPU run does nor fast here: time the CPU in fp32
    autocast = where == "cuda" and precision in ("bf16-mixed", "16-mixed")
    dtype = torch.bfloat16 if precision == "bf16-mixed" else torch.float16

    def step():
        with torch.autocast(where, dtype=dtype, enabled=autocast):
            loss = family.token_nll(model, data) / max(1, int((data["labels"] != -100).sum()))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()
    if where == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if where == "cuda":
        torch.cuda.synchronize()
    tokens = micro_batch * (length + (target_length if family.separate_labels else 0)) * steps
    return tokens / (time.perf_counter() - start), where
