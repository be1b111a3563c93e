"""train.py as a user runs it: tiny students of both families train, log, checkpoint, export, generate."""

import json

import pytest

from tests.helpers.run import run_entry

SMALL = ["data.limit=96", "data.val_size=16", "global_batch_size=16", "micro_batch_size=8", "trainer.max_epochs=1",
         "callbacks.sample_generations.max_new_tokens=8"]


@pytest.fixture(scope="module")
def gpt2_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpt2")
    res = run_entry("train.py", "model=tiny_gpt2", *SMALL, f"hydra.run.dir={out}")  # sample data and W&B: the defaults
    assert res.returncode == 0, res.stderr[-3000:]
    return out, res


@pytest.fixture(scope="module")
def t5_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("t5")
    res = run_entry("train.py", "model=tiny_t5", "logger=csv", *SMALL, f"hydra.run.dir={out}")
    assert res.returncode == 0, res.stderr[-3000:]
    return out, res


@pytest.mark.slow
def test_default_run_reports_where_everything_went(gpt2_run):
    out, res = gpt2_run
    for what in ("run folder", "checkpoints", "export", "W&B run", "sample generations"):
        assert what in res.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["global_step"] == 5 and metrics["accumulate_grad_batches"] == 2
    assert 0 <= metrics["perf/padding_share"] < 0.5 and metrics["perf/mean_real_tokens_per_s"] > 0
    assert (out / "checkpoints" / "last.ckpt").exists() and list((out / "checkpoints").glob("best-*.ckpt"))
    samples = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 4 and all(s["instruction"] for s in samples)


@pytest.mark.slow
def test_a_cpu_run_keeps_freed_memory_in_the_process(gpt2_run):
    out, _ = gpt2_run  # cpu_memory_cache=true, train.yaml's default, on the CPU trainer
    assert "cpu_memory_cache: memory torch frees stays in this process" in (out / "train.log").read_text()


@pytest.mark.slow
def test_wandb_offline_run_holds_the_config_without_secrets(gpt2_run, monkeypatch):
    out, _ = gpt2_run
    runs = list((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    blob = next(runs[0].glob("run-*.wandb")).read_bytes()
    assert b"global_batch_size" in blob and b"LaMini-tiny-GPT2" in blob and b"samples" in blob


@pytest.mark.slow
def test_checkpoint_carries_the_prompt_style(gpt2_run):
    import torch

    ckpt = torch.load(gpt2_run[0] / "checkpoints" / "last.ckpt", weights_only=False, map_location="cpu")
    assert ckpt["prompt_style"]["name"] == "alpaca" and "### Response:" in ckpt["prompt_style"]["template"]
    assert ckpt["hyper_parameters"]["model"]["name"] == "tiny_gpt2"


@pytest.mark.slow
def test_decoder_only_export_loads_in_pipeline_like_the_model_cards(gpt2_run):
    from transformers import pipeline

    from lamini_lm import prompts

    hf = gpt2_run[0] / "hf"
    assert {"config.json", "model.safetensors", "generation_config.json", "prompt_style.json", "README.md",
            "tokenizer_config.json"} <= {p.name for p in hf.iterdir()}
    style = prompts.load(hf)
    assert style == prompts.get("alpaca")
    generator = pipeline("text-generation", model=str(hf))
    prompt = style.apply("Name a colour.")
    text = generator(prompt, max_new_tokens=5, do_sample=False)[0]["generated_text"]
    assert text.startswith(prompt) and len(text) > len(prompt)
    card = (hf / "README.md").read_text()
    assert "pipeline_tag: text-generation" in card and "val/loss" in card


CARD_INSTRUCTION = 'Please let me know your thoughts on the given place and why you think it deserves to be visited: "Barcelona, Spain"'


def _run_card_snippet(hf, capsys, monkeypatch):
    card = (hf / "README.md").read_text()
    code = card.split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(hf.parent)  # the card names the folder relative to the launch directory, or by its name
    exec(compile(code, str(hf / "README.md"), "exec"), {})
    return capsys.readouterr().out


@pytest.mark.slow
def test_encoder_decoder_trains_and_its_card_snippet_runs(t5_run, capsys, monkeypatch):
    import csv

    from lamini_lm import inference

    out, res = t5_run
    rows = list(csv.DictReader(open(out / "csv" / "metrics.csv")))
    losses = [float(r["train/loss"]) for r in rows if r.get("train/loss")]
    assert len(losses) == 5 and sum(losses[-2:]) / 2 < losses[0]  # one row per optimizer step; learning
    # transformers 5 has no text2text-generation pipeline any more: the card shows generate() instead
    assert "AutoModelForSeq2SeqLM" in (out / "hf" / "README.md").read_text()
    printed = _run_card_snippet(out / "hf", capsys, monkeypatch)
    model, tok, family, style = inference.load(out / "hf")
    assert style.name == "raw" and family.architecture == "encoder-decoder"
    # the card answers exactly as this repository's inference does (greedy, same input, same length)
    assert printed.strip() == inference.generate(model, tok, family, style, [CARD_INSTRUCTION], max_new_tokens=256)[0]
    assert len(inference.generate(model, tok, family, style, ["a", "b c d"], max_new_tokens=4)) == 2


@pytest.mark.slow
def test_decoder_only_card_snippet_runs(gpt2_run, capsys, monkeypatch):
    from lamini_lm import inference

    assert "### Response:" in (gpt2_run[0] / "hf" / "README.md").read_text()
    printed = _run_card_snippet(gpt2_run[0] / "hf", capsys, monkeypatch)
    # the card's pipeline answers as this repository's inference does (greedy, the same prompt and length)
    model, tok, family, style = inference.load(gpt2_run[0] / "hf")
    assert printed.strip() == inference.generate(model, tok, family, style, [CARD_INSTRUCTION],
                                                 max_new_tokens=256)[0].strip()


@pytest.mark.slow
def test_export_loads_in_lm_eval(t5_run, gpt2_run):
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    for out in (t5_run[0], gpt2_run[0]):
        lm = HFLM(pretrained=str(out / "hf"), batch_size=4, device="cpu")
        ll = lm.loglikelihood([Instance("loglikelihood", {}, ("Hello", " world"), 0)])
        assert len(ll) == 1 and ll[0][0] < 0


@pytest.mark.slow
def test_the_training_run_is_evaluated_by_evaluate_py(gpt2_run, tmp_path):
    out, _ = gpt2_run
    res = run_entry("evaluate.py", f"model={out}", "eval=lamini15_local", "tasks=[PIQA]", "lm_eval.limit=4",
                    "wandb.enabled=false", f"hydra.run.dir={tmp_path}")
    assert res.returncode == 0, res.stderr[-3000:]
    summaries = list(tmp_path.rglob("summary.json"))
    assert summaries
    text = summaries[0].read_text()
    assert "piqa" in text.lower() and "LaMini-tiny-GPT2" in text


@pytest.mark.slow
def test_the_export_names_no_path_of_this_machine(gpt2_run):
    import os
    from pathlib import Path

    out = gpt2_run[0]
    machine = {str(out), str(out.resolve()), str(Path.home()), os.environ.get("LAMINI_LM_CACHE") or "/.cache/"}
    for f in (out / "hf").iterdir():
        if f.suffix in (".md", ".yaml", ".json", ".txt"):
            text = f.read_text()
            assert not [p for p in machine if p in text], (f.name, [p for p in machine if p in text])
    assert "<cache>/assets/gpt2_tokenizer" in (out / "hf" / "training_config.yaml").read_text()


@pytest.mark.slow
def test_a_data_file_outside_the_known_folders_is_exported_by_its_name_only(tmp_path):
    import re

    import yaml

    data = tmp_path / "elsewhere" / "d40.jsonl"
    data.parent.mkdir()
    data.write_text("".join(json.dumps({"instruction": f"Say {i}.", "response": f"{i}.",
                                        "instruction_source": "alpaca"}) + "\n" for i in range(40)))
    out = tmp_path / "run"
    res = run_entry("train.py", "model=tiny_gpt2", "data=jsonl", f"data.path={data}", "data.val_size=8",
                    "global_batch_size=16", "micro_batch_size=8", "trainer.max_epochs=1", "logger=csv",
                    "callbacks.sample_generations.max_new_tokens=4", f"hydra.run.dir={out}")
    assert res.returncode == 0, res.stderr[-3000:]
    config = (out / "hf" / "training_config.yaml").read_text()
    assert yaml.safe_load(config)["data"]["path"] == "<path>/d40.jsonl"
    for text in (config, (out / "hf" / "README.md").read_text()):
        # an absolute path: a / that starts a word (after a space, quote, =, bracket or a line's start)
        assert not re.findall(r"(?:^|[\s\"'=(\[,])(/[\w.-]+)", text, re.MULTILINE) and str(tmp_path) not in text


@pytest.mark.slow
def test_the_evaluation_joins_the_training_runs_wandb_run(gpt2_run, tmp_path):
    from tests.helpers.eval_compose import compose

    from lamini_lm.evaluation.run import run_lm_eval

    out = gpt2_run[0]
    trained = json.loads((out / "hf" / "wandb_run.json").read_text())
    assert trained["id"] and trained["project"] == "lamini-lm"
    assert trained["id"].encode() in next((out / "wandb").glob("offline-run-*/run-*.wandb")).read_bytes()
    run_lm_eval(compose(tmp_path, f"models={out}", "eval=lamini15_local", "tasks=[PIQA]", "lm_eval.limit=2",
                        "wandb.enabled=true", "wandb.mode=offline"))
    import wandb

    wandb.teardown()  # the W&B service of this process writes the offline file: let it finish before reading
    (blob,) = [p.read_bytes() for p in tmp_path.rglob("offline-run-*/run-*.wandb")]
    assert b"training_run_id" in blob and trained["id"].encode() in blob and b"eval/PIQA/acc_norm" in blob
