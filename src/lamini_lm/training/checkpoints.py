"""Which checkpoint a run resumes from (``ckpt_path=auto``: <run>/checkpoints/last.ckpt), said in one line, and how
far a checkpoint's run had come. How checkpoints are written: training/saving.py."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from lamini_lm.errors import UserError
from lamini_lm.run_lock import is_first_process

LAST = "last.ckpt"
STATE = "RunState"  # the callback (training/history.py) whose state says how far a checkpoint's run had come


@dataclass
class Resume:
    """The checkpoint a run continues from, and how far it had come."""

    path: str
    step: int
    epochs_done: int | None  # complete epochs; None for a checkpoint of an older version, which does not say

    def reached(self, max_epochs: int, max_steps: int) -> bool:
        """Whether the checkpoint's run has trained all it was asked to."""
        if 0 <= max_steps <= self.step:
            return True
        return self.epochs_done is not None and 0 <= max_epochs <= self.epochs_done


def read(path: Path) -> Resume | None:
    """What a Lightning checkpoint holds (memory-mapped: its tensors are not read into memory); None when it does not
    load or is no Lightning checkpoint (a torn zip, another kind of file)."""
    import torch  # here only: train.py checks its config before paying for torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # torn zip, not a torch file, unpicklable content: all mean "not usable"
        return None
    if not (isinstance(ckpt, dict) and {"state_dict", "global_step"} <= ckpt.keys()):
        return None
    state = ckpt.get("callbacks", {}).get(STATE, {})
    return Resume(str(path), int(ckpt["global_step"]), state.get("epochs_done"))


def resolve(ckpt_path: str | None, output_dir: Path) -> str | None:
    """The checkpoint this run starts from, said in one line unless the run is new: ``ckpt_path`` as given, or
    (``auto``) <run>/checkpoints/last.ckpt. A run folder without one starts fresh, saying so and naming any other
    checkpoint it keeps (a best-*.ckpt resumes exactly too, but only when named: it is the run's chosen model, not
    its latest state)."""
    if ckpt_path in (None, "null"):
        return None
    if ckpt_path != "auto":
        path = Path(ckpt_path)
        if not path.is_file():
            raise UserError(f"ckpt_path={ckpt_path} does not exist; use a .ckpt file, 'auto' or null")
        resume = read(path)
        if resume is None:
            raise UserError(f"ckpt_path={ckpt_path} is not a checkpoint train.py can resume from (unreadable or "
                            "incomplete); pick another one (ls <run>/checkpoints) or start fresh with ckpt_path=null")
        _note(f"resuming from {path} (step {resume.step})")
        return str(path)
    folder = output_dir / "checkpoints"
    for stale in folder.glob("*.tmp*"):  # left by a kill while a checkpoint was written: never a usable one
        stale.unlink(missing_ok=True)
    last = folder / LAST
    if last.is_dir():  # a sharded checkpoint (trainer=deepspeed): the strategy reads it
        _note(f"resuming {output_dir} from {last.name} (a sharded checkpoint)")
        return str(last)
    resume = read(last) if last.is_file() else None
    if resume is not None:
        _note(f"resuming {output_dir} from {last.name} (step {resume.step})")
        return str(last)
    why = f"{last} cannot be read" if last.is_file() else f"{output_dir} has no {LAST}"
    # Lightning's SLURM requeue checkpoint (SIGUSR1, hpc_ckpt_<n>.ckpt), which Lightning itself would resume from
    # unannounced on SLURM when given no checkpoint; saved wherever the step was, so not an exact continuation
    hpc = max(output_dir.glob("hpc_ckpt_*.ckpt"), key=lambda p: p.stat().st_mtime, default=None)
    if hpc is not None and read(hpc) is not None:
        _note(f"{why}: resuming from {hpc.name}, Lightning's SLURM requeue checkpoint (saved mid-step: close to, "
              "not exactly, the uninterrupted run)")
        return str(hpc)
    others = sorted((p for p in folder.glob("*.ckpt") if p != last), key=lambda p: p.stat().st_mtime, reverse=True)
    if others:
        _note(f"{why}: starting fresh (to continue from its {others[0].name} instead: ckpt_path={others[0]})")
    elif last.is_file() or (output_dir / "recipe.json").is_file():  # a run that was here before
        _note(f"{why}: starting fresh")
    return None


def _note(text: str) -> None:
    if is_first_process():  # the other ranks of a job resolve the same checkpoint
        print(f"note: {text}", file=sys.stderr)
