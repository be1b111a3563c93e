"""train.py's job: build everything from the config, fit, export, report where everything went.

Lightning, torch and transformers (and our modules built on them) are imported inside `train`, after the
config check: a wrong key or value fails in a second, not after the seconds those imports take."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import sys
from pathlib import Path

import yaml
from omegaconf import DictConfig

from lamini_lm import targets
from lamini_lm.config import typed
from lamini_lm.errors import UserError
from lamini_lm.run_lock import RunLock, is_first_process
from lamini_lm.secret_keys import redacted
from lamini_lm.training import checkpoints, cpu_heap, preflight, recipe
from lamini_lm.training.spec import TrainSpec

log = logging.getLogger(__name__)
METRICS = "metrics.json"


def _write_rank_record(output_dir: Path, rank: int, world_size: int, record: dict) -> None:
    # one small file per rank: proof (and a debugging aid) that every rank of a job ran the same config
    text = json.dumps(record, sort_keys=True)
    d = output_dir / "ranks"
    d.mkdir(parents=True, exist_ok=True)
    (d / f"rank{rank}.json").write_text(json.dumps(
        {"rank": rank, "world_size": world_size, "config_sha256": hashlib.sha256(text.encode()).hexdigest()}))


def train(cfg: DictConfig) -> dict:
    """Validate the config once, build model, data and trainer from it, fit, export, report."""
    spec = typed(cfg, TrainSpec)  # before the heavy imports: a wrong key fails in a second
    if spec.model.fsdp_block == "auto":  # found once in the model class, and recorded as found
        from lamini_lm.models.backbone import build_family, find_fsdp_block

        cfg.model.fsdp_block = find_fsdp_block(spec.model, build_family(spec.model))
        spec = typed(cfg, TrainSpec)
    preflight.check(cfg, spec.plan)  # a GPU run whose plan does not fit stops before the model loads
    record = redacted(cfg)  # what W&B, the rank records and the export keep of the config

    from lamini_lm.training import ddp_hydra

    ddp_hydra.prepare_job()
    output_dir = Path(spec.paths["output_dir"])
    if not is_first_process():  # the other ranks of this job: rank 0 owns the folder and its recipe
        return _fit(spec, record, output_dir)
    with RunLock(output_dir, "hydra.run.dir"):
        return _fit(spec, record, output_dir)


def _fit(spec: TrainSpec, record: dict, output_dir: Path) -> dict:
    ckpt = checkpoints.resolve(spec.ckpt_path, output_dir)
    resume = checkpoints.read(Path(ckpt)) if ckpt else None  # None also for a sharded (folder) checkpoint
    reader = targets.build(spec.data.reader, "data.reader")  # a wrong setting fails before the model loads
    objective = _objective(spec, reader)
    if is_first_process():
        recipe.check(output_dir, record, ckpt, spec.allow_recipe_change)
    if resume and _finished(spec, resume, output_dir):  # before the heavy imports: a second's answer
        return json.loads((output_dir / METRICS).read_text())

    from lamini_lm.training.stop import StopOnSignal, Stopped

    stop = StopOnSignal(output_dir / "checkpoints" / checkpoints.LAST)
    with stop.handling():
        try:
            return _train(spec, record, output_dir, reader, objective, ckpt, resume, stop)
        except Stopped as e:
            if is_first_process():
                print(e.line(output_dir), file=sys.stderr)
            sys.exit(e.exit_code)


def _train(spec: TrainSpec, record: dict, output_dir: Path, reader, objective, ckpt: str | None, resume,
           stop) -> dict:
    import lightning.pytorch as pl
    from lightning.pytorch.loggers import WandbLogger

    if is_first_process():
        # the data read once before Lightning starts: a bad line is the run's only output; the datamodule then
        # reads the datasets cache (every rank, after this one filled it)
        reader.load()
    pl.seed_everything(spec.seed, workers=True)
    # a wrong trainer, logger or callback value fails first
    loggers, callbacks, trainer = _trainer(spec, record, output_dir, stop, ckpt, resume)
    if spec.cpu_memory_cache and trainer.strategy.root_device.type == "cpu" and cpu_heap.keep_freed_memory():
        log.info("cpu_memory_cache: memory torch frees stays in this process for the next micro-batch")
    # FSDP checkpoints through its own policy (conf/trainer/fsdp.yaml); every other strategy through the model
    checkpoint = spec.activation_checkpointing and type(trainer.strategy).__name__ != "FSDPStrategy"
    module, datamodule, tokenizer = _build(spec, reader, checkpoint, objective)
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt)
        _write_rank_record(output_dir, trainer.global_rank, trainer.world_size, record)
        return _finish(spec, record, trainer, module, datamodule, tokenizer, loggers, callbacks, output_dir)
    finally:
        for logger in loggers:
            if isinstance(logger, WandbLogger) and trainer.is_global_zero:
                logger.experiment.finish()  # one W&B run per sweep job, also when the job fails


def _finished(spec: TrainSpec, resume, output_dir: Path) -> bool:
    """A rerun of a run that trained all it was asked to and wrote its results changes nothing: one line says so,
    with how to train it longer."""
    t = spec.trainer
    max_epochs = t.get("max_epochs")
    if not resume.reached(-1 if max_epochs is None else max_epochs, t.get("max_steps", -1)):
        return False
    hf = output_dir / "hf"
    if not (output_dir / METRICS).is_file() or (spec.export.enabled and not _exported(hf)):
        return False  # stopped after training: the resume writes what is missing
    if is_first_process():
        done = f"{resume.epochs_done} epochs" if resume.epochs_done is not None else f"{resume.step} steps"
        where = f"its export is {hf}" if spec.export.enabled else f"its metrics are in {output_dir / METRICS}"
        more = (f"trainer.max_epochs={max(max_epochs, resume.epochs_done or 0) + 1}" if max_epochs is not None
                else f"trainer.max_steps={resume.step + 1} or more")
        print(f"note: {output_dir} has finished training ({done}, step {resume.step}) and {where}; nothing to do. "
              f"To train it longer: python train.py hydra.run.dir={output_dir} {more}", file=sys.stderr)
    return True


def _objective(spec: TrainSpec, reader):
    """The training objective (conf/objective/), its settings and the data it needs checked before the model
    loads."""
    from lamini_lm.training.objectives.base import Objective

    objective = targets.build(spec.objective or {}, "objective", base=Objective)
    objective.check(getattr(reader, "path", None))
    return objective


def _build(spec: TrainSpec, reader, checkpoint: bool, objective=None):
    """The LightningModule (backbone + family + optimizer settings, its loss the ``objective``'s: the sequence NLL
    when None), the DataModule over ``reader``, the tokenizer; ``checkpoint``: wrap the blocks in activation
    checkpointing."""
    from lamini_lm.data.datamodule import InstructionDataModule
    from lamini_lm.models.attention import packs
    from lamini_lm.models.backbone import (build_family, checkpoint_blocks, compile_blocks, fuse_gelu, load_model,
                                           load_tokenizer)

    family = build_family(spec.model)
    tokenizer = load_tokenizer(spec.model)
    backbone = load_model(spec.model, family)
    if spec.fast_gelu:
        fuse_gelu(backbone)
    if checkpoint:
        checkpoint_blocks(backbone)
    if spec.compile:
        compile_blocks(backbone, spec.model.fsdp_block)
    module = family.module(backbone, spec.model, spec.optim, tokenizer, objective)
    data = spec.data
    datamodule = InstructionDataModule(
        reader, tokenizer, module.style, family,
        global_batch_size=spec.global_batch_size, micro_batch_size=spec.micro_batch_size, val_size=data.val_size,
        max_source_length=data.max_source_length, max_target_length=data.max_target_length,
        mask_prompt=data.mask_prompt, seed=spec.seed, num_workers=data.num_workers,
        context=family.context(backbone.config), packing=data.packing if packs(backbone) else "padded",
        objective=objective,
    )
    return module, datamodule, tokenizer


def _trainer(spec: TrainSpec, record: dict, output_dir: Path, stop, ckpt: str | None, resume):
    """Loggers (the config logged to each), callbacks and the Lightning Trainer with the derived accumulation and the
    run's checkpoint writer; a resume keeps the loggers' history."""
    from lamini_lm.data.batching import accumulation_steps, micro_batch
    from lamini_lm.training import ddp_hydra
    from lamini_lm.training.history import RunState, keep_history, wandb_resume
    from lamini_lm.training.saving import AtomicCheckpointIO

    loggers = []
    for name, lcfg in (spec.logger or {}).items():
        if lcfg is None:
            continue
        extra = {}
        if "Wandb" in lcfg["_target_"]:
            extra = {"group": ddp_hydra.sweep_group()} if not lcfg.get("group") else {}
            if ckpt and not lcfg.get("id"):  # the resumed run continues its W&B run
                extra.update(wandb_resume(lcfg.get("save_dir") or output_dir))
        loggers.append(_built(lcfg, f"logger.{name}", **extra))
    if not loggers:  # Lightning would stop at fit, after the model loads (the learning-rate monitor needs one)
        raise UserError("no logger is configured: choose one (logger=csv logs to files only, logger=wandb to W&B)")
    callbacks = [_built(c, f"callbacks.{name}") for name, c in (spec.callbacks or {}).items() if c is not None]
    callbacks += [RunState(), stop]
    trainer = _built(spec.trainer, "trainer", logger=loggers or False, callbacks=callbacks,
                     plugins=[AtomicCheckpointIO(output_dir)])
    spec.micro_batch_size = micro_batch(spec.global_batch_size, spec.micro_batch_size, trainer.world_size)
    trainer.accumulate_grad_batches = accumulation_steps(spec.global_batch_size, spec.micro_batch_size,
                                                         trainer.world_size)
    if is_first_process():  # after the checks above: a refused run writes no logger folder
        # rows of the steps a resume redoes are dropped; a sharded checkpoint does not say its step: all kept
        keep_history(loggers, resume.step if resume else math.inf if ckpt else 0)
    for logger in loggers:
        try:  # W&B's logger hands its settings to wandb.init only now
            logger.log_hyperparams(record)
        except TypeError as e:
            raise UserError(f"logger: {type(logger).__name__} refuses a setting ({e})") from None
    return loggers, callbacks, trainer


def _built(cfg, key: str, **runtime):
    """A Lightning logger, callback or trainer from its config: a setting it does not take, or a value its
    constructor refuses (trainer.precision=17), is one line naming its config key, before the model loads.
    (``key``, not ``group``: W&B's logger takes a ``group`` among ``runtime``.)"""
    if cfg is None:
        raise UserError(f"{key} is empty: choose one (e.g. {key.split('.')[0]}=<name>) instead of removing it")
    try:
        return targets.build(cfg, key, **runtime)
    except UserError:
        raise
    except Exception as e:  # Lightning's own checks of the values (ValueError, MisconfigurationException)
        raise UserError(f"{key}: {str(e).strip().splitlines()[0]}") from None


def _finish(spec, record, trainer, module, datamodule, tokenizer, loggers, callbacks, output_dir: Path) -> dict:
    """Metrics, the export (a collective under FSDP: every rank calls it) and, on rank 0, the report."""
    from lamini_lm.files import write_atomic
    from lamini_lm.training.callbacks import SampleGenerations, TokenThroughput
    from lamini_lm.training.export import export, portable, push
    from lamini_lm.training.history import RunState

    # what the checkpoint held first: a resume that trained nothing more (stopped during the export) reports them
    metrics = dict(next(c for c in callbacks if isinstance(c, RunState)).restored)
    metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})
    throughput = next((c for c in callbacks if isinstance(c, TokenThroughput)), None)
    if throughput:
        metrics.update(throughput.summary(trainer.world_size))
    metrics.update(global_step=trainer.global_step, epoch=trainer.current_epoch, micro_batch_size=spec.micro_batch_size,
                   accumulate_grad_batches=trainer.accumulate_grad_batches, world_size=trainer.world_size)
    metrics.update(datamodule.counts())
    if trainer.is_global_zero:  # before the export: a run stopped during it has its metrics, and says so on rerun
        write_atomic(output_dir / METRICS, json.dumps(metrics, indent=2) + "\n")
    hf_dir = None
    if spec.export.enabled:
        paths = spec.paths
        places = {str(output_dir.resolve()): "<run>", paths["cache_dir"]: "<cache>", paths["conf_dir"]: "<conf>",
                  paths["package_dir"]: "<lamini_lm>", str(Path.cwd()): ".", str(Path.home()): "~"}
        hf_dir = export(trainer, module, tokenizer, spec.model,
                        yaml.safe_dump(portable(record, places), sort_keys=False), output_dir / "hf", metrics)
    if not trainer.is_global_zero:
        return metrics
    if hf_dir:
        _write_wandb_run(hf_dir, loggers)
    samples = next((c.last for c in callbacks if isinstance(c, SampleGenerations)), [])
    _report(output_dir, hf_dir, loggers, metrics, samples)
    if hf_dir and spec.export.push_to_hub:  # last: whatever happens to the upload, everything above is saved
        print(f"pushed to https://huggingface.co/{push(hf_dir, spec.export.push_to_hub, spec.export.private)}")
    return metrics


def _exported(hf: Path) -> bool:
    from lamini_lm.export_marker import check

    try:
        check(hf)
    except UserError:
        return False
    return True


def _write_wandb_run(hf_dir: Path, loggers) -> None:
    """Which W&B run trained this export (<export>/wandb_run.json): evaluate.py's run joins it, so the sweep's
    dashboard puts task scores beside val/loss."""
    from lightning.pytorch.loggers import WandbLogger

    for logger in loggers:
        if isinstance(logger, WandbLogger):
            run = logger.experiment
            (hf_dir / "wandb_run.json").write_text(json.dumps(
                {"id": run.id, "project": run.project, "group": run.group or None, "name": run.name}) + "\n")


def _report(output_dir: Path, hf_dir: Path | None, loggers, metrics: dict, samples: list[dict]) -> None:
    from lightning.pytorch.loggers import WandbLogger

    lines = ["", f"run folder      {output_dir}", f"checkpoints     {output_dir / 'checkpoints'}"]
    if hf_dir:
        lines.append(f"export          {hf_dir}")
    lines.append(f"metrics         {output_dir / METRICS}")
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            run = logger.experiment
            where = getattr(run, "dir", None) or logger.save_dir
            # a resumed run has one offline folder per process, all under its id
            mode = f"offline: upload with `wandb sync {Path(where).parent.parent}/offline-run-*-{run.id}`" \
                if run.settings.mode == "offline" else run.url
            lines.append(f"W&B run         {run.id} ({mode})")
        elif getattr(logger, "log_dir", None):
            lines.append(f"{type(logger).__name__:15s} {logger.log_dir}")
    for k in ("val/loss", "train/loss", "perf/mean_real_tokens_per_s", "perf/padding_share", "data/dropped_empty",
              "data/left_out_per_epoch", "data/val_duplicates_of_train"):
        if k in metrics:
            v = metrics[k]
            lines.append(f"{k:15s} {v}" if isinstance(v, int) else f"{k:15s} {v:.4f}")
    if samples:
        lines.append("sample generations (greedy, last validation):")
        for s in samples:
            lines.append(f"  > {s['instruction'][:100]!r}\n    {s['response'][:200]!r}")
    print("\n".join(lines))
