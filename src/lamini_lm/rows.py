"""The rows of a user's local data file, whatever its format: JSONL, JSON, Parquet. One reader for train.py's data,
the analysis input and generate.py's seed pools, so every format is accepted, and every bad row named, alike.

Each row comes with where it is, for messages: ``file:line`` (JSONL, JSON) or ``file row N`` (Parquet). A ``.json``
file holds one JSON list of objects (Alpaca's alpaca_data.json; a row is named by the line its object starts on),
or JSON lines; a ``.parquet`` file is Parquet; any other file is JSON lines (``.gz`` read through gzip).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

from lamini_lm.errors import UserError
from lamini_lm.jsonl import iter_jsonl

_SPACE = re.compile(r"[ \t\n\r]*")  # what JSON allows between values


def iter_rows(path: str | Path) -> Iterator[tuple[str, object]]:
    """``(where, row)`` for each row of the file at ``path``; unreadable bytes or JSON are one UserError naming the
    file and line (Parquet: the file)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path} does not exist")
    if path.suffix == ".parquet":
        return _parquet_rows(path)
    if path.suffix == ".json":
        return _json_rows(path)
    return iter_jsonl(path)


def _parquet_rows(path: Path) -> Iterator[tuple[str, object]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as e:  # pyarrow's ArrowInvalid for a file that is not Parquet
        raise UserError(f"{path} is not a readable Parquet file ({' '.join(str(e).split())})") from None
    row = 0
    for batch in parquet.iter_batches():
        for rec in batch.to_pylist():
            row += 1
            yield f"{path} row {row}", rec


def _json_rows(path: Path) -> Iterator[tuple[str, object]]:
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise UserError(f"{path}:{line}: not valid UTF-8 ({e.reason} at byte {e.start})") from None
    pos = _SPACE.match(text).end()
    if not text.startswith("[", pos):  # a .json file written as JSON lines
        yield from iter_jsonl(path)
        return
    try:  # the whole list first: the decoder names the line and column of any break in it
        json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"{path}:{e.lineno}: broken JSON ({e.msg} at column {e.colno})") from None
    # then item by item, to name each by the line it starts on (the list is known to be well formed)
    decoder, line, done = json.JSONDecoder(), 1, 0
    pos = _SPACE.match(text, pos + 1).end()
    while not text.startswith("]", pos):
        line += text.count("\n", done, pos)
        row, end = decoder.raw_decode(text, pos)
        yield f"{path}:{line}", row
        done = pos
        pos = _SPACE.match(text, end).end()
        if text.startswith(",", pos):
            pos = _SPACE.match(text, pos + 1).end()
