"""The --help page of train.py, generate.py, evaluate.py and the planner, in place of Hydra's generic one (a dump of
the config without its comments, internal groups listed): what the command is for and how it is called, both from
its module docstring, the config groups a user picks with their choices as the conf/ tree holds them now,
generate.py's stages or evaluate.py's modes, how to see the composed config, and where the docs are."""

from __future__ import annotations

import importlib
import textwrap

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from lamini_lm import config

# keys whose values are checked by a stage's schema rather than chosen from a config group: the values are read
# from the module that checks them (config name: heading, key, module, its tuple of values)
VALUES = {"generate": ("Stages", "stage", "lamini_lm.distill.spec", "STAGES"),
          "evaluate": ("Modes", "mode", "lamini_lm.evaluation.spec", "MODES")}
WIDTH = 110


def page(config_name: str, doc: str, command: str, app: bool = True) -> str:
    """The page for ``command`` composing ``config_name``; ``doc``: its module docstring (the first paragraph says
    what it is for, its indented ``python ...`` lines are the examples). ``app``: a Hydra app (train.py, generate.py,
    evaluate.py), which takes -m, --cfg and a launcher; the planner only composes."""
    with initialize_config_dir(str(config.conf_dir()), version_base="1.3"):
        cfg = compose(config_name, return_hydra_config=True)
        options = GlobalHydra.instance().config_loader().get_group_options
        defaults = dict(cfg.hydra.runtime.choices)
        groups = {g: [o for o in options(g) if not o.startswith("_")] for g in _groups(defaults, app)}
    examples = [line.strip() for line in doc.splitlines() if line.strip().startswith("python ")]
    flags = "[-m] [--cfg job] " if app else ""
    lines = [doc.strip().split("\n\n")[0].strip(), "", f"Usage: {command} {flags}[group=choice ...] [key=value ...]",
             "", "Examples:", *[f"  {e}" for e in examples], "", "Config groups (group=choice; * the default):"]
    width = max(map(len, groups)) + 2
    for group, choices in groups.items():
        marked = ", ".join(f"{c}*" if c == defaults[group] else c for c in choices)
        lines += textwrap.wrap(marked, WIDTH, initial_indent=f"  {group:<{width}}", subsequent_indent=" " * (width + 2),
                               break_on_hyphens=False)
    if config_name in VALUES:
        heading, key, module, name = VALUES[config_name]
        values = getattr(importlib.import_module(module), name)
        lines += ["", f"{heading} ({key}=value; * the default): "
                  + ", ".join(f"{v}*" if v == cfg[key] else v for v in values)]
    # the planner reads train.py's config: each entry point's script is named after its config (train.py: train)
    lines += ["", f"Any other key: key=value. Every key, with the overrides applied: "
                  f"python {config_name}.py --cfg job [overrides]"]
    if app:
        lines += [f"Sweeps: -m with comma-separated values (seed=1,2). Hydra's own flags: {command} --hydra-help"]
    return "\n".join([*lines, "Docs: README.md and docs/ (start at docs/index.md)"])


def _groups(defaults: dict, app: bool) -> list[str]:
    """The groups this config's defaults pick from, less the bases other configs build on (a `base` folder) and
    Hydra's own groups, of which a user picks only the launcher (in a Hydra app)."""
    ours = sorted(g for g in defaults if g.split("/")[0] != "hydra" and "base" not in g.split("/"))
    return ours + (["hydra/launcher"] if app else [])
