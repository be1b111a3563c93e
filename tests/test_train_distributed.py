"""The two things stock Lightning + Hydra get silently wrong: DDP inside a multirun, and mid-epoch resume."""

import json

import pytest

from tests.helpers.run import run_entry

SMALL = ["data.limit=96", "data.val_size=16", "global_batch_size=16", "micro_batch_size=4", "trainer.max_epochs=1",
         "logger=csv", "callbacks.sample_generations.num_samples=1", "callbacks.sample_generations.max_new_tokens=4"]


@pytest.mark.slow
def test_ddp_sweep_runs_each_job_once_with_both_ranks_on_its_config(tmp_path):
    sweep = tmp_path / "sweep"
    res = run_entry("train.py", "-m", "model=tiny_t5,tiny_gpt2", "trainer=ddp_cpu", *SMALL,
                    f"hydra.sweep.dir={sweep}")
    assert res.returncode == 0, res.stderr[-3000:]
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit())
    assert [j.name for j in jobs] == ["0", "1"]
    assert not (tmp_path / "multirun").exists() and len(list(sweep.rglob("multirun.yaml"))) == 1
    for job, model in zip(jobs, ["tiny_t5", "tiny_gpt2"]):
        ranks = [json.loads((job / "ranks" / f"rank{r}.json").read_text()) for r in (0, 1)]
        assert {r["world_size"] for r in ranks} == {2}
        assert ranks[0]["config_sha256"] == ranks[1]["config_sha256"]
        assert (job / "hf" / "model.safetensors").exists()
        metrics = json.loads((job / "metrics.json").read_text())
        # 16 examples per step = 4 per micro-batch x 2 ranks x 2 accumulation steps
        assert metrics["world_size"] == 2 and metrics["accumulate_grad_batches"] == 2
        assert metrics["global_step"] == 5
        assert (job / ".hydra" / "overrides.yaml").read_text().count(model) == 1
    # both jobs' configs differ, so the per-rank proof is not vacuous
    assert json.loads((jobs[0] / "ranks" / "rank0.json").read_text())["config_sha256"] != \
        json.loads((jobs[1] / "ranks" / "rank0.json").read_text())["config_sha256"]


def _weights(folder):
    from safetensors.torch import load_file

    return load_file(folder / "hf" / "model.safetensors")


@pytest.mark.slow
def test_a_run_killed_mid_epoch_resumes_to_the_same_weights(tmp_path):
    import torch

    # 2 epochs x 5 steps; dropout on (tiny_gpt2 keeps GPT-2's 0.1), so RNG state matters too
    common = ["model=tiny_gpt2", *SMALL, "trainer.max_epochs=2", "callbacks.last_checkpoint.every_n_train_steps=1",
              "callbacks.sample_generations.num_samples=0", "+trainer.deterministic=true"]
    # Bit-identical weights are a property of one machine and one setting: the three runs share this process's
    # kernels (ATEN_CPU_CAPABILITY, MKL_ENABLE_INSTRUCTIONS are inherited), its thread count, set explicitly, and
    # deterministic algorithms (above). Another instruction set or thread count may round differently.
    threads = str(torch.get_num_threads())
    same = {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    res = run_entry("train.py", *common, f"hydra.run.dir={straight}", env=same)
    assert res.returncode == 0, res.stderr[-3000:]

    res = run_entry("train.py", *common, f"hydra.run.dir={killed}", "+callbacks.kill._target_=tests.helpers.kill.KillAtStep",
                    "+callbacks.kill.step=7", env=same)
    assert res.returncode == -9  # SIGKILL in epoch 2, step 7 of 10
    assert (killed / "checkpoints" / "last.ckpt").exists() and not (killed / "hf").exists()

    # the run folder alone resumes it (ckpt_path=auto finds last.ckpt) with the overrides it was started with, less
    # the killer, which ~ removes
    res = run_entry("train.py", f"hydra.run.dir={killed}", "~callbacks.kill", env=same)
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"note: {killed} was started with model=tiny_gpt2 data.limit=96" in res.stderr
    assert json.loads((killed / "metrics.json").read_text())["global_step"] == 10
    a, b = _weights(straight), _weights(killed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
