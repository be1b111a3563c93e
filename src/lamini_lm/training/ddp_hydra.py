"""DDP inside a Hydra multirun, done right.

Lightning starts ranks 1..N-1 by re-running ``sys.argv``. Under ``python train.py -m model=a,b`` that
argv still holds the whole sweep: each child runs its own copy of the sweep, writes a second
``multirun/`` folder, and under a sampling sweeper trains with other hyperparameters than rank 0,
silently (lightning-hydra-template #393, Lightning #11300). We relaunch each child as a *single run*
of exactly the current job: its task overrides, ``hydra.run.dir`` = this job's folder, no saved
config. Between sweep jobs, the launching process also drops the previous job's process group and the
DDP environment variables Lightning left behind (otherwise job 2 reuses a dead group, or its ranks
think they were launched externally).
"""

from __future__ import annotations

import os
import sys

import __main__
import lightning.fabric.strategies.launchers.subprocess_script as fabric_launcher
import lightning.pytorch.strategies.launchers.subprocess_script as pl_launcher
import torch.distributed as dist
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import get_original_cwd, to_absolute_path

DDP_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE", "GROUP_RANK", "RANK",
           "PL_GLOBAL_SEED", "PL_SEED_WORKERS")


def child_command(local_rank: int) -> tuple[list[str], str]:
    """Replacement for Lightning's ``_hydra_subprocess_cmd``: this job only, as a single run."""
    hc = HydraConfig.get()
    if __main__.__spec__ is None:
        command = [sys.executable, to_absolute_path(sys.argv[0])]
    else:
        command = [sys.executable, "-m", __main__.__spec__.name]
    command += list(hc.overrides.task)
    command += [f'hydra.run.dir="{hc.runtime.output_dir}"', "hydra.output_subdir=null",
                f"hydra.job.name={hc.job.name}_rank{local_rank}"]
    return command, get_original_cwd()


def prepare_job() -> None:
    """Call at the start of every train job, before building the Trainer."""
    # the name is imported into both modules, so both must be patched
    fabric_launcher._hydra_subprocess_cmd = child_command
    pl_launcher._hydra_subprocess_cmd = child_command

    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        # only the sweep's own process: a child (a single run) must keep its variables, or it would
        # believe it is the launcher and start children of its own
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
        for k in DDP_ENV:
            os.environ.pop(k, None)


def sweep_group() -> str | None:
    """A W&B group shared by the jobs of one sweep (None for a single run)."""
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    hc = HydraConfig.get()
    return f"{hc.job.name}-{os.path.basename(hc.sweep.dir)}"
