"""A run's history survives its resumes: how far it had come and its last metrics travel in every checkpoint
(RunState), <run>/csv/metrics.csv keeps the rows of the steps before the resume point (Lightning's CSVLogger deletes
the file when it starts), and an offline or online W&B run continues under its id."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import lightning.pytorch as pl
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

from lamini_lm.files import replacing
from lamini_lm.training.checkpoints import STATE


class RunState(pl.Callback):
    """Saved in every checkpoint: the epochs complete (a rerun of a finished run is told so, training/run.py) and
    the metrics Lightning held, which a resume that trains nothing more (killed during the export) reports again."""

    def __init__(self):
        self.restored: dict[str, float] = {}
        self._trainer = None

    @property
    def state_key(self) -> str:
        return STATE

    def setup(self, trainer, pl_module, stage) -> None:
        self._trainer = trainer

    def state_dict(self) -> dict:
        t = self._trainer
        loop = t.fit_loop.epoch_loop.batch_progress.current
        # saved at an epoch's end (after its last micro-batch ran), or within it
        done = t.current_epoch + (loop.processed >= t.num_training_batches)
        return {"epochs_done": int(done),
                "metrics": {**self.restored, **{k: float(v) for k, v in t.callback_metrics.items()}}}

    def load_state_dict(self, state: dict) -> None:
        self.restored = dict(state.get("metrics", {}))


class _KeptRows(ExperimentWriter):
    """Lightning's CSV writer, less its deletion of an earlier metrics.csv: the rows of steps before ``before`` are
    kept (a resume redoes the later ones, whose rows it writes again) and new rows are appended under their header."""

    def __init__(self, log_dir: str, before: int):
        self.before = before
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:
        path = Path(self.metrics_file_path)
        if not path.is_file():
            return
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            keys, rows = list(reader.fieldnames or []), [r for r in reader if _step(r) < self.before]
        with replacing(path) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            writer.writerows(rows)
        self.metrics_keys = keys


def _step(row: dict) -> float:
    try:
        return float(row.get("step") or 0)
    except ValueError:
        return 0


def keep_history(loggers, resume_step: int) -> None:
    """Make every CSV logger keep the rows of the steps before ``resume_step`` (0: a fresh start, none kept)."""
    for logger in loggers:
        if isinstance(logger, CSVLogger):
            os.makedirs(logger.root_dir, exist_ok=True)
            logger._experiment = _KeptRows(logger.log_dir, resume_step)  # what its `experiment` builds, less the deletion


def wandb_resume(save_dir: str | Path) -> dict:
    """The arguments that continue the W&B run recorded under ``save_dir`` (its wandb/latest-run, offline or online)
    instead of starting another: the same id, ``resume="allow"``; nothing when there is none."""
    latest = Path(save_dir) / "wandb" / "latest-run"
    if not latest.is_symlink():
        return {}
    run_id = os.readlink(latest).rsplit("-", 1)[-1]  # offline-run-<time>-<id> or run-<time>-<id>
    return {"id": run_id, "resume": "allow"} if run_id else {}
