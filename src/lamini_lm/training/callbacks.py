"""Training callbacks: real-token throughput and padding share, and sample generations per validation."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks.throughput_monitor import _plugin_to_compute_dtype
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.strategies import FSDPStrategy

from lamini_lm.inference import generate
from lamini_lm.training.flops import FlopCoefficients, roof

log = logging.getLogger(__name__)


class TokenThroughput(pl.Callback):
    """Logs real (non-pad) tokens/s over all ranks, the share of computed tokens that were padding and the
    executed-FLOP utilisation (training/flops.py: executed FLOP/s per device over the device's roof), on every
    step, so the cost of a batching choice shows on the dashboard, not only in a benchmark."""

    def __init__(self, peak_flops: float | None = None):
        self.peak_flops = peak_flops  # per device; null: lightning's table on a GPU, a measured matmul on a CPU
        self.real = self.padded = 0
        self.flops = self.seconds = 0.0
        self._t = self._coefficients = self._roof = None

    def on_fit_start(self, trainer, pl_module):
        self._coefficients = FlopCoefficients(pl_module.model)
        # the dtype the matmuls run in (bf16 under bf16-mixed, whose weights stay fp32), as Lightning's own
        # ThroughputMonitor reads it
        compute = _plugin_to_compute_dtype(trainer.precision_plugin)
        self._roof = roof(pl_module.device, compute, self.peak_flops)
        if self._roof is None and trainer.is_global_zero:
            log.info("perf/flop_utilisation is not logged: lightning knows no peak FLOP/s of %s in %s; give it as "
                     "callbacks.throughput.peak_flops", pl_module.device, compute)

    def on_train_epoch_start(self, trainer, pl_module):
        self._t = time.perf_counter()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self._t is None:  # resumed mid-epoch: no epoch start was seen
            self._t = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        now = time.perf_counter()
        dt, self._t = now - self._t, now
        flops = self._coefficients.of_batch(batch) if self._coefficients else 0.0
        self.real += batch["real_tokens"]
        self.padded += batch["padded_tokens"]
        self.flops += flops
        self.seconds += dt
        metrics = {"perf/real_tokens_per_s": batch["real_tokens"] * trainer.world_size / max(dt, 1e-9),
                   "perf/padding_share": 1 - self.real / max(self.padded, 1)}
        if self._roof:
            metrics["perf/flop_utilisation"] = flops / max(dt, 1e-9) / self._roof
        pl_module.log_dict(metrics, on_step=True, on_epoch=False, batch_size=1)

    # the totals travel in checkpoints: a resumed run's summary covers all of its steps
    def state_dict(self) -> dict:
        return {"real": self.real, "padded": self.padded, "flops": self.flops, "seconds": self.seconds}

    def load_state_dict(self, state: dict) -> None:
        self.real, self.padded = state["real"], state["padded"]
        self.flops, self.seconds = state["flops"], state["seconds"]

    def summary(self, world_size: int) -> dict:
        out = {"perf/mean_real_tokens_per_s": self.real * world_size / max(self.seconds, 1e-9),
               "perf/padding_share": 1 - self.real / max(self.padded, 1)}
        if self._roof:
            out["perf/flop_utilisation"] = self.flops / max(self.seconds, 1e-9) / self._roof
            out["perf/roof_flops"] = self._roof
        return out


class SampleGenerations(pl.Callback):
    """Greedy answers to the first validation instructions after each validation, as a W&B table
    (``samples``) and as lines of ``<run dir>/samples.jsonl``; the last ones are printed at the end."""

    def __init__(self, num_samples: int = 4, max_new_tokens: int = 48):  # num_samples=0 turns it off
        self.num_samples, self.max_new_tokens = num_samples, max_new_tokens
        self.last: list[dict] = []

    def on_validation_end(self, trainer, pl_module):
        if (not self.num_samples or trainer.sanity_checking or not trainer.is_global_zero
                or isinstance(trainer.strategy, FSDPStrategy)):
            return  # FSDP: weights are sharded, generating on one rank would hang the others
        dm = trainer.datamodule
        instructions = dm.val_instructions(self.num_samples)
        # on a forked RNG: a model whose generation config samples would shift the dropout of every later step,
        # which a run resumed from before this validation would not repeat
        device = pl_module.device
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            responses = generate(pl_module.model, dm.tokenizer, pl_module.family, pl_module.style, instructions,
                                 max_new_tokens=self.max_new_tokens)
        self.last = [{"step": trainer.global_step, "instruction": i, "response": r}
                     for i, r in zip(instructions, responses)]
        with open(Path(trainer.default_root_dir) / "samples.jsonl", "a") as f:
            for row in self.last:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_text(key="samples", columns=["step", "instruction", "response"],
                                data=[[r["step"], r["instruction"], r["response"]] for r in self.last])
