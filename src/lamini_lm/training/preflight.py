"""Before a GPU run loads its model: the planner's peak per device for the run as configured (strategy, micro-batch,
activation checkpointing, full-length sequences of plan.length tokens) against the GPU's memory less
plan.reserve_gb. A plan over it stops the run at once, in one line naming the member, both numbers and a setting
that fits, instead of an out-of-memory error an hour into a queue. plan.preflight=false skips it."""

from __future__ import annotations

import logging

from lamini_lm.errors import UserError
from lamini_lm.training import plan
from lamini_lm.training.spec import PlanSpec

log = logging.getLogger(__name__)


def check(cfg, p: PlanSpec) -> None:
    """The preflight of train.py, on a CUDA device only (a CPU run swaps rather than fails)."""
    if not p.preflight or cfg.trainer.accelerator not in ("gpu", "cuda", "auto"):
        return
    import torch

    if not torch.cuda.is_available():
        return
    devices = cfg.trainer.devices if isinstance(cfg.trainer.devices, int) and cfg.trainer.devices > 0 \
        else torch.cuda.device_count()  # -1 or "auto": every GPU of the node
    memory = torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory
    verdict(cfg, p, memory, devices * cfg.trainer.get("num_nodes", 1))


def verdict(cfg, p: PlanSpec, device_bytes: int, world: int) -> None:
    """Stop with one line when the planned peak passes ``device_bytes`` less the reserve on ``world`` devices."""
    try:
        s = plan.setup(cfg, world)
    except UserError as e:  # a strategy or model the planner cannot size (no architecture): nothing to compare
        log.info("preflight skipped: %s", e)
        return
    capacity = device_bytes - p.reserve_gb * plan.GB
    micro, ckpt = plan.micro_batch(cfg, s), bool(cfg.activation_checkpointing)
    peak = plan.point(s, s.strategy, micro, p.length, p.target_length, ckpt).total
    if peak <= capacity:
        return
    raise UserError(f"{s.name}: the planner puts the peak at {peak / plan.GB:.1f} GB per device ({s.strategy} on "
                    f"{s.world}, micro-batch {micro}, activation checkpointing {'on' if ckpt else 'off'}, "
                    f"{p.length}-token sequences) but this {device_bytes / plan.GB:.1f} GB GPU leaves "
                    f"{capacity / plan.GB:.1f} GB (plan.reserve_gb={p.reserve_gb:g}): {_fix(cfg, s, p, capacity)}; "
                    "plan.preflight=false starts anyway")


def _fix(cfg, s: plan.Setup, p: PlanSpec, capacity: float) -> str:
    """A setting that fits: the planner's for this strategy, else under FSDP, else none."""
    for strategy, prefix in ((s.strategy, ""), ("fsdp", "trainer=fsdp ")):
        found = plan.fit(s, strategy, capacity, cfg.global_batch_size, p.length, p.target_length)
        if found:
            micro, _, ckpt = found
            return f"set {prefix}micro_batch_size={micro} activation_checkpointing={str(ckpt).lower()}"
    return "not even one sequence fits: use GPUs with more memory (or plan.length for data of shorter sequences)"
