"""OmegaConf resolvers shared by every entry point (registered on import)."""

from __future__ import annotations

import netrc
import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

PACKAGE_DIR = Path(__file__).resolve().parent
CONF_MODULE = "lamini_lm.conf"  # the repository's conf/, mapped into the package (pyproject.toml)


def conf_dir() -> Path:
    """The config folder: the checkout's conf/ under an editable install, the package's copy otherwise."""
    from importlib.resources import files

    return Path(str(files(CONF_MODULE)))


def _asset(name: str) -> str:
    from lamini_lm import assets

    return str(assets.path(name))


def wandb_mode() -> str:
    """The one W&B rule of all three stages (each config's ``wandb.mode`` defaults to it): WANDB_MODE when set,
    else online with a W&B login (WANDB_API_KEY or a ~/.netrc entry), else offline (``wandb sync`` uploads later)."""
    mode = os.environ.get("WANDB_MODE", "")
    if mode:
        return "offline" if mode == "dryrun" else mode
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    try:
        return "offline" if netrc.netrc().authenticators("api.wandb.ai") is None else "online"
    except (FileNotFoundError, netrc.NetrcParseError):
        return "offline"


def compose(config_name: str, overrides=(), return_hydra_config: bool = False) -> DictConfig:
    """A config composed as an entry point would (train, generate, evaluate), outside a Hydra app: tests,
    tools, the tiny exports."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    with initialize_config_module(CONF_MODULE, version_base="1.3"):
        return hydra_compose(config_name, overrides=list(overrides), return_hydra_config=return_hydra_config)


for _name, _fn in {
    "conf_dir": lambda: str(conf_dir()),
    "package_dir": lambda: str(PACKAGE_DIR),
    "asset": _asset,
    "wandb_mode": wandb_mode,
}.items():
    if not OmegaConf.has_resolver(_name):
        OmegaConf.register_new_resolver(_name, _fn)
