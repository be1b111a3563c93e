"""Gradient accumulation checks: a training module's gradient over one global batch split into micro-batches as
Lightning runs them (each micro-batch's loss / k, then backward), for the objectives' accumulation tests."""

from __future__ import annotations


class FakeTrainer:
    """What a training module reads of its trainer to normalise a micro-batch's loss."""

    def __init__(self, accumulation, world_size=1):
        self.accumulate_grad_batches, self.world_size = accumulation, world_size


# The largest gradient difference between two micro-batch splits, over the gradient's largest element. In exact
# arithmetic it is 0; what is left is summation order (batched vs per-example kernels, which differ with the CPU's
# instruction set, thread count and BLAS). Measured, accumulation 1 vs 4 and 2, both families, AVX-512 and
# ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2, 1/2/4 threads: float64 <= 3.1e-15, float32 <= 1.2e-6 (an
# AMD EPYC with AVX2 only: 2.8e-6, issue 14). The mean of micro-batch means (transformers #24725) gives >= 0.30.
GRADIENT_GAP = {"float64": 1e-10, "float32": 1e-4}


def gradient_gap(reference, other) -> float:
    return ((reference - other).abs().max() / reference.abs().max()).item()


def accumulated_grads(module, collate, rows: dict, total: int, micro_batches: list[list[int]], accumulation: int,
                      edit_batch=None):
    """The flattened gradient of ``module`` after one optimizer step's micro-batches (lists of row indices into
    ``rows``; ``total`` target tokens in the global batch). ``edit_batch(batch)``: a change to each collated batch
    before its step (a deliberate bug, to show the check can fail)."""
    import torch

    module.zero_grad()
    module._trainer = FakeTrainer(accumulation)
    for idx in micro_batches:
        batch = collate(({k: [v[i] for i in idx] for k, v in rows.items()}, total))
        if edit_batch is not None:
            edit_batch(batch)
        (module.training_step(batch, 0) / accumulation).backward()
    return torch.cat([p.grad.flatten() for p in module.parameters() if p.grad is not None]).clone()
