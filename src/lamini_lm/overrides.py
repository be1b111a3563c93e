"""The command line's overrides checked before Hydra runs anything: a misspelt key, an unknown config choice or
broken override syntax gets our one line and exit 2 (Hydra itself prints several lines and exits 1, as it does
for a crash). Every job of a sweep is checked, so a bad value in `-m model=a,b,typo` stops the sweep before its
first job trains."""

from __future__ import annotations

import sys

# Hydra's own command-line parser and sweep expansion (internal modules of the pinned hydra-core 1.3.8), so the
# check reads the command line exactly as Hydra will
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra._internal.utils import get_args_parser
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, MissingConfigException
from omegaconf.errors import OmegaConfBaseException

from lamini_lm import config
from lamini_lm.errors import UserError, exit_on_user_error


@exit_on_user_error
def check_overrides(config_name: str, argv: list[str] | None = None) -> None:
    parser = get_args_parser()
    parser.error = _refuse  # argparse's own prints its usage block: one line instead
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.help or args.hydra_help or args.info or args.shell_completion or args.config_path or args.config_dir:
        return  # Hydra's own modes, or a config from elsewhere: Hydra answers them
    try:
        parsed = OverridesParser.create().parse_overrides(args.overrides)
    except HydraException as e:
        raise UserError(_one_line(e))
    sweeps = [o for o in parsed if o.is_sweep_override()]
    if sweeps and not args.multirun:
        raise UserError(f"{sweeps[0].input_line} lists several values: add -m (--multirun) to sweep them")
    for job in _jobs(parsed):
        try:
            config.compose(args.config_name or config_name, job, return_hydra_config=True)
        except (HydraException, OmegaConfBaseException, ValueError) as e:  # ValueError: Hydra's `group=null`
            options = getattr(e, "options", None) if isinstance(e, MissingConfigException) else None
            hint = f"; choose one of: {', '.join(o for o in options if not o.startswith('_'))}" if options else ""
            if isinstance(e, ValueError):  # Hydra names neither the group nor the fix
                hint = f" ({', '.join(o for o in job if o.endswith('=null'))}): a config group takes a config's name"
            raise UserError(f"{_one_line(e)}{hint}")


def _refuse(message: str):
    raise UserError(f"{message}: flags such as -m go before the overrides (python train.py -m seed=1,2)")


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
