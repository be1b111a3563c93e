"""The dataset record that crosses stage boundaries (generate.py writes it, train.py reads it).

One JSON object per line: ``instruction``, ``response``, ``instruction_source`` (one of the released
MBZUAI/LaMini-instruction dataset's seven values, lamini_lm.subsets), optional ``id`` and ``meta``. The released dataset's
rows are valid records. Readers name the file, line and field of any bad record.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from lamini_lm.errors import UserError
from lamini_lm.jsonl import iter_jsonl
from lamini_lm.subsets import SUBSETS

REQUIRED_FIELDS = ("instruction", "response", "instruction_source")


def validate(rec: object, where: str) -> dict:
    """Check one record; ``where`` is 'file:line' for the error message."""
    if not isinstance(rec, dict):
        raise UserError(f"{where}: expected a JSON object, got {type(rec).__name__}")
    for f in REQUIRED_FIELDS:
        if f not in rec:
            raise UserError(f"{where}: missing field '{f}' (a record needs {', '.join(REQUIRED_FIELDS)})")
        if not isinstance(rec[f], str):
            raise UserError(f"{where}: field '{f}' must be a string, got {type(rec[f]).__name__}")
    if rec["instruction_source"] not in SUBSETS:
        raise UserError(
            f"{where}: field 'instruction_source' is '{rec['instruction_source']}', "
            f"expected one of {', '.join(SUBSETS)}"
        )
    return rec


def read_jsonl(path: str | Path) -> Iterator[dict]:
    """Stream validated records from a JSONL file (blank lines skipped)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"data file {path} does not exist")
    for where, rec in iter_jsonl(path):
        yield validate(rec, where)


def read_records(path: str | Path) -> Iterator[dict]:
    """Records from JSONL or Parquet; Parquet rows are reported as 'row N'."""
    path = Path(path)
    if path.suffix == ".parquet":
        if not path.exists():
            raise UserError(f"data file {path} does not exist")
        row = 0
        try:
            parquet = pq.ParquetFile(path)
        except (OSError, pa.ArrowException) as e:  # pyarrow's ArrowInvalid for a file that is not Parquet
            raise UserError(f"{path} is not a readable Parquet file ({' '.join(str(e).split())})") from None
        for batch in parquet.iter_batches():
            for rec in batch.to_pylist():
                row += 1
                yield validate(rec, f"{path} row {row}")
    else:
        yield from read_jsonl(path)
