"""The plan of every job of a sweep, one row each: what `python -m lamini_lm.training.plan experiment=lamini_herd`
(or any `model=a,b` list) prints, so that a herd's memory is held against its devices before anything is queued.

Each row is the job as train.py will run it: its strategy, micro-batch and activation checkpointing, the peak per
device, and the planner's own setting for the same devices (plan.fit) to compare with.
"""

from __future__ import annotations

from dataclasses import asdict

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser

from lamini_lm import table_render
from lamini_lm.config import typed
from lamini_lm.overrides import config_sweep
from lamini_lm.training import plan
from lamini_lm.training.spec import PlanSpec


def jobs(overrides: list[str]) -> list[list[str]]:
    """The overrides of each job of the sweep, as Hydra's basic sweeper expands them: the config's own sweep
    (experiment=lamini_herd lists the herd in hydra.sweeper.params), then the command line."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    return BasicSweeper.split_arguments(config_sweep("train", parsed) + parsed, None)[0]


def row(cfg) -> dict:
    """One job's plan at its own setting, and the planner's setting for its devices."""
    from lamini_lm.data.batching import accumulation_steps

    p = typed(cfg.plan, PlanSpec, "plan")
    s = plan.setup(cfg)
    capacity = (p.memory_gb - p.reserve_gb) * plan.GB
    micro, ckpt = plan.micro_batch(cfg, s), bool(cfg.activation_checkpointing)
    pt = plan.point(s, s.strategy, micro, p.length, p.target_length, ckpt)
    fit = plan.fit(s, s.strategy, capacity, cfg.global_batch_size, p.length, p.target_length)
    world = 1 if s.strategy == "single" else s.world
    return {"model": s.name, "params": s.shape.params, "strategy": s.strategy, "devices": s.world,
            "precision": s.precision, "length": p.length, "target_length": p.target_length,
            "memory_gb": p.memory_gb, "reserve_gb": p.reserve_gb, "micro_batch": micro,
            "accumulation": accumulation_steps(cfg.global_batch_size, micro, world), "checkpointing": ckpt,
            **{k: v / plan.GB for k, v in asdict(pt.states).items()}, "activations": pt.acts.total / plan.GB,
            "activations_loss": pt.acts.loss / plan.GB, "objective": pt.objective / plan.GB, "peak": pt.total / plan.GB,
            "fits": pt.total <= capacity,
            "planner": None if fit is None else {"micro_batch": fit[0], "accumulation": fit[1],
                                                 "checkpointing": fit[2]}}


def render(rows: list[dict]) -> str:
    first = rows[0]
    yes = {False: "no", True: "yes"}
    teacher = any(r["objective"] for r in rows)  # a column only where an objective keeps something

    def setting(micro, acc, ckpt):
        return f"{micro} x {acc}" + (", ckpt" if ckpt else "")

    body = []
    for r in rows:
        mine = setting(r["micro_batch"], r["accumulation"], r["checkpointing"])
        theirs = "none fits" if r["planner"] is None else setting(*r["planner"].values())
        body.append([r["model"], f"{r['params'] / 1e6:,.0f}M", f"{r['strategy']} x {r['devices']}", mine,
                     f"{r['weights']:.2f}", f"{r['gradients']:.2f}", f"{r['optimizer']:.2f}",
                     f"{r['activations']:.2f} ({r['activations_loss']:.2f})",
                     *([f"{r['objective']:.2f}"] if teacher else []), f"{r['peak']:.2f}", yes[r["fits"]],
                     "same" if theirs == mine else theirs])
    head = (f"Per device, GB, at each job's setting ({first['precision']}, {first['length']} tokens per sequence, "
            f"{first['target_length']} in the loss; micro-batch x accumulation, ckpt: activation checkpointing). "
            f"fits: the peak within {first['memory_gb']:g} GB less the {first['reserve_gb']:g} GB reserve; planner: "
            "the largest micro-batch that fits and divides the global batch, checkpointing only below "
            f"{plan.CHECKPOINT_BELOW} sequences:")
    return table_render.markdown(head, ["member", "params", "strategy", "micro-batch", "weights", "gradients",
                                        "optimizer", "activations (of which loss)", *(["teacher"] if teacher else []),
                                        "peak", "fits", "planner"],
                                 body).rstrip()
