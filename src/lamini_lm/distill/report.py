"""The run report (<out_dir>/report.json): counts by stage, drops by reason, tokens, cost."""

from __future__ import annotations

import json
from pathlib import Path

from lamini_lm.files import write_atomic


def update(out_dir: Path, section: str, data: dict) -> None:
    path = Path(out_dir) / "report.json"
    report = json.loads(path.read_text()) if path.exists() else {}
    report[section] = data
    write_atomic(path, json.dumps(report, indent=2, ensure_ascii=False) + "\n")
