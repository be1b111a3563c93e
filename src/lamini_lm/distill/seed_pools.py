"""Seed pools (Section 3.1): self-instruct's seed tasks, Alpaca, P3 and FLAN prompts.

A pool item is {id, instruction, task}; an instance's input is joined as "instruction:input".
Local files (.jsonl, .json, .parquet) report bad rows by file and line; hub datasets that cannot be
reached give one error naming the dataset id and the local-file override.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from lamini_lm.errors import UserError
from lamini_lm.jsonl import iter_jsonl
from lamini_lm.subsets import SUBSETS

log = logging.getLogger(__name__)


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
    if path.suffix == ".jsonl":
        yield from iter_jsonl(path)
    elif path.suffix == ".json":
        try:
            rows = json.loads(path.read_bytes().decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise UserError(f"{path}: not a valid UTF-8 JSON file ({e})") from None
        if not isinstance(rows, list):
            raise UserError(f"{path}: expected a JSON list of objects")
        for i, row in enumerate(rows, 1):
            yield f"{path} item {i}", row
    elif path.suffix == ".parquet":
        import pyarrow.parquet as pq

        i = 0
        for batch in pq.ParquetFile(path).iter_batches():
            for row in batch.to_pylist():
                i += 1
                yield f"{path} row {i}", row
    else:
        raise UserError(f"seed file {path}: use .jsonl, .json or .parquet")


def _rows_hub(name: str, scfg, common, seed: int):
    try:
        from datasets import load_dataset

        per_config = max(1, int(common.hub_max_rows) // max(1, len(scfg.hub_configs)))
        for config in scfg.hub_configs:
            ds = load_dataset(scfg.hub_id, config, split=scfg.split, streaming=True)
            ds = ds.shuffle(seed=seed, buffer_size=int(common.hub_shuffle_buffer))
            for i, row in enumerate(islice(ds, per_config), 1):
                if scfg.task_field is None:
                    row = {**row, "__task": config or scfg.hub_id}
                yield f"{scfg.hub_id}{'/' + config if config else ''} row {i}", row
    except UserError:
        raise
    except Exception as e:
        first = (str(e).splitlines() or [type(e).__name__])[0][:160]
        raise UserError(
            f"seed_pools.{name}: cannot load hub dataset '{scfg.hub_id}' ({first}); point "
            f"seed_pools.{name}.path at a local .jsonl/.json/.parquet with a '{scfg.instruction_field}' field, "
            f"or leave the subsets that need it out (size.<subset>=0)"
        ) from None


def load_pool(name: str, scfg_all, seed: int) -> Pool:
    scfg = scfg_all[name]
    if scfg.path:
        rows = _rows_file(Path(scfg.path))
    elif name == "self_instruct":
        from lamini_lm import assets

        rows = _rows_file(assets.path("seed_tasks") / "seed_tasks.jsonl")
    else:
        rows = _rows_hub(name, scfg, scfg_all, seed)
    pool = Pool(name, [])
    limit = int(scfg_all.max_instruction_chars)
    seen_ids: set[str] = set()
    for where, row in rows:
        if not isinstance(row, dict):
            raise UserError(f"{where}: expected a JSON object, got {type(row).__name__}")
        text = row.get(scfg.instruction_field)
        if text is None:
            raise UserError(f"{where}: missing field '{scfg.instruction_field}' (seed_pools.{name}.instruction_field)")
        if not isinstance(text, str):
            raise UserError(f"{where}: field '{scfg.instruction_field}' must be a string")
        inp = row.get(scfg.input_field) if scfg.input_field else None
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
        task = row.get(scfg.task_field) if scfg.task_field else row.get("__task", name)
        pool.items.append({"id": rid, "instruction": text, "task": str(task)})
    if not pool.items:
        raise UserError(f"seed_pools.{name}: no usable instruction in {scfg.path or scfg.get('hub_id', 'the asset')}")
    return pool


def needed_pools(sizes) -> list[str]:
    return sorted({SUBSETS[s].pool for s, n in sizes.items() if int(n) > 0})
