"""Build what a config group names with `_target_`, its settings checked against the target first.

Every swappable class or function is chosen with `_target_` (Hydra's instantiate), so a class that is
not in this repository is one module plus one config file. A setting the target does not take (a typo),
one it needs that is missing, or a target that cannot be imported is the user's mistake: a UserError
naming the key, never a TypeError deep inside Hydra.
"""

from __future__ import annotations

import inspect

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from lamini_lm.errors import UserError

_NAMED = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def build(cfg: DictConfig | dict, where: str, base: type | None = None, **runtime):
    """`cfg._target_` called with cfg's settings (plain dicts and lists) and the caller's `runtime` objects.

    `runtime` names what the program passes in (e.g. the price table); the config cannot set those.
    `where`: the key `cfg` sits at, for messages (not `group`: W&B's logger takes a `group` among `runtime`).
    `base`: the class the target must subclass (the contract its callers rely on).
    """
    if isinstance(cfg, dict):  # a node of a typed config (lamini_lm.config.typed) is a plain dict
        cfg = OmegaConf.create(cfg)
    if not isinstance(cfg, DictConfig) or "_target_" not in cfg:
        renamed = f" ({where}.kind is now {where}._target_: see the Changelog in README.md)" if "kind" in cfg else ""
        raise UserError(f"{where} has no _target_: set {where}._target_=<module>.<class or function>{renamed}")
    target = cfg._target_
    missing = sorted(k.removeprefix(f"{where}.") for k in OmegaConf.missing_keys(cfg))  # ???: keys from the root
    if missing:
        raise UserError(f"{where}.{missing[0]} must be set ({where}.{missing[0]}=...)")
    try:
        # resolved by Hydra (its import rules), not called yet: the settings are checked first
        bound = instantiate(cfg, _partial_=True, _convert_="all")
    except InstantiationException as e:
        why = " ".join(str(e.__cause__ or e).split())  # Hydra's import errors span lines
        raise UserError(f"{where}._target_={target} cannot be imported ({why})") from None
    fn, settings = bound.func, bound.keywords
    if base is not None and not (isinstance(fn, type) and issubclass(fn, base)):
        raise UserError(f"{where}._target_={target} is not a subclass of {base.__module__}.{base.__qualname__}")
    params = inspect.signature(fn).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        known = [n for n, p in params.items() if p.kind in _NAMED and n not in runtime]
        for key in settings:
            if key not in known:
                raise UserError(f"{where}.{key} is not a setting of {target}; its settings: {', '.join(known)}")
    for name, p in params.items():
        if p.kind in _NAMED and p.default is inspect.Parameter.empty and name not in settings and name not in runtime:
            raise UserError(f"{where}.{name} is missing: {target} needs it ({where}.{name}=...)")
    return bound(**runtime)
