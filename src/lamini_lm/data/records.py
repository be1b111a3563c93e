"""The dataset record that crosses stage boundaries (generate.py writes it, train.py and the analysis read it).

One JSON object per line: ``instruction``, ``response``, ``instruction_source`` (one of the released
MBZUAI/LaMini-instruction dataset's seven values, lamini_lm.subsets), optional ``id`` and ``meta``. The released dataset's
rows are valid records. Readers name the file, line and field of any bad record. train.py also reads a user's own
records, mapped onto these fields (lamini_lm.data.fields).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from lamini_lm.errors import UserError
from lamini_lm.rows import iter_rows
from lamini_lm.subsets import SUBSETS

REQUIRED_FIELDS = ("instruction", "response", "instruction_source")


def check_source(source: str, where: str, field: str = "instruction_source", fix: str = "") -> str:
    """``source`` if it is one of the seven subsets' names, else a UserError ending with ``fix`` when given."""
    if source not in SUBSETS:
        raise UserError(
            f"{where}: field '{field}' is '{source}', expected one of {', '.join(SUBSETS)}{fix and '; ' + fix}")
    return source


def validate(rec: object, where: str) -> dict:
    """Check one record; ``where`` is 'file:line' for the error message."""
    if not isinstance(rec, dict):
        raise UserError(f"{where}: expected a JSON object, got {type(rec).__name__}")
    for f in REQUIRED_FIELDS:
        if f not in rec:
            raise UserError(f"{where}: missing field '{f}' (a record needs {', '.join(REQUIRED_FIELDS)})")
        if not isinstance(rec[f], str):
            raise UserError(f"{where}: field '{f}' must be a string, got {type(rec[f]).__name__}")
    check_source(rec["instruction_source"], where)
    return rec


def read_records(path: str | Path) -> Iterator[dict]:
    """Validated records from a JSONL, JSON or Parquet file (lamini_lm.rows)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"data file {path} does not exist")
    for where, rec in iter_rows(path):
        yield validate(rec, where)
