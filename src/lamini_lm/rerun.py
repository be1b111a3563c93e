"""A run folder knows its own command line: `python train.py hydra.run.dir=<run>` continues a run started with any
overrides (model=..., data.path=..., experiment=...), because the overrides Hydra saved in <run>/.hydra/overrides.yaml
are given again. Those on the command line now come after them and win for the same key, so
`python train.py hydra.run.dir=<run> trainer.max_epochs=10` trains the same run longer; a changed recipe is still
refused by the resume's recipe check (training/recipe.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException

RUN_DIR = "hydra.run.dir"


def with_own_overrides(argv: list[str]) -> list[str]:
    """``argv`` (the arguments after the script) with the saved overrides of the run folder it names put first; a
    sweep (-m), a new folder or a folder without Hydra's record is left as it is."""
    if "-m" in argv or "--multirun" in argv:
        return argv
    runs = [a.split("=", 1)[1].strip("'\"") for a in argv if a.lstrip("+").startswith(RUN_DIR + "=")]
    saved_file = Path(runs[-1]) / ".hydra" / "overrides.yaml" if runs else None
    if saved_file is None or not saved_file.is_file():
        return argv
    saved = yaml.safe_load(saved_file.read_text()) or []
    try:
        given = {_key(a) for a in argv if ("=" in a or a.startswith("~")) and not a.startswith("-")}
        kept = [a for a in saved if _key(a) not in given]
    except HydraException:  # broken syntax: the override check that follows names it
        return argv
    if kept:
        print(f"note: {runs[-1]} was started with {' '.join(kept)}; continuing with them", file=sys.stderr)
    return [*kept, *argv]


def _key(override: str) -> str:
    parsed = OverridesParser.create().parse_overrides([override])[0]
    return parsed.get_key_element().lstrip("+~")
