"""JSONL files: reading what users write (every bad line is named by file and line), and keeping the
append-only logs we write ourselves whole after a kill.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterator
from pathlib import Path

from lamini_lm.errors import UserError


def iter_jsonl(path: str | Path, fix: str = "") -> Iterator[tuple[str, object]]:
    """``('file:line', parsed object)`` for each non-blank line (``.gz`` read through gzip); bad UTF-8 or
    JSON is a UserError, ending with ``fix`` (what to do) when given."""
    for where, _, _, obj in iter_jsonl_spans(path, fix):
        yield where, obj


def iter_jsonl_spans(path: str | Path, fix: str = "") -> Iterator[tuple[str, int, int, object]]:
    """As iter_jsonl, with each line's byte offset and length (in the uncompressed text), for a reader that keeps
    where a line is rather than all of it."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path} does not exist")
    offset = 0
    with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            where, at = f"{path}:{lineno}", offset
            offset += len(raw)
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise UserError(f"{where}: not valid UTF-8 ({e.reason} at byte {e.start}){fix and '; ' + fix}") from None
            if not line.strip():
                continue
            try:
                yield where, at, len(raw), json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(f"{where}: broken JSON ({e.msg} at column {e.colno}){fix and '; ' + fix}") from None


def cut_torn_tail(path: str | Path) -> None:
    """Cut a last line without its newline off a JSONL file we append to, if there is one.

    We write each line whole and flush it, so a process killed mid-write leaves at most that one
    torn line; cut before appending, or the next line would be glued onto it.
    """
    with open(path, "r+b") as f:
        end = pos = f.seek(0, os.SEEK_END)
        keep = 0
        while pos > 0:  # back from the end, a block at a time, to the last newline
            step = min(1 << 16, pos)
            f.seek(pos - step)
            i = f.read(step).rfind(b"\n")
            if i >= 0:
                keep = pos - step + i + 1
                break
            pos -= step
        if keep < end:
            f.truncate(keep)
