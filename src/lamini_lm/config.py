"""What every stage shares about configs: the resolvers (registered on import), the one W&B rule, composing
the package's configs outside an app, and `typed`, the one check of a config against its dataclass schema."""

from __future__ import annotations

import dataclasses
import netrc
import os
import re
import sys
from collections.abc import Collection
from pathlib import Path
from typing import TypeVar

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from omegaconf import Container, DictConfig, OmegaConf
from omegaconf.errors import (
    ConfigKeyError,
    InterpolationToMissingValueError,
    MissingMandatoryValue,
    OmegaConfBaseException,
)

from lamini_lm import assets
from lamini_lm.errors import UserError

T = TypeVar("T")

PACKAGE_DIR = Path(__file__).resolve().parent


def conf_dir() -> Path:
    """The one config tree, the one beside the lamini_lm that Python imports: its checkout's conf/ when that is
    imported from a checkout's src/ (an editable install, or PYTHONPATH), else the package's copy (lamini_lm/conf,
    mapped in by pyproject.toml). The entry points (entry_configs), compose, --help and the conf_dir resolver all
    read this one, so code and configs come from one place."""
    checkout = PACKAGE_DIR.parent.parent / "conf"
    if PACKAGE_DIR.parent.name == "src" and (checkout / "__init__.py").is_file():
        return checkout
    return PACKAGE_DIR / "conf"


def entry_configs(script: str) -> str:
    """The config_path of an entry point (train.py, generate.py, evaluate.py): the imported lamini_lm's configs. A
    script whose own checkout has a conf/ that differs from them (its checkout run with another checkout's
    lamini_lm installed) stops with one line, exit 2, rather than mix the two."""
    script = Path(script).resolve()
    own, used = script.parent / "conf", conf_dir().resolve()
    if own.is_dir() and own.resolve() != used:
        mine, theirs = _config_files(own), _config_files(used)
        differ = sorted(k for k in mine.keys() | theirs.keys() if mine.get(k) != theirs.get(k))
        if differ:
            shown = ", ".join(differ[:3]) + (f" and {len(differ) - 3} more" if len(differ) > 3 else "")
            print(f"error: {own} differs from the configs of the lamini_lm this Python imports, {used} ({shown}), "
                  f"which {script.name} reads: run the {script.name} of that checkout, or install this one into this "
                  f"environment (pip install -e {script.parent})", file=sys.stderr)
            raise SystemExit(2)
    return str(conf_dir())


def _config_files(root: Path) -> dict[str, bytes]:
    # what a package install carries of conf/ (pyproject.toml package-data): the YAML files and prompt templates
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.suffix in (".yaml", ".txt")}


def _asset(name: str) -> str:
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


class BadValue(ValueError):
    """What a schema's own check (__post_init__) raises about one of its keys: typed() names that key in full
    (``instructions.overgenerate``), wherever the schema sits in the config."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


def hub_repo(value, key: str = "push_to_hub"):
    """A setting that names a Hub repo to upload to (train's export.push_to_hub, generate's push_to_hub): the repo id,
    or None for no upload (null or false). Typed Any in its schema: a str field would take Hydra's `true` as the repo
    id "True"."""
    if value is None or value is False:
        return None
    if not isinstance(value, str):
        raise BadValue(key, f"{str(value).lower()} is not a Hub repo id: give one (<user>/<name>), or null for no upload")
    return value


WANDB_MODES = ("online", "offline", "disabled")


def check_wandb_mode(mode: str, key: str = "mode") -> None:
    """The W&B mode check of all three stages (the value ``wandb_mode`` gives, or the user's)."""
    if mode not in WANDB_MODES:
        raise BadValue(key, f"'{mode}' is not one of {', '.join(WANDB_MODES)}")


def typed(node: DictConfig | dict, schema: type[T], where: str = "", keys: Collection[str] | None = None) -> T:
    """``node`` checked against the dataclass ``schema`` (types, unknown or missing keys, its __post_init__) and
    returned as an instance of it, every interpolation resolved; any problem is one UserError naming the key.

    ``where``: the node's key in its config, prefixed to every key an error names. ``keys``: the keys of ``node``
    to check (default: all); the others are left out unresolved, so a stage need not resolve a node it never
    reads, such as Hydra's ``paths`` outside a Hydra app."""
    prefix = f"{where}." if where else ""
    merged = None
    try:
        # resolved first: interpolations may point outside the node (optim.lr: ${model.lr})
        values = _resolved(node) if keys is None else {k: _resolved(node[k]) for k in node if k in keys}
        merged = OmegaConf.merge(OmegaConf.structured(schema), values)
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as e:
        key = f"{prefix}{e.full_key}" if getattr(e, "full_key", None) else where or "config"
        if isinstance(e, (MissingMandatoryValue, InterpolationToMissingValueError)):
            # a ??? value, or one an interpolation points at: name the key that needs the value
            found = re.search(r"Missing mandatory value: ?(\S+)", e.msg)
            key = found.group(1) if found and isinstance(e, InterpolationToMissingValueError) else key
            raise UserError(f"{key}: missing a value; set it in the config or on the command line ({key}=...)") \
                from None
        if isinstance(e, ConfigKeyError) and "not in" in e.msg:
            owner = e.object_type if dataclasses.is_dataclass(e.object_type) else schema  # the nested schema
            raise UserError(f"{key}: no such key (a typo? {owner.__name__} has {', '.join(_fields(owner))})") \
                from None
        raise UserError(f"{key}: {e.msg.splitlines()[0]}") from None
    except ValueError as e:  # a schema's own check (__post_init__), maybe of a nested schema
        path, e = _failing(merged, e) if merged is not None else ("", e)
        key = ".".join(k for k in (where, path, getattr(e, "key", "")) if k)
        raise UserError(f"{key}: {e}" if key else str(e)) from None


def _resolved(node):
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, Container) else node


def _failing(node: DictConfig, error: ValueError) -> tuple[str, ValueError]:
    """The path below ``node`` of the deepest nested schema whose own check fails, and its error (``""`` and
    ``error`` when it is ``node``'s own check). Runs only after a failure: it converts the nodes again."""
    for key in node:
        child = node[key]
        if isinstance(child, DictConfig):
            try:
                OmegaConf.to_object(child)
            except ValueError as inner:
                path, inner = _failing(child, inner)
                return (f"{key}.{path}" if path else str(key)), inner
    return "", error


def _fields(schema) -> list[str]:
    return [f.name for f in dataclasses.fields(schema)]


def compose(config_name: str, overrides=(), return_hydra_config: bool = False) -> DictConfig:
    """A config composed as an entry point would (train, generate, evaluate), outside a Hydra app: tests,
    tools, the tiny exports."""
    with initialize_config_dir(str(conf_dir()), version_base="1.3"):
        return hydra_compose(config_name, overrides=list(overrides), return_hydra_config=return_hydra_config)


for _name, _fn in {
    "conf_dir": lambda: str(conf_dir()),
    "package_dir": lambda: str(PACKAGE_DIR),
    "asset": _asset,
    "wandb_mode": wandb_mode,
    "basename": lambda path: Path(str(path)).name,  # a hub id's or folder's last part: Qwen/Qwen2.5-0.5B -> Qwen2.5-0.5B
}.items():
    if not OmegaConf.has_resolver(_name):
        OmegaConf.register_new_resolver(_name, _fn)
