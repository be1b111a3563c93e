"""Where training records come from (`data.reader`): a local JSONL, JSON or Parquet file, or a hub dataset.

Each reader maps the data's own fields onto ours (`data.fields`, lamini_lm.data.fields) and returns a
`datasets.Dataset` with the columns instruction, response, instruction_source, id, backed by the datasets cache, so
later tokenisation is cached too.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from datasets import Dataset, Features, Value, load_dataset
from datasets.exceptions import DatasetGenerationError

from lamini_lm.config import typed
from lamini_lm.data.fields import TRAINING_SUBSETS, Fields, to_record
from lamini_lm.errors import UserError
from lamini_lm.rows import iter_rows


# a record's columns; id is null where the data has none (a column of nulls only: typed here, not guessed)
RECORD = Features({k: Value("string") for k in ("instruction", "response", "instruction_source", "id")})


def _check_subsets(subsets) -> list[str] | None:
    if subsets is None:
        return None
    subsets = list(subsets)
    unknown = [s for s in subsets if s not in TRAINING_SUBSETS]
    if unknown:
        raise UserError(f"data.subsets has unknown value(s) {unknown}; known: {', '.join(TRAINING_SUBSETS)}")
    return subsets


def _fields(fields: dict | None) -> Fields:
    return typed(fields or {}, Fields, "data.reader.fields")


def _records(path: str, fields: dict, subsets: list[str] | None, limit: int | None, stamp: str):
    # `fields` and `stamp` (size and mtime) are part of the datasets cache fingerprint, so a changed mapping or an
    # edited file is read again instead of served stale from the cache
    mapping = Fields(**fields)
    n = 0
    for where, row in iter_rows(path):
        rec = to_record(row, where, mapping)
        if subsets is not None and rec["instruction_source"] not in subsets:
            continue
        yield rec
        n += 1
        if limit is not None and n >= limit:
            return


class LocalFile:
    def __init__(self, path: str, subsets=None, limit: int | None = None, fields: dict | None = None):
        self.path = Path(path).expanduser().resolve()
        self.subsets = _check_subsets(subsets)
        self.limit = limit
        self.fields = _fields(fields)

    def load(self):
        if not self.path.is_file():
            what = "is a folder, not a data file" if self.path.is_dir() else "does not exist"
            raise UserError(f"data file {self.path} {what} (data.path): give a .jsonl, .json or .parquet file")
        st = self.path.stat()
        kwargs = dict(path=str(self.path), fields=asdict(self.fields), subsets=self.subsets, limit=self.limit,
                      stamp=f"{st.st_size}-{st.st_mtime_ns}")
        # the first record read here: a bad one is named by file and line, not by a datasets worker
        if next(_records(**kwargs), None) is None:  # datasets cannot build an empty dataset: say so first
            kept = f" of the subsets {self.subsets} (data.subsets)" if self.subsets else ""
            raise UserError(f"{self.path} holds no records{kept}: give a file with records (data.path)")
        try:
            return Dataset.from_generator(_records, gen_kwargs=kwargs, features=RECORD)
        except DatasetGenerationError as e:  # datasets wraps what the generator raised
            if isinstance(e.__cause__, UserError):
                raise e.__cause__ from None
            raise


def _to_records(rows: dict, indices: list[int], name: str, fields: dict) -> dict:
    mapping = Fields(**fields)
    recs = [to_record(dict(zip(rows, values)), f"{name} row {i + 1}", mapping)
            for i, *values in zip(indices, *rows.values())]
    return {k: [r[k] for r in recs] for k in RECORD}


class HubDataset:
    def __init__(self, name: str, split: str = "train", subsets=None, limit=None, fields: dict | None = None):
        self.name, self.split = name, split
        self.subsets = _check_subsets(subsets)
        self.limit = limit
        self.fields = _fields(fields)

    def load(self):
        try:
            ds = load_dataset(self.name, split=self.split)
        except Exception as e:  # the Hub raises many types (ConnectionError, OfflineModeIsEnabled, ...)
            raise UserError(
                f"could not load the dataset '{self.name}' from the Hugging Face Hub ({type(e).__name__}): "
                "download it once where the Hub is reachable (the datasets cache then serves it offline), "
                "or export it to JSONL and use data=jsonl data.path=<file>"
            ) from None
        if self.subsets is None and self.limit is not None:  # the first rows are the records: map only them
            ds = ds.select(range(min(self.limit, len(ds))))
        ds = ds.map(_to_records, batched=True, with_indices=True, remove_columns=ds.column_names, features=RECORD,
                    fn_kwargs=dict(name=self.name, fields=asdict(self.fields)), desc="records")
        if self.subsets is not None:
            keep = set(self.subsets)
            ds = ds.filter(lambda s: s in keep, input_columns="instruction_source")
        if len(ds) == 0:
            kept = f" of the subsets {self.subsets} (data.subsets)" if self.subsets else ""
            raise UserError(f"dataset '{self.name}' holds no records{kept}")
        if self.limit is not None:
            ds = ds.select(range(min(self.limit, len(ds))))
        return ds
