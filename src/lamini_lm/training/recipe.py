"""A resume never mixes recipes unnoticed: the run folder keeps what its optimisation depends on
(recipe.json), and a resume with anything of it changed stops with the differing keys, unless
``allow_recipe_change=true``; an accepted change is recorded in recipe_history.jsonl, at the step it took
effect, and the earlier recipe is kept beside it."""

from __future__ import annotations

import json
import time
from pathlib import Path

from lamini_lm.errors import UserError
from lamini_lm.files import write_atomic

# what is optimised: the student, the data and its order, the batch and its split across devices (the saved
# data position counts micro-batches per rank), the seed, the optimizer and schedule, the numerics. Not in it:
# logging, callbacks, checkpoint cadence, and trainer.max_epochs (training longer is a resume's purpose).
RECIPE_KEYS = ("model", "data", "optim", "seed", "global_batch_size", "micro_batch_size", "trainer.precision",
               "trainer.gradient_clip_val", "trainer.devices", "trainer.num_nodes", "trainer.strategy")
NOT_RECIPE = ("data.num_workers",)  # how fast batches arrive, not which


def recipe(record: dict) -> dict:
    """The recipe keys of a resolved config, flattened to dotted names."""
    flat: dict = {}

    def walk(prefix: str, node) -> None:
        if isinstance(node, dict) and node:
            for k, v in node.items():
                walk(f"{prefix}.{k}", v)
        elif not any(prefix == k or prefix.startswith(k + ".") for k in NOT_RECIPE):
            flat[prefix] = node

    for key in RECIPE_KEYS:
        node = record
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        walk(key, node)
    return flat


def check(run_dir: Path, record: dict, resuming_from: str | None, allow_change: bool) -> None:
    """Record the recipe of a new run; compare a resume's with it (see the module's docstring)."""
    path = run_dir / "recipe.json"
    new = recipe(record)
    if resuming_from is None or not path.exists():
        write_atomic(path, json.dumps(new, indent=1, sort_keys=True, default=str) + "\n")
        return
    old = json.loads(path.read_text())
    changed = {k: [old.get(k), new.get(k)] for k in sorted(old.keys() | new.keys()) if old.get(k) != new.get(k)}
    if not changed:
        return
    shown = "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in list(changed.items())[:6])
    more = f" (+{len(changed) - 6} more)" if len(changed) > 6 else ""
    if not allow_change:
        raise UserError(f"{run_dir} was trained with another recipe: {shown}{more}; resume with the run's own "
                        "settings, start a new run folder, or accept the change with allow_recipe_change=true")
    history = run_dir / "recipe_history.jsonl"
    n = sum(1 for _ in open(history)) if history.exists() else 0
    write_atomic(run_dir / f"recipe.{n}.json", path.read_text())  # the earlier recipe, kept
    with open(history, "a", encoding="utf-8") as f:
        f.write(json.dumps({"time": time.strftime("%Y-%m-%d %H:%M:%S"), "resumed_from": resuming_from,
                            "step": _step(resuming_from), "earlier_recipe": f"recipe.{n}.json", "changed": changed},
                           default=str) + "\n")
    write_atomic(path, json.dumps(new, indent=1, sort_keys=True, default=str) + "\n")


def _step(ckpt: str) -> int | None:
    """The optimizer step a checkpoint holds, read without loading its tensors into memory."""
    import torch  # here only: importing this module must stay cheap (train.py checks its config first)

    try:
        return int(torch.load(ckpt, map_location="cpu", weights_only=True, mmap=True).get("global_step"))
    except Exception:  # an unreadable checkpoint fails the resume itself, with Lightning's message
        return None
