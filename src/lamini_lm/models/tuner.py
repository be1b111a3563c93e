"""The LightningModule for instruction tuning; the training objective (training/objectives/, conf/objective/)
computes the loss from what the model's family (models/families.py) gives it, by default the sequence NLL.

The loss of a micro-batch is its summed token loss divided by the number of target tokens of the whole
global batch (``step_target_tokens``, from the batch plan) and multiplied by accumulation x world size,
which Lightning's accumulation and DDP's gradient averaging divide out again. So every target token of
a global batch weighs the same, whatever the micro-batch size, the device count or the padding, and
accumulation 1 and k give the same gradient (transformers #24725 is the mean-of-means bug this avoids).
"""

from __future__ import annotations

import random
from dataclasses import asdict

import lightning.pytorch as pl
import numpy as np
import torch

from lamini_lm.models.families import IGNORE_INDEX, Family
from lamini_lm.models.spec import ModelSpec
from lamini_lm.training.objectives.base import Objective
from lamini_lm.training.objectives.sequence import Sequence
from lamini_lm.training.spec import OptimSpec

# transformers' schedulers are imported in configure_optimizers only: importing them costs seconds


class InstructionTuner(pl.LightningModule):
    def __init__(self, backbone, family: Family, model: ModelSpec, optim: OptimSpec, tokenizer=None,
                 objective: Objective | None = None):
        super().__init__()
        self.model = backbone
        self.family = family
        self.objective = objective or Sequence()
        self.optim = optim
        self.style = family.style(model.prompt_style, tokenizer)
        self.save_hyperparameters({"model": asdict(model), "optim": asdict(optim)})

    # -- loss ---------------------------------------------------------------------------------------
    def token_nll(self, batch) -> torch.Tensor:
        """Summed NLL over the micro-batch's target tokens (labels == -100 are ignored)."""
        return self.family.token_nll(self.model, batch)

    def training_step(self, batch, batch_idx):
        loss = self.objective.loss(self.family, self.model, batch)
        scale = self.trainer.accumulate_grad_batches * self.trainer.world_size
        n_tokens = (batch["labels"] != IGNORE_INDEX).sum().clamp(min=1)
        size = len(batch["input_ids"])
        self.log("train/loss", loss.total.detach() / n_tokens, prog_bar=True, batch_size=size)
        for name, value in loss.logs.items():
            self.log(f"train/{name}", value, batch_size=size)
        return loss.total / batch["step_target_tokens"] * scale

    def validation_step(self, batch, batch_idx):
        # the NLL of the held-out responses whatever the objective: runs of different objectives compare
        nll = self.token_nll(batch)
        n_tokens = (batch["labels"] != IGNORE_INDEX).sum()
        # token-weighted mean over the whole split: weight each batch by its token count
        self.log("val/loss", nll / n_tokens.clamp(min=1), prog_bar=True, batch_size=int(n_tokens), sync_dist=True)

    # -- optimisation -------------------------------------------------------------------------------
    def configure_optimizers(self):
        from transformers import get_scheduler

        o = self.optim
        # fused: one kernel for all parameters instead of a Python loop per tensor (2-3x faster steps on CPU)
        optimizer = torch.optim.AdamW(self.parameters(), lr=o.lr, betas=tuple(o.betas), eps=o.eps,
                                      weight_decay=o.weight_decay, fused=True)
        # Not trainer.estimated_stepping_batches: it builds the train loader before a checkpoint is
        # restored, and Lightning then never hands that loader its saved position (mid-epoch resume).
        t = self.trainer
        total = t.max_steps if t.max_steps > 0 else t.max_epochs * t.datamodule.steps_per_epoch
        scheduler = get_scheduler(o.scheduler, optimizer, num_warmup_steps=int(o.warmup_ratio * total),
                                  num_training_steps=total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # -- checkpoints carry the prompt style and the RNG state (exact mid-epoch resume) ---------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["prompt_style"] = {"name": self.style.name, "template": self.style.template}
        kind, keys, pos, has_gauss, gauss = np.random.get_state()
        # plain types and tensors only: Lightning loads checkpoints with torch.load(weights_only=True)
        checkpoint["rng"] = {"torch": torch.get_rng_state(), "python": random.getstate(),
                             "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss)}
        if torch.cuda.is_available():  # on a GPU, dropout draws from the CUDA generators
            checkpoint["rng"]["cuda"] = torch.cuda.get_rng_state_all()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # applied at the next training batch, not now: creating the data iterators on the way there
        # draws from the torch RNG, which the uninterrupted run had already done before saving
        self._resume_rng = checkpoint.get("rng")

    def on_train_batch_start(self, batch, batch_idx) -> None:
        rng, self._resume_rng = getattr(self, "_resume_rng", None), None
        if rng:
            torch.set_rng_state(rng["torch"])
            kind, keys, pos, has_gauss, gauss = rng["numpy"]
            np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
            random.setstate(rng["python"])
            if "cuda" in rng and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(rng["cuda"])
