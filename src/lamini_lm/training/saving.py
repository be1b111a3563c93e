"""How checkpoints reach the disk: whole (a kill or a full disk never leaves a torn one, so the previous one stays
usable), and last.ckpt at the moments a resume repeats exactly. Which one a run resumes from: training/checkpoints.py."""

from __future__ import annotations

import io
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from lamini_lm.errors import UserError
from lamini_lm.files import DiskFull, is_full, replacing
from lamini_lm.training.checkpoints import LAST


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, made whole: the checkpoint is serialised in memory (as Lightning's own writer
    does), written to a temporary name, flushed and renamed into place, so a kill leaves the previous file; a full
    disk stops the run with one line (exit 2) naming the folder and the checkpoint's size."""

    def __init__(self, run_dir: Path):
        super().__init__()
        self.run_dir = run_dir

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        self.write(Path(path), buffer.getbuffer())

    def write(self, path: Path, data: memoryview) -> None:
        """The one place a checkpoint reaches the disk."""
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with replacing(path) as tmp, open(tmp, "wb") as f:
                f.write(data)
        except OSError as e:
            if not is_full(e):
                raise
            raise DiskFull(path.parent, len(data), f"{path.name} ({len(data)} bytes) was not written and the "
                           "checkpoints already there are unchanged",
                           f"continue with `python train.py hydra.run.dir={self.run_dir}`") from None


class LastCheckpoint(pl.Callback):
    """``<dirpath>/last.ckpt``, what a killed run resumes from: rewritten every ``every_n_train_steps`` optimizer
    steps and at the end of every epoch, after its validation. Never at an epoch's last step before the validation:
    a resume from there skips that validation (Lightning's loop takes it as done), so val/loss would be missing
    from the history. Before each save the loggers write what they hold, so the history reaches the checkpoint."""

    def __init__(self, dirpath: str, every_n_train_steps: int = 50):
        if every_n_train_steps < 1:
            raise UserError(f"callbacks.last_checkpoint.every_n_train_steps={every_n_train_steps}: give a positive "
                            "number of optimizer steps (last.ckpt is also written at each epoch's end)")
        self.path = Path(dirpath) / LAST
        self.every = every_n_train_steps
        self._step = 0  # the optimizer step seen at the previous micro-batch

    def on_train_start(self, trainer, pl_module) -> None:
        self._step = trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self._step:  # a micro-batch that only accumulated
            return
        self._step = trainer.global_step
        if self._step % self.every == 0 and batch_idx + 1 < trainer.num_training_batches:
            save_last(trainer, self.path)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        save_last(trainer, self.path)


_SAVED: dict[Path, int] = {}  # the optimizer step of each last.ckpt this process wrote, on every rank alike


def save_last(trainer, path: Path) -> None:
    """Save ``path`` (a collective: every rank calls it), after the loggers wrote what they hold."""
    for logger in trainer.loggers:
        logger.save()
    trainer.save_checkpoint(path)
    _SAVED[path] = trainer.global_step


def saved_at(path: Path) -> int | None:
    return _SAVED.get(path)
