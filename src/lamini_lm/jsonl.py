"""Reading JSONL that users write by hand or by script: every bad line is named by file and line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from lamini_lm.errors import UserError


def iter_jsonl(path: str | Path) -> Iterator[tuple[str, object]]:
    """``('file:line', parsed object)`` for each non-blank line; bad UTF-8 or JSON is a UserError."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path} does not exist")
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            where = f"{path}:{lineno}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise UserError(f"{where}: not valid UTF-8 ({e.reason} at byte {e.start})") from None
            if not line.strip():
                continue
            try:
                yield where, json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(f"{where}: broken JSON ({e.msg} at column {e.colno})") from None
