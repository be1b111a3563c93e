"""Where training records come from (`data.reader`): a local JSONL/Parquet file, or the released hub dataset.

Each reader returns a `datasets.Dataset` with the columns instruction, response, instruction_source,
backed by the datasets cache, so later tokenisation is cached too.
"""

from __future__ import annotations

from pathlib import Path

from datasets import Dataset, load_dataset
from datasets.exceptions import DatasetGenerationError

from lamini_lm.data.records import read_records
from lamini_lm.errors import UserError
from lamini_lm.subsets import SUBSETS


def _check_subsets(subsets) -> list[str] | None:
    if subsets is None:
        return None
    subsets = list(subsets)
    unknown = [s for s in subsets if s not in SUBSETS]
    if unknown:
        raise UserError(f"data.subsets has unknown value(s) {unknown}; known: {', '.join(SUBSETS)}")
    return subsets


def _records(path: str, subsets: list[str] | None, limit: int | None, stamp: str):
    # `stamp` (size and mtime) is unused here but part of the datasets cache fingerprint, so an edited
    # file is read again instead of served stale from the cache.
    n = 0
    for rec in read_records(path):
        if subsets is not None and rec["instruction_source"] not in subsets:
            continue
        yield {k: rec[k] for k in ("instruction", "response", "instruction_source")}
        n += 1
        if limit is not None and n >= limit:
            return


class LocalFile:
    def __init__(self, path: str, subsets=None, limit: int | None = None):
        self.path = Path(path).expanduser().resolve()
        self.subsets = _check_subsets(subsets)
        self.limit = limit

    def load(self):
        if not self.path.is_file():
            what = "is a folder, not a data file" if self.path.is_dir() else "does not exist"
            raise UserError(f"data file {self.path} {what} (data.path): give a .jsonl or .parquet file")
        st = self.path.stat()
        # validate the whole file first: an error then names file and line, not a datasets worker
        kwargs = dict(path=str(self.path), subsets=self.subsets, limit=self.limit, stamp=f"{st.st_size}-{st.st_mtime_ns}")
        if next(_records(**kwargs), None) is None:  # datasets cannot build an empty dataset: say so first
            kept = f" of the subsets {self.subsets} (data.subsets)" if self.subsets else ""
            raise UserError(f"{self.path} holds no records{kept}: give a file with records (data.path)")
        try:
            return Dataset.from_generator(_records, gen_kwargs=kwargs)
        except DatasetGenerationError as e:  # datasets wraps what the generator raised
            if isinstance(e.__cause__, UserError):
                raise e.__cause__ from None
            raise


class HubDataset:
    def __init__(self, name: str = "MBZUAI/LaMini-instruction", split: str = "train", subsets=None, limit=None):
        self.name, self.split = name, split
        self.subsets = _check_subsets(subsets)
        self.limit = limit

    def load(self):
        try:
            ds = load_dataset(self.name, split=self.split)
        except Exception as e:  # the Hub raises many types (ConnectionError, OfflineModeIsEnabled, ...)
            raise UserError(
                f"could not load the dataset '{self.name}' from the Hugging Face Hub ({type(e).__name__}): "
                "download it once where the Hub is reachable (the datasets cache then serves it offline), "
                "or export it to JSONL and use data=jsonl data.path=<file>"
            ) from None
        missing = {"instruction", "response", "instruction_source"} - set(ds.column_names)
        if missing:
            raise UserError(f"dataset '{self.name}' lacks the field(s) {sorted(missing)}")
        if self.subsets is not None:
            keep = set(self.subsets)
            ds = ds.filter(lambda s: s in keep, input_columns="instruction_source")
        if len(ds) == 0:
            raise UserError(f"dataset '{self.name}' holds no records of the subsets {self.subsets} (data.subsets)")
        if self.limit is not None:
            ds = ds.select(range(min(self.limit, len(ds))))
        return ds
