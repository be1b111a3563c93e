"""The dataset record that crosses stage boundaries (generate.py writes it, train.py reads it).

One JSON object per line: ``instruction``, ``response``, ``instruction_source`` (one of the released
MBZUAI/LaMini-instruction dataset's seven values), optional ``id`` and ``meta``. The released dataset's
rows are valid records. Readers name the file, line and field of any bad record.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq

from lamini_lm.errors import UserError
from lamini_lm.jsonl import iter_jsonl

# The paper's subsets (Table 1) as the released dataset names them.
SOURCES: dict[str, str] = {
    "self_instruct_without_topic": "D_SI (generated, example-guided from self-instruct)",
    "self_instruct_with_topic": "D_t,SI (generated, topic-guided from self-instruct)",
    "generated_p3": "D^_P3 (generated from P3 examples)",
    "generated_flan": "D^_FLAN (generated from FLAN examples)",
    "alpaca": "D_A (Alpaca's instructions)",
    "original_p3": "D_P3 (P3 prompts)",
    "original_flan": "D_FLAN (FLAN prompts)",
}
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
    if rec["instruction_source"] not in SOURCES:
        raise UserError(
            f"{where}: field 'instruction_source' is '{rec['instruction_source']}', "
            f"expected one of {', '.join(SOURCES)}"
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
        for batch in pq.ParquetFile(path).iter_batches():
            for rec in batch.to_pylist():
                row += 1
                yield validate(rec, f"{path} row {row}")
    else:
        yield from read_jsonl(path)
