"""The planner: per-device memory of a training micro-batch (weights, gradients, optimizer state, activations with
and without activation checkpointing) under DDP, FSDP full-shard and ZeRO-2, the largest micro-batch that fits a
device, the accumulation that makes the global batch, and the time of the run on D_ALL.

    python -m lamini_lm.training.plan model=gpt2 experiment=lamini_paper plan.tokens_per_s=30000
    python -m lamini_lm.training.plan model=gpt2_xl trainer=fsdp trainer.devices=8 plan.measure=true
    python -m lamini_lm.training.plan experiment=lamini_herd      # one row per member of the sweep

It takes train.py's command line and composes its config (every group, and the `plan` keys); a sweep (model=a,b,
or an experiment whose hydra.sweeper.params list one) is planned job by job (training/sweep_plan.py). The peak
planned is that of a step under gradient accumulation (gradients already held while a micro-batch runs forward and
backward): weights + gradients + optimizer state (training/memory.py) + activations at the start of backward
(training/activations.py).

What imports torch (the model, the batching, the throughput run) is imported inside the functions that need it,
as in train.py: a wrong key or value fails in a second.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from hydra.errors import HydraException

from lamini_lm import table_render, targets
from lamini_lm.analysis.tables import paper_numbers
from lamini_lm.config import compose, typed
from lamini_lm.errors import UserError, exit_on_user_error
from lamini_lm.models.spec import ModelSpec
from lamini_lm.training import activations, memory
from lamini_lm.training.objectives.base import Objective
from lamini_lm.training.spec import PlanSpec, TrainSpec

if TYPE_CHECKING:  # the family module imports torch, which this command defers
    from lamini_lm.models.families import Family

GB = memory.GB


STRATEGIES = ("ddp", "fsdp", "deepspeed")  # what the table compares (one device: single)
# the smallest micro-batch the planner's setting takes without activation checkpointing: below it a step is 16+
# passes of a GPU working at its memory's edge, and a third more compute buys a micro-batch several times larger
CHECKPOINT_BELOW = 8


@dataclass(frozen=True)
class Setup:
    """What a plan depends on, from the composed config."""

    name: str
    family: Family
    prompt_style: str  # the name the model trains with (its config's, or the family's default)
    shape: memory.Shape
    dims: dict
    strategy: str  # the trainer's
    world: int
    precision: str
    device: str  # cpu | cuda: the trainer's accelerator
    kernel: str  # fused | math (training/activations.py)
    objective: Objective  # the training objective: what it keeps beside the student (a teacher) is counted too


@dataclass(frozen=True)
class Point:
    strategy: str
    checkpointing: bool
    micro_batch: int
    states: memory.Memory
    acts: activations.Activations
    objective: float = 0.0  # bytes the objective keeps beside the student (Objective.extra_memory)

    @property
    def total(self) -> float:
        return self.states.total + self.acts.total + self.objective


def setup(cfg, world: int | None = None) -> Setup:
    """``world``: the devices x nodes of the run (default: the trainer config's)."""
    from lamini_lm.models.backbone import build_family

    spec, model = memory.meta_model(cfg)
    shape, strategy, world, _ = memory.plan(cfg, model, world)
    d = activations.dims(spec.planner, spec.architecture, cfg.fast_gelu)
    device = "cuda" if cfg.trainer.accelerator in ("gpu", "cuda") else "cpu"
    if cfg.trainer.precision not in memory.PRECISION:
        raise UserError(f"trainer.precision={cfg.trainer.precision}: the planner knows {', '.join(memory.PRECISION)}")
    kern = activations.kernel(d, cfg.plan.attention, device, model.config._attn_implementation)
    family = build_family(spec)
    objective = targets.build(cfg.objective, "objective", base=Objective) if cfg.get("objective") else Objective()
    objective.extra_memory(1, 2, 1, 4)  # one that cannot be sized (a teacher without its architecture) says so here
    return Setup(spec.name, family, spec.prompt_style or family.default_prompt_style, shape, d, strategy, world,
                 cfg.trainer.precision, device, kern, objective)


def dtypes(s: Setup) -> activations.Dtypes:
    stored, compute, _ = memory.PRECISION[s.precision]
    mask = 0 if s.dims["dropout"] == 0 else compute if s.device == "cpu" else 1  # CPU keeps a float mask
    return activations.Dtypes(residual=stored, compute=compute, mask=mask)


def point(s: Setup, strategy: str, micro_batch: int, length: int, target_length: int,
          checkpointing: bool) -> Point:
    world = 1 if strategy == "single" else s.world
    states = memory.per_device(s.shape, strategy, s.precision, world)
    acts = activations.estimate(s.dims, dtypes(s), s.kernel, s.device, micro_batch, length, target_length,
                                checkpointing)
    # an example's tokens and its targets, as the estimate reads them (a teacher reads the whole example)
    enc_dec = s.dims["encoder_decoder"]
    tokens, targets_ = (length + target_length, target_length) if enc_dec else (length, min(target_length, length - 1))
    extra = s.objective.extra_memory(micro_batch, tokens, targets_, memory.PRECISION[s.precision][1])
    return Point(strategy, checkpointing, micro_batch, states, acts, extra)


def largest_micro_batch(s: Setup, strategy: str, capacity: float, length: int, target_length: int,
                        checkpointing: bool) -> int:
    """The largest micro-batch whose peak is within ``capacity`` bytes (0: not even one sequence)."""
    fits = lambda b: point(s, strategy, b, length, target_length, checkpointing).total <= capacity  # noqa: E731
    if not fits(1):
        return 0
    lo, hi = 1, 2
    while fits(hi):
        lo, hi = hi, hi * 2
    while hi - lo > 1:  # fits(lo), not fits(hi)
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def dividing(largest: int, global_batch: int, world: int) -> tuple[int, int] | None:
    """(micro-batch, accumulation): the largest micro-batch up to ``largest`` that cuts the global batch into
    whole passes over ``world`` devices (data/batching.py accumulation_steps), or None."""
    from lamini_lm.data.batching import accumulation_steps

    for b in range(min(largest, global_batch // world), 0, -1):
        if global_batch % (b * world) == 0:
            return b, accumulation_steps(global_batch, b, world)
    return None


def fit(s: Setup, strategy: str, capacity: float, global_batch: int, length: int,
        target_length: int) -> tuple[int, int, bool] | None:
    """The planner's setting for ``strategy``: (micro-batch, accumulation, activation checkpointing), the largest
    micro-batch that fits ``capacity`` bytes and divides the global batch, without checkpointing when that gives
    at least CHECKPOINT_BELOW sequences; None when not even one sequence fits."""
    world = 1 if strategy == "single" else s.world
    found = None
    for ckpt in (False, True):
        div = dividing(largest_micro_batch(s, strategy, capacity, length, target_length, ckpt), global_batch, world)
        if div:
            found = (*div, ckpt)
            if div[0] >= CHECKPOINT_BELOW:
                break
    return found


def micro_batch(cfg, s: Setup) -> int:
    """The run's micro-batch (train.py resolves a null one the same way: data/batching.py micro_batch)."""
    from lamini_lm.data.batching import micro_batch as resolve

    return resolve(cfg.global_batch_size, cfg.micro_batch_size, s.world)


def run_time(cfg, p: PlanSpec, s: Setup, tokens_per_s: float) -> dict:
    """Hours of trainer.max_epochs over D_ALL (Table 1's tokens) at ``tokens_per_s`` real tokens/s per device."""
    all_ = paper_numbers()["all"]
    per_example = p.prompt_tokens.get(s.prompt_style)
    if per_example is None:
        raise UserError(f"plan.prompt_tokens has no entry for prompt style '{s.prompt_style}' (model {s.name}): "
                        f"add +plan.prompt_tokens.{s.prompt_style}=<tokens per example beyond instruction and response>")
    tokens = (all_["ins_tokens_M"] + all_["res_tokens_M"] + all_["samples_M"] * per_example) * 1e6
    epochs = cfg.trainer.max_epochs
    seconds = epochs * tokens / (tokens_per_s * s.world)
    return {"epochs": epochs, "tokens_per_epoch": tokens, "devices": s.world, "tokens_per_s_per_device": tokens_per_s,
            "hours": seconds / 3600}


def plan(cfg) -> dict:
    """Everything the command prints, as plain data."""
    p = typed(cfg.plan, PlanSpec, "plan")
    s = setup(cfg)
    length, target = p.length, p.target_length
    capacity = (p.memory_gb - p.reserve_gb) * GB
    strategies = STRATEGIES if s.world > 1 or s.strategy != "single" else ("single",)
    out = {"model": s.name, "params": s.shape.params, "trainer_strategy": s.strategy, "devices": s.world,
           "precision": s.precision, "device": s.device, "attention": s.kernel, "length": length,
           "target_length": target, "memory_gb": p.memory_gb, "reserve_gb": p.reserve_gb,
           "global_batch_size": cfg.global_batch_size, "micro_batch_size": micro_batch(cfg, s), "rows": [],
           "largest": []}
    sizes = sorted({*p.micro_batches, out["micro_batch_size"]})
    for strategy in strategies:
        for ckpt in (False, True):
            big = largest_micro_batch(s, strategy, capacity, length, target, ckpt)
            div = dividing(big, cfg.global_batch_size, 1 if strategy == "single" else s.world)
            out["largest"].append({"strategy": strategy, "checkpointing": ckpt, "fits": big,
                                   "micro_batch": div[0] if div else None, "accumulation": div[1] if div else None})
            for b in sorted({*sizes, big} - {0}):
                pt = point(s, strategy, b, length, target, ckpt)
                out["rows"].append({"strategy": strategy, "checkpointing": ckpt, "micro_batch": b,
                                    **{k: v / GB for k, v in asdict(pt.states).items()},
                                    **{f"activations_{k}": v / GB for k, v in asdict(pt.acts).items()},
                                    "activations": pt.acts.total / GB, "objective": pt.objective / GB,
                                    "total": pt.total / GB, "fits": pt.total <= capacity})
    out["time"] = _time(cfg, p, s)
    return out


def _time(cfg, p: PlanSpec, s: Setup) -> dict | None:
    if p.tokens_per_s is not None:
        return {**run_time(cfg, p, s, p.tokens_per_s), "rate_from": "given"}
    if not p.measure:
        return None
    from lamini_lm.models import attention
    from lamini_lm.models.backbone import build_family
    from lamini_lm.training import throughput

    spec = typed(cfg.model, ModelSpec, "model")
    n = p.measure_length
    rate, where = throughput.measure(spec, build_family(spec), p.measure_micro_batch, n, n, p.measure_steps,
                                     s.precision, cfg.fast_gelu)
    # full-length random sequences hold no padding; training's padded micro-batches waste plan.padding of it, packed
    # ones (data.packing=padding_free under a varlen attention) none
    packed = cfg.data.packing == "padding_free" and s.family.can_pack and spec.attn_implementation in attention.VARLEN
    padding = 0.0 if packed else p.padding
    real = rate * (1 - padding)
    return {**run_time(cfg, p, s, real), "rate_from": f"measured on {where}: {rate:,.0f} tokens/s at micro-batch "
            f"{p.measure_micro_batch} x {n} tokens, x (1 - padding {padding})"}


def render(out: dict) -> str:
    ckpt = {False: "no", True: "yes"}
    teacher = any(r["objective"] for r in out["rows"])  # a column only where an objective keeps something
    head = (f"{out['model']}: {out['params'] / 1e6:,.1f}M parameters, {out['precision']} on {out['devices']} "
            f"{out['device']} device(s) (trainer: {out['trainer_strategy']}), attention kept as '{out['attention']}', "
            f"{out['length']} tokens per sequence, {out['target_length']} in the loss\n\n"
            "Per device, GB (activations at the start of backward; peak = states + activations"
            + (" + the objective's teacher: its weights, forward and logits" if teacher else "") + "):")
    memory_rows = [[r["strategy"], ckpt[r["checkpointing"]], str(r["micro_batch"]), f"{r['weights']:.2f}",
                    f"{r['gradients']:.2f}", f"{r['optimizer']:.2f}",
                    f"{r['activations']:.2f} ({r['activations_loss']:.2f})",
                    *([f"{r['objective']:.2f}"] if teacher else []),
                    f"{r['total']:.2f}" + ("" if r["fits"] else " (over)")] for r in out["rows"]]
    largest_rows = [[r["strategy"], ckpt[r["checkpointing"]], str(r["fits"]), str(r["micro_batch"] or "-"),
                     str(r["accumulation"] or "-")] for r in out["largest"]]
    lines = [table_render.markdown(head, ["strategy", "ckpt", "micro-batch", "weights", "gradients", "optimizer",
                                          "activations (of which loss)", *(["teacher"] if teacher else []), "total"],
                                   memory_rows),
             table_render.markdown(f"Largest micro-batch within {out['memory_gb']} GB - {out['reserve_gb']} GB reserve, "
                                   f"and the one that divides global_batch_size={out['global_batch_size']} over "
                                   f"{out['devices']} device(s):",
                                   ["strategy", "ckpt", "fits", "micro-batch", "accumulation"], largest_rows).rstrip()]
    t = out["time"]
    if t is None:
        lines += ["", "Run time: give plan.tokens_per_s=<real tokens/s per device> or plan.measure=true"]
    else:
        lines += ["", f"Run time of {t['epochs']} epoch(s) over D_ALL ({t['tokens_per_epoch'] / 1e6:,.1f}M tokens per "
                  f"epoch, Table 1 + prompt tokens) at {t['tokens_per_s_per_device']:,.0f} real tokens/s per device "
                  f"x {t['devices']}: {t['hours']:,.1f} h ({t['rate_from']})"]
    return "\n".join(lines)


def main(argv=None) -> None:
    from lamini_lm.overrides import check_overrides

    overrides = list(sys.argv[1:] if argv is None else argv)
    # --help, and train.py's check of every override (a typo gets the closest real keys)
    check_overrides("train", overrides, doc=__doc__, command="python -m lamini_lm.training.plan", app=False)

    @exit_on_user_error
    def run():
        from lamini_lm.training import sweep_plan

        try:
            cfgs = [compose("train", ["paths.output_dir=/tmp/unused", *job]) for job in sweep_plan.jobs(overrides)]
        except HydraException as e:  # an unknown choice or key: Hydra's own message, one line
            raise UserError(str(e).splitlines()[0]) from None
        for cfg in cfgs:  # train.py's whole check (global_batch_size=0, a bad export or data key): its plan is moot
            typed(cfg, TrainSpec)
        as_json = cfgs[0].plan.json
        if len(cfgs) > 1:  # a sweep (the herd): one row per job
            rows = [sweep_plan.row(cfg) for cfg in cfgs]
            print(json.dumps(rows, indent=1) if as_json else sweep_plan.render(rows))
            return
        out = plan(cfgs[0])
        print(json.dumps(out, indent=1) if as_json else render(out))

    run()


if __name__ == "__main__":
    main()
