"""Seed pools (Section 3.1): self-instruct's seed tasks, Alpaca, P3 and FLAN prompts.

A pool item is {id, instruction, task}; an instance's input is joined as "instruction:input".
Local files (.jsonl, .json, .parquet: lamini_lm.rows) report bad rows by file and line; hub datasets that cannot be
reached give one error naming the dataset id and the local-file override.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Optional

from lamini_lm import assets
from lamini_lm.config import BadValue
from lamini_lm.errors import UserError
from lamini_lm.rows import iter_rows
from lamini_lm.subsets import SUBSETS

log = logging.getLogger(__name__)


@dataclass
class PoolSpec:
    """Where one pool is read from: a local file (`path`), else its default: a file in an offline asset (`asset`)
    or a hub dataset (`hub_id`)."""

    path: Optional[str] = None  # .jsonl, .json or .parquet
    asset: Optional[str] = None  # <asset>/<file>: a file of an offline asset (lamini_lm.assets)
    hub_id: Optional[str] = None
    hub_configs: list[Optional[str]] = field(default_factory=lambda: [None])  # null: the dataset's only config
    split: str = "train"
    instruction_field: str = "instruction"
    input_field: Optional[str] = None  # joined to the instruction as "instruction:input"
    task_field: Optional[str] = None  # groups rows by sub-task; null: the hub config is the sub-task

    def __post_init__(self):
        if self.path is not None and not Path(self.path).is_file():
            raise BadValue("path", f"the seed file {self.path} does not exist")
        if not self.hub_configs:
            raise BadValue("hub_configs", "is empty: list the hub dataset's configs to read (null for its only one)")


@dataclass
class SeedPoolsSpec:
    """conf/seed_pools/: the four pools (lamini_lm.subsets says which subset draws from which) and read limits."""

    self_instruct: PoolSpec
    alpaca: PoolSpec
    p3: PoolSpec
    flan: PoolSpec
    hub_max_rows: int = 200_000  # rows read at most from a hub dataset, shared by its configs
    hub_shuffle_buffer: int = 10_000
    max_instruction_chars: int = 20_000  # a longer instruction is skipped (oversized_instruction)

    def __post_init__(self):
        for key in ("hub_max_rows", "hub_shuffle_buffer", "max_instruction_chars"):
            if getattr(self, key) < 1:
                raise BadValue(key, f"{getattr(self, key)} must be at least 1")
        for name in ("self_instruct", "alpaca", "p3", "flan"):
            if not (self.pool(name).path or self.pool(name).asset or self.pool(name).hub_id):
                raise BadValue(name, "has no path, asset or hub_id: set one of them")

    def pool(self, name: str) -> PoolSpec:
        return getattr(self, name)


@dataclass
class Pool:
    name: str
    items: list[dict]
    skipped: Counter = field(default_factory=Counter)

    def by_task(self) -> dict[str, list[dict]]:
        groups: dict[str, list[dict]] = {}
        for it in self.items:
            groups.setdefault(it["task"], []).append(it)
        return groups


def join(instruction: str, inp: str | None) -> str:
    """Section 3.1: an instruction with an input becomes "$instruction:$input"."""
    instruction = instruction.strip()
    inp = (inp or "").strip()
    return f"{instruction}:{inp}" if inp else instruction


def _rows_file(path: Path):
    if not path.exists():
        raise UserError(f"seed file {path} does not exist")
    if path.suffix not in (".jsonl", ".json", ".parquet"):
        raise UserError(f"seed file {path}: use .jsonl, .json or .parquet")
    return iter_rows(path)


def _rows_hub(name: str, spec: PoolSpec, pools: SeedPoolsSpec, seed: int):
    try:
        from datasets import load_dataset  # heavy: imported only when a pool comes from the hub

        per_config = max(1, pools.hub_max_rows // len(spec.hub_configs))
        for config in spec.hub_configs:
            ds = load_dataset(spec.hub_id, config, split=spec.split, streaming=True)
            ds = ds.shuffle(seed=seed, buffer_size=pools.hub_shuffle_buffer)
            for i, row in enumerate(islice(ds, per_config), 1):
                if spec.task_field is None:
                    row = {**row, "__task": config or spec.hub_id}
                yield f"{spec.hub_id}{'/' + config if config else ''} row {i}", row
    except UserError:
        raise
    except Exception as e:
        first = (str(e).splitlines() or [type(e).__name__])[0][:160]
        raise UserError(
            f"seed_pools.{name}: cannot load hub dataset '{spec.hub_id}' ({first}); point "
            f"seed_pools.{name}.path at a local .jsonl/.json/.parquet with a '{spec.instruction_field}' field, "
            f"or leave the subsets that need it out (size.<subset>=0)"
        ) from None


def load_pool(name: str, pools: SeedPoolsSpec, seed: int) -> Pool:
    """Pool `name` read as `pools` says; its hub rows shuffled with `seed`."""
    spec = pools.pool(name)
    if spec.path:
        rows = _rows_file(Path(spec.path))
    elif spec.asset:
        asset, _, file = spec.asset.partition("/")
        rows = _rows_file(assets.path(asset) / file)
    else:
        rows = _rows_hub(name, spec, pools, seed)
    pool = Pool(name, [])
    limit = pools.max_instruction_chars
    seen_ids: set[str] = set()
    for where, row in rows:
        if not isinstance(row, dict):
            raise UserError(f"{where}: expected a JSON object, got {type(row).__name__}")
        text = row.get(spec.instruction_field)
        if text is None:
            raise UserError(f"{where}: missing field '{spec.instruction_field}' (seed_pools.{name}.instruction_field)")
        if not isinstance(text, str):
            raise UserError(f"{where}: field '{spec.instruction_field}' must be a string")
        inp = row.get(spec.input_field) if spec.input_field else None
        if inp is None and isinstance(row.get("instances"), list) and row["instances"]:
            inp = row["instances"][0].get("input")  # self-instruct's seed task format
        text = join(text, inp if isinstance(inp, str) else None)
        if not text:
            pool.skipped["empty_instruction"] += 1
            log.warning("%s: empty instruction, skipped", where)
            continue
        if len(text) > limit:
            pool.skipped["oversized_instruction"] += 1
            log.warning("%s: instruction of %d characters (> %d), skipped", where, len(text), limit)
            continue
        rid = str(row.get("id") or where)
        if rid in seen_ids:
            rid = where
        seen_ids.add(rid)
        task = row.get(spec.task_field) if spec.task_field else row.get("__task", name)
        pool.items.append({"id": rid, "instruction": text, "task": str(task)})
    if not pool.items:
        raise UserError(f"seed_pools.{name}: no usable instruction in {spec.path or spec.hub_id or 'the asset'}")
    return pool


def needed_pools(sizes) -> list[str]:
    """The pools the subsets of positive size draw from."""
    return sorted({SUBSETS[s].pool for s, n in sizes.items() if n > 0})
