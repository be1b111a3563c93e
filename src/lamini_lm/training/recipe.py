"""A resume never mixes recipes unnoticed: the run folder keeps what its optimisation depends on
(recipe.json), and a resume with anything of it changed stops with the differing keys, unless
``allow_recipe_change=true``; an accepted change is recorded in recipe_history.jsonl, at the step it took
effect, and the earlier recipe is kept beside it."""

from __future__ import annotations

import atexit
import json
import shutil
import time
from pathlib import Path

from lamini_lm.errors import UserError
from lamini_lm.files import write_atomic
from lamini_lm.run_lock import is_first_process

# what is optimised: the student, the data and its order, the batch and its split across devices (the saved
# data position counts micro-batches per rank), the seed, the optimizer and schedule, the numerics. Not in it:
# logging, callbacks, checkpoint cadence, and trainer.max_epochs (training longer is a resume's purpose).
RECIPE_KEYS = ("model", "data", "optim", "objective", "seed", "global_batch_size", "micro_batch_size",
               "trainer.precision", "trainer.gradient_clip_val", "trainer.devices", "trainer.num_nodes",
               "trainer.strategy")
# what a recipe without an objective (a run recorded before it was a recipe key) trained with
EARLIER_OBJECTIVE = {"objective._target_": "lamini_lm.training.objectives.sequence.Sequence"}
# how fast batches arrive, not which; what the planner reads of the architecture (conf/model/base/), not the model
NOT_RECIPE = ("data.num_workers", "model.planner", "objective.teacher.planner")
EARLIER_CONFIG = ".hydra.before_resume"  # the run's .hydra/ while a resume's recipe is checked


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


def keep_earlier_config(folders: dict[str, Path]) -> None:
    """Before Hydra overwrites a resumed run's .hydra/ (called by train.py with the folders named on the command
    line): a copy, which check() puts back when it refuses the resume, and keeps as .hydra.<n> beside
    recipe.<n>.json when a change is accepted."""
    run = folders.get("hydra.run.dir")
    if run is not None and is_first_process() and (run / ".hydra").is_dir():
        shutil.rmtree(run / EARLIER_CONFIG, ignore_errors=True)
        shutil.copytree(run / ".hydra", run / EARLIER_CONFIG)
        atexit.register(_put_back, run)


def _put_back(run: Path) -> None:
    """At exit: a command that stopped before its recipe was checked (a bad value, a crash) leaves the run's own
    .hydra/, not its own; check() has consumed the copy on every other path."""
    if (run / EARLIER_CONFIG).is_dir():
        shutil.rmtree(run / ".hydra", ignore_errors=True)
        (run / EARLIER_CONFIG).rename(run / ".hydra")


def check(run_dir: Path, record: dict, resuming_from: str | None, allow_change: bool) -> None:
    """Record the recipe of a new run; compare a resume's with the one its checkpoint was trained with (this
    folder's, or that of the run the checkpoint comes from); see the module's docstring."""
    path, earlier = run_dir / "recipe.json", run_dir / EARLIER_CONFIG
    new = _with_objective(recipe(record))
    trained = _trained_with(run_dir, resuming_from)
    old = _with_objective(json.loads(trained.read_text())) if trained else new
    changed = {k: [old.get(k), new.get(k)] for k in sorted(old.keys() | new.keys()) if old.get(k) != new.get(k)}
    if changed and not allow_change:
        _put_back(run_dir)  # the run's own .hydra/, not the refused command's
        shown = "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in list(changed.items())[:6])
        more = f" (+{len(changed) - 6} more)" if len(changed) > 6 else ""
        raise UserError(f"{resuming_from} was trained with another recipe ({trained}): {shown}{more}; resume with "
                        "the run's own settings, start a new run folder, or accept the change with "
                        "allow_recipe_change=true")
    if changed:
        history = run_dir / "recipe_history.jsonl"
        n = sum(1 for _ in open(history)) if history.exists() else 0
        write_atomic(run_dir / f"recipe.{n}.json", trained.read_text())  # the earlier recipe, kept
        kept = None
        if earlier.is_dir():
            shutil.rmtree(run_dir / f".hydra.{n}", ignore_errors=True)
            earlier.rename(run_dir / f".hydra.{n}")  # and the earlier full config
            kept = f".hydra.{n}"
        with open(history, "a", encoding="utf-8") as f:
            f.write(json.dumps({"time": time.strftime("%Y-%m-%d %H:%M:%S"), "resumed_from": resuming_from,
                                "step": _step(resuming_from), "earlier_recipe": f"recipe.{n}.json",
                                "earlier_config": kept, "changed": changed}, default=str) + "\n")
    shutil.rmtree(earlier, ignore_errors=True)
    if changed or trained != path:
        write_atomic(path, json.dumps(new, indent=1, sort_keys=True, default=str) + "\n")


def _with_objective(flat: dict) -> dict:
    """A recipe that names no objective (recorded before it was a recipe key) trained with the sequence one."""
    if any(k.startswith("objective.") for k in flat):
        return flat
    return {**{k: v for k, v in flat.items() if k != "objective"}, **EARLIER_OBJECTIVE}


def _trained_with(run_dir: Path, ckpt: str | None) -> Path | None:
    """The recipe.json of the run a checkpoint was saved by (<run>/checkpoints/x.ckpt), or None for a new run or
    a checkpoint that no run folder describes."""
    if ckpt is None:
        return None
    for run in (Path(ckpt).resolve().parent.parent, run_dir.resolve()):
        if (run / "recipe.json").is_file():
            return run / "recipe.json"
    return None


def _step(ckpt: str) -> int | None:
    """The optimizer step a checkpoint holds, read without loading its tensors into memory."""
    import torch  # here only: importing this module must stay cheap (train.py checks its config first)

    try:
        return int(torch.load(ckpt, map_location="cpu", weights_only=True, mmap=True).get("global_step"))
    except Exception:  # an unreadable checkpoint fails the resume itself, with Lightning's message
        return None
