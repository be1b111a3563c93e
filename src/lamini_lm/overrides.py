"""The command line's overrides checked before Hydra runs anything: a misspelt key, an unknown config choice or
broken override syntax gets our one line and exit 2 (Hydra itself prints several lines and exits 1, as it does
for a crash). Every job of a sweep is checked, so a bad value in `-m model=a,b,typo` stops the sweep before its
first job trains. A misspelt key or choice is answered with the closest real ones (Hydra would advise adding the
key with `+`, wrong for a typo), and --help with the entry point's own page (lamini_lm.cli_help)."""

from __future__ import annotations

import difflib
import re
import sys
from pathlib import Path

# Hydra's own command-line parser and sweep expansion (internal modules of the pinned hydra-core 1.3.8), so the
# check reads the command line exactly as Hydra will
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra._internal.utils import get_args_parser
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import ConfigCompositionException, HydraException, MissingConfigException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from lamini_lm import cli_help, config
from lamini_lm.errors import UserError, exit_on_user_error
from lamini_lm.secret_keys import refuse_secret_values


@exit_on_user_error
def check_overrides(config_name: str, argv: list[str] | None = None, doc: str = "", command: str | None = None,
                    app: bool = True) -> list[list[str]]:
    """``doc``: the entry point's module docstring, for its --help page; ``command``: how it is run (default
    ``python <script>``). ``app``: a Hydra app; the planner (False) plans every job of a sweep without -m.
    Returns the overrides of the jobs it composed (none for Hydra's own modes)."""
    parser = get_args_parser()
    parser.error = _refuse  # argparse's own prints its usage block: one line instead
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.help:
        print(cli_help.page(config_name, doc, command or f"python {Path(sys.argv[0]).name}", app))
        sys.exit(0)
    if args.hydra_help or args.info or args.shell_completion or args.config_path or args.config_dir:
        return []  # Hydra's own modes, or a config from elsewhere: Hydra answers them
    try:
        parsed = OverridesParser.create().parse_overrides(args.overrides)
    except HydraException as e:
        raise UserError(_one_line(e))
    sweeps = [o for o in parsed if o.is_sweep_override()]
    if sweeps and app and not args.multirun:
        raise UserError(f"{sweeps[0].input_line} lists several values: add -m (--multirun) to sweep them")
    swept = config_sweep(args.config_name or config_name, parsed)
    if swept and app and not args.multirun:
        raise UserError(f"the config sweeps {', '.join(o.input_line for o in swept)} (hydra.sweeper.params, e.g. "
                        "experiment=lamini_herd): add -m (--multirun) to run the sweep, or give one value on the "
                        "command line")
    jobs = _jobs(swept + parsed)
    for job in jobs:
        try:
            cfg = config.compose(args.config_name or config_name, job, return_hydra_config=True)
        except (HydraException, OmegaConfBaseException, ValueError) as e:  # ValueError: Hydra's `group=null`
            raise UserError(_explain(e, args.config_name or config_name, job)) from None
        # a secret written into a config file of the user's: refused before Hydra saves the config (unresolved, as
        # here) into .hydra/; the command line's own were refused before this check (refuse_secret_overrides)
        refuse_secret_values({k: v for k, v in OmegaConf.to_container(cfg, resolve=False).items() if k != "hydra"})
    return jobs


# Hydra's words for a key that is neither in the config nor a group of its defaults list (`key=`, `group=`, `~key`)
_MISSING = re.compile(r"(?:In '[^']*': )?Could not override '([^']+)'"
                      r"|Could not delete from config\. '([^']+)' does not")


def _explain(e: Exception, config_name: str, job: list[str]) -> str:
    """Why ``job`` does not compose, on one line, with what to do."""
    missing = _MISSING.match(str(e)) if isinstance(e, ConfigCompositionException) else None
    if missing:
        return _no_such_key(missing.group(1) or missing.group(2), config_name, job)
    if isinstance(e, MissingConfigException) and getattr(e, "options", None):
        options = [o for o in e.options if not o.startswith("_")]
        near = difflib.get_close_matches(e.missing_cfg_file.rsplit("/", 1)[-1], options, n=1)
        guess = f"; did you mean {near[0]}? Else choose one of: " if near else "; choose one of: "
        return f"{_one_line(e)}{guess}{', '.join(options)}"
    if isinstance(e, ValueError):  # Hydra names neither the group nor the fix
        nulls = ", ".join(o for o in job if o.endswith("=null"))
        return f"{_one_line(e)} ({nulls}): a config group takes a config's name"
    return _one_line(e)


def _no_such_key(key: str, config_name: str, job: list[str]) -> str:
    """A key the config lacks, with up to 3 real keys (full dotted names, or config groups) close to it, read from
    the config the other overrides compose (data=jsonl brings data.path)."""
    rest = [o.input_line for o in OverridesParser.create().parse_overrides(job) if o.key_or_group != key]
    try:
        cfg = config.compose(config_name, rest, return_hydra_config=True)
    except (HydraException, OmegaConfBaseException, ValueError):  # a second mistake: the keys of the defaults
        cfg = config.compose(config_name, return_hydra_config=True)
    keys = [*_keys(OmegaConf.to_container(cfg, resolve=False)), *cfg.hydra.runtime.choices]
    if key in keys:  # the key is real, but its value adds keys to a dict whose keys are fixed: `+` adds them
        given = next(o for o in OverridesParser.create().parse_overrides(job) if o.key_or_group == key)
        value = given.value()
        adds = [f"+{key}.{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in value.items()] \
            if isinstance(value, dict) else []
        return (f"{key} holds no key {', '.join(value)}: add {'each' if len(adds) > 1 else 'it'} with "
                f"{' '.join(adds)}" if adds else f"{key}: {given.input_line} does not fit it")
    # difflib's default cutoff (0.6) also offers unrelated siblings: trainer.num_nodes for trainer.max_epoch
    near = difflib.get_close_matches(key, list(dict.fromkeys(keys)), n=3, cutoff=0.75)
    if not near:
        return f"no such key {key} (--help says how to list every key)"
    return f"no such key {key}; did you mean {' or '.join([', '.join(near[:-1]), near[-1]] if near[1:] else near)}?"


def _keys(node: dict, prefix: str = ""):
    for k, v in node.items():
        yield f"{prefix}{k}"
        if isinstance(v, dict):
            yield from _keys(v, f"{prefix}{k}.")


def _refuse(message: str):
    raise UserError(f"{message}: flags such as -m go before the overrides (python train.py -m seed=1,2)")


def config_sweep(config_name: str, parsed: list) -> list:
    """The sweep a config itself declares (hydra.sweeper.params: experiment=lamini_herd lists the herd), as parsed
    overrides, less the keys the command line gives (Hydra's basic sweeper lets those replace the config's)."""
    try:
        cfg = config.compose(config_name, _jobs(parsed)[0], return_hydra_config=True)
    except (HydraException, OmegaConfBaseException, ValueError):  # the job check that follows names the mistake
        return []
    given = {o.key_or_group for o in parsed}
    params = {k: v for k, v in (cfg.hydra.sweeper.get("params") or {}).items() if k not in given}
    return OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])


def _jobs(parsed) -> list[list[str]]:
    """The overrides of the sweep's first job, then that job with each other value of each swept key: every
    value is composed once (not the whole product: a herd sweep of 15 models x 3 seeds is 17 compositions)."""
    values = [[job[0] for job in BasicSweeper.split_arguments([o], None)[0]] for o in parsed]
    base = [v[0] for v in values]
    return [base] + [base[:i] + [v] + base[i + 1:] for i, vs in enumerate(values) for v in vs[1:]]


def _one_line(e: Exception) -> str:
    """Hydra's message up to its listings (options, search path, full key) and its cause's, on one line."""
    keep = []
    for line in [*str(e).strip().splitlines(), *str(e.__cause__ or "").strip().splitlines()]:
        if line.startswith(("Available options", "Config search path", "    full_key", "    object_type")):
            break
        if line.strip():
            keep.append(line.strip().rstrip("."))
    return "; ".join(keep)
