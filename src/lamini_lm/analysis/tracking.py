"""Log the analysis outputs (tables, figures, the rating page) to one W&B run, then finish it.

``analysis.wandb.mode`` follows the rule of every stage (lamini_lm.config.wandb_mode); offline runs are
uploaded later with ``wandb sync <out_dir>/analysis/wandb/offline-run-*``.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

from lamini_lm.analysis.spec import WandbSpec

log = logging.getLogger(__name__)


def log_outputs(spec: WandbSpec, out_dir: Path, config: dict, files: list[Path], summary: dict) -> str | None:
    """Returns the run's local folder."""
    import wandb

    run = wandb.init(
        project=spec.project, entity=spec.entity, name=spec.name, job_type="analyze", dir=str(out_dir),
        mode=spec.mode, config=config,
    )
    try:
        payload = {}
        for path in files:
            key = path.stem
            if path.suffix == ".csv":
                with open(path, newline="", encoding="utf-8") as f:
                    rows = list(csv.reader(f))
                payload[key] = wandb.Table(columns=rows[0], data=rows[1:])
            elif path.suffix == ".png":
                payload[key] = wandb.Image(str(path))
            elif path.suffix == ".html":
                payload[key] = wandb.Html(path.read_text(encoding="utf-8"))
        run.log(payload)
        run.summary.update(summary)
        return run.dir
    finally:
        run.finish()
