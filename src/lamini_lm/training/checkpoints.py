"""Which checkpoint a run resumes from: ``ckpt_path=auto`` takes <run>/checkpoints/last.ckpt, or, when a kill
tore it mid-write, the newest intact checkpoint of the run (and says so); a file that is no checkpoint is one
line naming it."""

from __future__ import annotations

import logging
from pathlib import Path

from lamini_lm.errors import UserError

log = logging.getLogger(__name__)


def intact(path: Path) -> bool:
    """A Lightning checkpoint that loads (memory-mapped: its tensors are not read into memory)."""
    import torch  # here only: train.py checks its config before paying for torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # torn zip, not a torch file, unpicklable content: all mean "not usable"
        return False
    return isinstance(ckpt, dict) and {"state_dict", "global_step"} <= ckpt.keys()


def resolve(ckpt_path: str | None, output_dir: Path) -> str | None:
    if ckpt_path in (None, "null"):
        return None
    if ckpt_path != "auto":
        path = Path(ckpt_path)
        if not path.is_file():
            raise UserError(f"ckpt_path={ckpt_path} does not exist; use a .ckpt file, 'auto' or null")
        if not intact(path):
            raise UserError(f"ckpt_path={ckpt_path} is not a checkpoint train.py can resume from (unreadable or "
                            "incomplete); pick another one (ls <run>/checkpoints) or start fresh with ckpt_path=null")
        return str(path)
    folder = output_dir / "checkpoints"
    candidates = sorted(folder.glob("*.ckpt"), key=lambda p: p.stat().st_mtime, reverse=True) if folder.is_dir() else []
    last = folder / "last.ckpt"
    if last in candidates:  # the usual choice first, whatever the clock says
        candidates.remove(last)
        candidates.insert(0, last)
    for i, path in enumerate(candidates):
        if intact(path):
            if i:
                log.warning("resuming from %s: %s is damaged (a kill while it was written?)", path.name,
                            ", ".join(p.name for p in candidates[:i]))
                print(f"note: {', '.join(p.name for p in candidates[:i])} could not be read; resuming from the "
                      f"newest intact checkpoint, {path}")
            return str(path)
    if candidates:
        raise UserError(f"no checkpoint in {folder} can be read ({', '.join(p.name for p in candidates)}); start "
                        "fresh with ckpt_path=null (the run folder keeps them) or another hydra.run.dir")
    return None
