"""OmegaConf resolvers shared by every entry point (registered on import)."""

from __future__ import annotations

import netrc
import os
from pathlib import Path

from omegaconf import OmegaConf

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_DIR.parents[1]  # src/lamini_lm -> repo root (the package is installed editable)


def _asset(name: str) -> str:
    from lamini_lm import assets

    return str(assets.path(name))


def wandb_offline() -> bool:
    """Offline unless the user asked for online W&B or has a W&B login (API key or ~/.netrc entry)."""
    mode = os.environ.get("WANDB_MODE", "")
    if mode in ("offline", "disabled", "dryrun"):
        return True
    if mode == "online" or os.environ.get("WANDB_API_KEY"):
        return False
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is None
    except (FileNotFoundError, netrc.NetrcParseError):
        return True


for _name, _fn in {
    "project_root": lambda: str(PROJECT_ROOT),
    "package_dir": lambda: str(PACKAGE_DIR),
    "asset": _asset,
    "wandb_offline": wandb_offline,
}.items():
    if not OmegaConf.has_resolver(_name):
        OmegaConf.register_new_resolver(_name, _fn)
