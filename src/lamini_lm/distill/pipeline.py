"""Dispatch generate.py's stages: all | instructions | responses | assemble | topics | analyze."""

from __future__ import annotations

from omegaconf import DictConfig

from lamini_lm.errors import UserError

STAGES = ("all", "instructions", "responses", "assemble", "topics", "analyze")


def run(cfg: DictConfig):
    if cfg.stage == "analyze":
        from lamini_lm.analysis import run as analyze

        analyze(cfg)
        return None
    if cfg.stage not in STAGES:
        raise UserError(f"unknown stage '{cfg.stage}'; choose one of {', '.join(STAGES)}")
    from lamini_lm.distill.stages import Context, assemble, run_instructions, run_responses
    from lamini_lm.subsets import SUBSETS

    unknown = set(cfg.size) - set(SUBSETS)
    if unknown:
        raise UserError(f"size.{sorted(unknown)[0]} is not a subset; subsets: {', '.join(SUBSETS)}")
    ctx = Context(cfg)
    if cfg.stage == "topics":
        found = ctx.topics(always=True)
        print(f"{len(found)} topics ({cfg.topics._target_}) -> {ctx.out / 'topics.txt'}")
        return found
    teacher = ctx.teacher  # its settings are checked (a misspelt key is one error) even for a dry run
    if cfg.dry_run:
        from lamini_lm.distill import dryrun

        return dryrun.run(ctx)
    if cfg.stage != "assemble":
        teacher.check()  # e.g. a missing API key: one clear error before any work
    if cfg.stage in ("all", "instructions"):
        run_instructions(ctx)
    if cfg.stage in ("all", "responses"):
        run_responses(ctx)
    if cfg.stage in ("all", "assemble"):
        records = assemble(ctx)
        print(f"D_ALL: {len(records)} records -> {ctx.out / 'd_all.jsonl'}")
        return records
    return None
