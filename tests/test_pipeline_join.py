"""The stages fit together: generate.py's D_ALL trains with train.py as it is."""

import json

import pytest

from tests.helpers.generate_kit import run, tiny
from tests.helpers.run import run_entry


@pytest.mark.slow
def test_generated_d_all_trains_directly(server, api_key, tmp_path):
    out = tmp_path / "gen"
    records = run(tiny(out, server.base_url))
    assert len(records) == 18
    res = run_entry("train.py", "model=tiny_gpt2", "data=jsonl", f"data.path={out / 'd_all.jsonl'}", "data.val_size=2",
                    "global_batch_size=16", "micro_batch_size=8", "trainer.max_epochs=1", "logger=csv",
                    "callbacks.sample_generations.num_samples=1", "callbacks.sample_generations.max_new_tokens=4",
                    f"hydra.run.dir={tmp_path / 'train'}")
    assert res.returncode == 0, res.stderr[-3000:]
    metrics = json.loads((tmp_path / "train" / "metrics.json").read_text())
    assert metrics["global_step"] == 1 and (tmp_path / "train" / "hf" / "model.safetensors").exists()
