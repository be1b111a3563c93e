"""OmegaConf resolvers shared by every entry point (registered on import)."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_DIR.parents[1]  # src/lamini_lm -> repo root (the package is installed editable)

for _name, _fn in {
    "project_root": lambda: str(PROJECT_ROOT),
    "package_dir": lambda: str(PACKAGE_DIR),
}.items():
    if not OmegaConf.has_resolver(_name):
        OmegaConf.register_new_resolver(_name, _fn)
