"""The run report (<out_dir>/report.json): counts by stage, drops by reason, tokens, cost."""

from __future__ import annotations

import json
import os
from pathlib import Path


def write_atomic(path: Path, text: str) -> None:
    """Write a whole file so that a kill leaves either the old or the new version, never half."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def update(out_dir: Path, section: str, data: dict) -> None:
    path = Path(out_dir) / "report.json"
    report = json.loads(path.read_text()) if path.exists() else {}
    report[section] = data
    write_atomic(path, json.dumps(report, indent=2, ensure_ascii=False) + "\n")
