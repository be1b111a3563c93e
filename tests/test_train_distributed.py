"""What stock Lightning + Hydra get silently wrong: DDP inside a multirun (resume from any point of an epoch, after
any signal, is tests/test_train_faults.py's)."""

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
