"""Dispatch generate.py's stages: all | instructions | responses | assemble | topics | analyze."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from lamini_lm import analysis
from lamini_lm.config import typed
from lamini_lm.distill import dryrun
from lamini_lm.distill.spec import GenerateSpec
from lamini_lm.distill.assembly import assemble
from lamini_lm.distill.stages import Context, run_instructions, run_responses
from lamini_lm.files import DiskFull, is_full
from lamini_lm.run_lock import RunLock
from lamini_lm.stopping import stop_signals


def check(cfg: DictConfig) -> GenerateSpec:
    """The config of every stage but analyze, typed and checked in one step (a UserError naming the key).
    Hydra's `paths` is left out: the stages read it only through interpolations (out_dir's default, the prompts)."""
    return typed(cfg, GenerateSpec, keys=[k for k in cfg if k != "paths"])


def run(cfg: DictConfig):
    if cfg.get("stage") == "analyze":
        analysis.run(cfg)  # checks its own config
        return None
    spec = check(cfg)
    # the log file is in the run folder: on a full disk every log line would print a traceback of its own
    logging.raiseExceptions = False
    with RunLock(spec.out_dir, "out_dir"):  # two runs on one out_dir would pay for every request twice
        ctx = Context(spec)
        try:
            # Ctrl-C or SIGTERM: every finished request is stored already
            with stop_signals(lambda: f"{kept(ctx.out)}; the same command continues from there"):
                return _stages(ctx)
        except OSError as e:  # a full disk met outside the request stores, which say so themselves
            if not is_full(e):
                raise
            raise DiskFull(ctx.out, ctx.space_needed(), kept(ctx.out), "run the same command again") from None
        finally:
            ctx.close()


def kept(out: Path) -> str:
    stored = sum(p.read_bytes().count(b"\n") for p in (out / "requests").glob("*.jsonl"))
    return f"{stored} finished requests are stored in {out / 'requests'}"


def _stages(ctx: Context):
    spec = ctx.spec
    if spec.stage == "topics":
        found = ctx.topics(always=True)
        print(f"{len(found)} topics ({spec.topics['_target_']}) -> {ctx.out / 'topics.txt'}")
        return found
    teacher = ctx.teacher  # its settings are checked (a misspelt key is one error) even for a dry run
    if spec.dry_run:
        return dryrun.run(ctx)
    if spec.stage != "assemble":
        teacher.check()  # e.g. a missing API key: one clear error before any work
    if spec.stage in ("all", "instructions"):
        run_instructions(ctx)
    if spec.stage in ("all", "responses"):
        run_responses(ctx)
    if spec.stage in ("all", "assemble"):
        records = assemble(ctx)
        print(f"D_ALL: {len(records)} records -> {ctx.out / 'd_all.jsonl'}")
        if ctx.logprobs:
            lp = ctx.logprobs
            print(f"teacher log-probs (top {lp['k']}): {lp['records']} records, {lp['response_tokens']:,} response "
                  f"tokens, {lp['bytes'] / 2**20:.1f} MiB ({lp['bytes_per_token']:.1f} bytes a token) -> "
                  f"{ctx.out / lp['file']}")
        return records
    return None
