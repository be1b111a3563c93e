"""The README's offline LaMini loop at toy size, each step a fresh process as a user runs it: the local teacher
(SmolLM2-135M-Instruct) answers a few seed tasks, D_ALL trains a tiny student, evaluate.py scores the student
before and after tuning on the offline suite, the report places both beside the paper's GPT-2-124M and
LaMini-GPT-124M rows (Table 13), and the human-evaluation responses are rated by the local teacher as the LLM
judge."""

import csv
import json
from pathlib import Path

import pytest

from tests.helpers.run import run_entry

HUMAN = Path(__file__).with_name("data") / "user_oriented_sample.jsonl"


def _ok(res):
    assert res.returncode == 0, res.stderr[-3000:]
    return res


@pytest.mark.slow
@pytest.mark.timeout(1200)  # seven fresh processes, two of them loading the local teacher
def test_the_offline_loop_end_to_end(tmp_path, monkeypatch):
    from lamini_lm import assets

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # the loop needs no key
    seeds = tmp_path / "seeds.jsonl"  # four of the 175 seed tasks, the instruction pool
    seeds.write_text("".join(assets.path("seed_tasks").joinpath("seed_tasks.jsonl").read_text().splitlines(True)[:4]))
    gen = tmp_path / "gen"
    _ok(run_entry("generate.py", "teacher=hf_local", "size=smoke", "size.self_instruct_without_topic=0",
                  "size.self_instruct_with_topic=0", "size.alpaca=4", f"seed_pools.alpaca.path={seeds}",
                  "teacher.max_tokens.responses=24", "responses.drop_truncated=false", "progress=false",
                  f"out_dir={gen}"))
    d_all = [json.loads(x) for x in (gen / "d_all.jsonl").read_text().splitlines()]
    assert len(d_all) == 4 and all(r["response"] and r["instruction_source"] == "alpaca" for r in d_all)

    student = ["model=tiny_gpt2", "logger=csv", "data=jsonl", f"data.path={gen / 'd_all.jsonl'}", "data.val_size=1",
               "global_batch_size=3", "micro_batch_size=3", "callbacks.sample_generations.max_new_tokens=4"]
    _ok(run_entry("train.py", *student, "trainer.max_epochs=0", f"hydra.run.dir={tmp_path / 'before'}"))
    _ok(run_entry("train.py", *student, "trainer.max_epochs=2", f"hydra.run.dir={tmp_path / 'after'}"))
    assert json.loads((tmp_path / "after" / "metrics.json").read_text())["global_step"] == 2

    models = f"model=[{tmp_path / 'before' / 'hf'},{tmp_path / 'after' / 'hf'}]"  # named by their run folders
    _ok(run_entry("evaluate.py", models, "eval=lamini15_local", "tasks=[PIQA,RTE]", "lm_eval.limit=4",
                  "wandb.enabled=false", f"hydra.run.dir={tmp_path / 'eval'}"))
    _ok(run_entry("evaluate.py", "mode=report", f"report.results=[{tmp_path / 'eval'}]", "report.tables=[13]",
                  "report.labels={before:gpt2,after:LaMini-GPT-124M}", f"hydra.run.dir={tmp_path / 'report'}"))
    rows = list(csv.DictReader(open(tmp_path / "report" / "tables.csv")))
    ours = {(r["paper_model"], r["task"]) for r in rows if r["ours"]}
    assert {("gpt2", "PIQA"), ("LaMini-GPT-124M", "PIQA"), ("gpt2", "RTE"), ("LaMini-GPT-124M", "RTE")} <= ours

    ids = tmp_path / "ids.txt"
    ids.write_text("user_oriented_task_0\nuser_oriented_task_3\n")
    human = [f"human.path={HUMAN}", f"human.ids_file={ids}", f"human.responses={tmp_path / 'human' / 'responses'}"]
    _ok(run_entry("evaluate.py", "mode=human_generate", models, *human, "human.generation.max_new_tokens=8",
                  f"hydra.run.dir={tmp_path / 'human'}"))
    _ok(run_entry("evaluate.py", "mode=human_judge", "teacher=hf_local", *human, "judge.progress=false",
                  "wandb.enabled=false", f"hydra.run.dir={tmp_path / 'judge_run'}"))
    ratings = list(csv.DictReader(open(tmp_path / "human" / "judge" / "judge_ratings.csv")))
    assert len(ratings) == 4  # two instructions x two models, each rated alone by the local teacher
    from huggingface_hub import ModelCard

    card = ModelCard.load(tmp_path / "after" / "hf" / "README.md")  # the scores and the judge's summary, in the card
    metrics = {r.metric_name.split(" (")[0] for r in card.data.eval_results}
    assert {"acc_norm", "acc"} <= metrics
    # a 135M judge often replies without a rating line (left unrated, counted apart); rated ones reach the card
    rated = [r for r in ratings if r["rating"]]
    assert ("Rate-A share, %" in metrics) == bool([r for r in rated if r["model"] == "after"]), (metrics, ratings)
