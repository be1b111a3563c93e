"""The analysis input as a stream of record batches: a local file or folder, or a hub dataset id.

Accepted: a record JSONL, JSON or Parquet file (lamini_lm.data.records), a generate run folder
holding d_all.jsonl (or d_all.parquet), a ``datasets.save_to_disk`` folder, or a hub dataset id such as
the released MBZUAI/LaMini-instruction. Every row is checked; a bad one is one UserError naming it. The tables
group records by subset, so a record needs its instruction_source here (train.py's data.fields does not apply).
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from pathlib import Path

from lamini_lm.data.records import REQUIRED_FIELDS, read_records, validate
from lamini_lm.errors import UserError

RELEASED = "MBZUAI/LaMini-instruction"


def _batched(rows, size: int) -> Iterator[list[dict]]:
    it = iter(rows)
    while batch := list(islice(it, size)):
        yield batch


def _dataset_batches(ds, name: str, size: int) -> Iterator[list[dict]]:
    missing = [f for f in REQUIRED_FIELDS if f not in ds.column_names]
    if missing:
        raise UserError(
            f"{name}: no field {', '.join(repr(m) for m in missing)} (it has {', '.join(ds.column_names)}); "
            f"a record needs {', '.join(REQUIRED_FIELDS)}"
        )
    row = 0
    for cols in ds.select_columns(list(REQUIRED_FIELDS)).iter(batch_size=size):
        batch = []
        for vals in zip(*(cols[f] for f in REQUIRED_FIELDS)):
            row += 1
            batch.append(validate(dict(zip(REQUIRED_FIELDS, vals)), f"{name} row {row}"))
        yield batch


def _load_hub(name: str, split: str):
    import datasets

    try:
        return datasets.load_dataset(name, split=split)
    except Exception as e:  # offline, unknown id, no such split: all mean "give me a local file"
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise UserError(
            f"could not load hub dataset '{name}' split '{split}' ({type(e).__name__}: {first[:200]}); "
            "it needs the Hugging Face Hub or its local cache (HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 use the cache "
            "without retrying), or pass analysis.input=<local .jsonl/.parquet>"
        ) from None


def _load_from_disk(folder: Path, split: str):
    import datasets

    ds = datasets.load_from_disk(str(folder))
    if isinstance(ds, datasets.DatasetDict):
        if split not in ds:
            raise UserError(f"{folder}: no split '{split}' (it has {', '.join(ds)}); set analysis.split")
        ds = ds[split]
    return ds


def record_batches(input: str, split: str = "train", batch_size: int = 2048, limit: int | None = None):
    """Batches of validated records ({instruction, response, instruction_source}) from ``input``."""
    batches = _open(str(input), split, batch_size)
    if limit is not None:  # the first `limit` rows, for a quick look at a large dataset
        batches = _batched(islice((r for b in batches for r in b), limit), batch_size)
    return batches


def _open(input: str, split: str, batch_size: int) -> Iterator[list[dict]]:
    path = Path(input).expanduser()
    if path.is_dir():
        for name in ("d_all.jsonl", "d_all.parquet"):
            if (path / name).is_file():
                return _batched(read_records(path / name), batch_size)
        if (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists():
            return _dataset_batches(_load_from_disk(path, split), str(path), batch_size)
        raise UserError(f"{path} is a folder without d_all.jsonl, d_all.parquet or a saved `datasets` dataset")
    if path.is_file():
        return _batched(read_records(path), batch_size)
    if input.count("/") == 1 and not input.startswith((".", "/", "~")) and not path.suffix:
        return _dataset_batches(_load_hub(input, split), input, batch_size)
    raise UserError(f"analysis.input: {input} does not exist (a .jsonl/.parquet file, a folder or a hub dataset id)")
