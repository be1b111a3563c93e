"""The multi-node recipe, tested by composition: 2 nodes x 8 GPUs on SLURM through Hydra's submitit launcher,
requeued on timeout or preemption and resumed from the job's last.ckpt. Nothing is submitted: the launcher's
own code runs up to the sbatch call, which is replaced by a recorder."""

import pickle
import time
from pathlib import Path

import pytest
from hydra.utils import instantiate

from lamini_lm import config
from lamini_lm.training.checkpoints import resolve as resolve_ckpt_path

# python train.py -m hydra/launcher=submitit_slurm trainer=ddp trainer.num_nodes=2 trainer.devices=8 \
#     model=gpt2_xl experiment=lamini_paper
RECIPE = ["hydra/launcher=submitit_slurm", "trainer=ddp", "trainer.num_nodes=2", "trainer.devices=8",
          "model=gpt2_xl", "experiment=lamini_paper"]


class _Submitted(Exception):
    """Raised by the recorder instead of calling sbatch."""


def _submit(tmp_path, monkeypatch, *extra):
    """Run the SLURM launcher's launch() on the recipe (+ ``extra`` overrides); returns the sbatch file, the
    executor, the pickled job and the composed config."""
    import submitit.slurm.slurm as slurm

    cfg = config.compose("train", [*RECIPE, *extra, f"hydra.sweep.dir={tmp_path}/multirun/train/${{now:%H-%M-%S}}"],
                         return_hydra_config=True)
    seen = {}

    def record(executor, command):
        seen["sbatch"] = executor._make_submission_file_text(command, "uid")
        seen["executor"] = executor
        raise _Submitted

    monkeypatch.setattr(slurm.SlurmExecutor, "affinity", classmethod(lambda cls: 1))  # "srun is here"
    monkeypatch.setattr(slurm.SlurmExecutor, "_submit_command", record)
    launcher = instantiate(cfg.hydra.launcher)
    launcher.setup(hydra_context=None, task_function=None, config=cfg)
    with pytest.raises(_Submitted):
        launcher.launch([["model=gpt2_xl"]], initial_job_idx=0)
    pickles = list(Path(launcher.params["submitit_folder"].replace("%j", "")).parent.rglob("*.pkl"))
    assert len(pickles) == 1, pickles
    return seen["sbatch"], seen["executor"], pickles[0], cfg


def test_the_slurm_recipe_asks_for_two_nodes_of_eight_gpus_one_task_each(tmp_path, monkeypatch):
    sbatch, executor, _, cfg = _submit(tmp_path, monkeypatch)
    launcher = cfg.hydra.launcher
    assert (launcher.nodes, launcher.tasks_per_node, launcher.gpus_per_node) == (2, 8, 8)
    assert cfg.trainer.strategy.process_group_backend == "nccl" and cfg.trainer.precision == "bf16-mixed"
    flags = {line for line in sbatch.splitlines() if line.startswith("#SBATCH")}
    # one task per GPU: Lightning's SLURMEnvironment takes its ranks from srun and starts no processes itself
    for flag in ("--nodes=2", "--ntasks-per-node=8", "--gpus-per-node=8", "--cpus-per-task=8",
                 f"--time={launcher.timeout_min}", f"--signal=USR2@{launcher.signal_delay_s}",
                 "--open-mode=append"):  # a requeued job appends to its logs
        assert f"#SBATCH {flag}" in flags, sbatch
    assert "srun --unbuffered" in sbatch and "-m submitit.core._submit" in sbatch
    assert executor.max_num_timeout == launcher.max_num_timeout == 3  # requeued up to 3 times after a timeout
    assert "#SBATCH --requeue" not in flags


def test_a_cluster_that_does_not_requeue_is_asked_to_as_the_docs_say(tmp_path, monkeypatch):
    # docs/herd.md: any sbatch option is one more key of the launcher's open additional_parameters
    sbatch, *_ = _submit(tmp_path, monkeypatch, "+hydra.launcher.additional_parameters.requeue=true")
    assert "#SBATCH --requeue" in sbatch.splitlines(), sbatch


def test_a_requeued_job_runs_again_in_its_own_folder_and_resumes_from_last_ckpt(tmp_path, monkeypatch):
    sbatch, _, pickled, cfg = _submit(tmp_path, monkeypatch)
    time.sleep(1.1)  # the sweep folder's name has a time stamp: a requeue must not get a new one
    with open(pickled, "rb") as f:
        job = pickle.load(f)  # what submitit runs on the nodes, and runs again after a requeue
    launcher, (overrides, dir_key, job_num, *_) = job.function, job.args
    assert overrides == ["model=gpt2_xl"] and dir_key == "hydra.sweep.dir"
    # on the timeout/preemption signal submitit asks the callable for its checkpoint: the launcher resubmits
    # itself with the same arguments, so the requeued job is the same job, in the same folder
    again = launcher.checkpoint(*job.args)
    assert again.function is launcher and again.args == job.args
    sweep_dir = Path(str(launcher.config.hydra.sweep.dir))
    assert sweep_dir == Path(str(cfg.hydra.sweep.dir)) and sweep_dir.parent == tmp_path / "multirun/train"
    run_dir = sweep_dir / str(job_num)  # hydra.sweep.subdir: ${hydra.job.num}
    assert cfg.ckpt_path == "auto" and resolve_ckpt_path(cfg.ckpt_path, run_dir) is None  # first start: fresh
    last = run_dir / "checkpoints" / "last.ckpt"
    last.parent.mkdir(parents=True)
    import torch

    torch.save({"state_dict": {}, "global_step": 100}, last)  # the last-checkpoint callback's, every 100 steps
    assert resolve_ckpt_path(cfg.ckpt_path, run_dir) == str(last)
    assert cfg.callbacks.last_checkpoint.every_n_train_steps == 100
