"""lm-eval on tiny exports through the offline suite: results files, provenance, the wrapper, lm-eval parity."""

import csv
import json

import pytest

from tests.helpers.eval_compose import compose, tiny_root

TASKS = "tasks=[PIQA,SST,WinoGrande,ARC,RACE]"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two evaluate.py runs: the GPT-2 export with the Alpaca wrapper, the whole 'multirun' folder without."""
    from lamini_lm.evaluation.run import run_lm_eval

    root = tiny_root(tmp_path_factory)
    out = tmp_path_factory.mktemp("eval")
    wrapped = run_lm_eval(compose(out / "wrapped", f"models={root}/gpt2/hf", "eval=lamini15_local", TASKS,
                                  "lm_eval.limit=6", "wrapper=alpaca", "paper_model=LaMini-GPT-124M"))
    plain = run_lm_eval(compose(out / "plain", f"models={root}", "eval=lamini15_local", TASKS, "lm_eval.limit=6",
                                "wrapper=none"))
    return {"root": root, "out": out, "wrapped": wrapped, "plain": plain}


def test_results_files_and_provenance(runs):
    (s,) = runs["wrapped"]
    folder = runs["out"] / "wrapped" / "gpt2"
    results = json.loads(next(folder.glob("results_*.json")).read_text())
    assert results["lm_eval_version"] == s["lm_eval_version"] == "0.4.13"
    assert set(results["versions"]) == {"piqa_local", "sst2_local", "winogrande_local", "arc_challenge_local"}
    assert results["lamini_lm"]["wrapper"] == "alpaca"
    assert len(s["model"]["weights_sha256"]) == 64 and s["model"]["architecture"] == "decoder-only"
    assert s["model"]["params"] > 0
    assert s["paper_model"] == results["lamini_lm"]["paper_model"] == "LaMini-GPT-124M"  # as paper_model= said
    rows = {r["paper"]: r for r in s["tasks"]}
    assert [r["paper"] for r in s["tasks"]] == ["RACE", "ARC", "PIQA", "SST", "WinoGrande"]  # the paper's order
    assert rows["RACE"]["status"] == "unavailable"  # listed, never dropped
    assert rows["PIQA"]["metric"] == "acc_norm" and rows["SST"]["metric"] == "acc"
    assert rows["ARC"]["n"] == 6 and rows["ARC"]["n_total"] == 1172  # the test split, from the OLMES documents
    assert rows["PIQA"]["value"] == results["results"]["piqa_local"]["acc_norm,none"]
    assert rows["PIQA"]["version"] == results["versions"]["piqa_local"]
    assert (folder / "summary.csv").read_text().count("\n") == 6
    assert list(folder.glob("samples_sst2_local_*.jsonl"))


def test_multirun_folder_evaluates_every_export_with_seq2seq_for_t5(runs):
    by_name = {s["model"]["name"].split("/")[-1]: s for s in runs["plain"]}
    assert set(by_name) == {"gpt2", "t5"}
    assert by_name["t5"]["model"]["architecture"] == "encoder-decoder"
    results = json.loads(next((runs["out"] / "plain").glob("*t5/results_*.json")).read_text())
    assert results["lamini_lm"]["wrapper"] == "none" and results["lamini_lm"]["chat_template"] is None


def test_wrapper_requests_match_the_alpaca_prompt_token_for_token(runs):
    """Golden test: what lm-eval scored is exactly the afaji fork's Alpaca-wrapped context + ' ' + choice."""
    from lm_eval.models.huggingface import HFLM

    from lamini_lm import prompts

    sample = json.loads(next((runs["out"] / "wrapped" / "gpt2").glob("samples_sst2_local_*.jsonl")).open().readline())
    question = f"{sample['doc']['sentence']}\nQuestion: Is this sentence positive or negative?\nAnswer:"
    ctx, cont = sample["arguments"]["gen_args_0"]["arg_0"], sample["arguments"]["gen_args_0"]["arg_1"]
    alpaca = prompts.get("alpaca").apply(question)
    assert ctx == alpaca + " " and cont == "negative"
    lm = HFLM(pretrained=str(runs["root"] / "gpt2" / "hf"), device="cpu", batch_size=1)
    context_enc, continuation_enc = lm._encode_pair(ctx, cont)
    assert context_enc == lm.tokenizer.encode(alpaca)
    assert context_enc + continuation_enc == lm.tokenizer.encode(alpaca + " negative")


def test_scores_equal_a_direct_lm_eval_call(runs):
    """Our numbers are lm-eval's: the same export, tasks and limit through simple_evaluate directly."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    direct = lm_eval.simple_evaluate(model="hf", model_args={"pretrained": str(runs["root"] / "t5" / "hf"),
                                                             "backend": "seq2seq", "device": "cpu"},
                                     tasks=["sst2_local", "piqa_local"], limit=6, batch_size=8, bootstrap_iters=0,
                                     task_manager=TaskManager(include_path=str(runs["out"] / "plain" / "tasks"),
                                                              include_defaults=False))
    ours = {r["task"]: r["value"] for s in runs["plain"] if s["model"]["name"].endswith("t5") for r in s["tasks"]
            if r["status"] == "ok"}
    assert ours["sst2_local"] == direct["results"]["sst2_local"]["acc,none"]
    assert ours["piqa_local"] == direct["results"]["piqa_local"]["acc_norm,none"]


def test_the_scores_land_in_the_exports_model_card(runs):
    from huggingface_hub import ModelCard
    from huggingface_hub.repocard import metadata_load

    hf = runs["root"] / "gpt2" / "hf"
    index = metadata_load(hf / "README.md")["model-index"]
    # model-index groups the metrics of one task and dataset in one result
    results = {r["dataset"]["name"] + " " + m["name"]: m for r in index[0]["results"] for m in r["metrics"]}
    for out, wrapper in (("wrapped", "alpaca"), ("plain", "none")):
        lm = json.loads(next((runs["out"] / out).glob("*gpt2/results_*.json")).read_text())["results"]
        for paper, task, metric in (("PIQA", "piqa_local", "acc_norm"), ("SST", "sst2_local", "acc")):
            entry = results[f"{paper} {metric} (lamini_lm evaluate.py, wrapper={wrapper}, suite=lamini15_local)"]
            assert entry["type"] == metric and entry["value"] == lm[task][f"{metric},none"]
    # 4 available tasks x the 2 settings above; RACE (unavailable) is not claimed
    assert len([k for k in results if "suite=lamini15_local" in k]) == 8
    card = ModelCard.load(hf / "README.md")
    assert "## Use" in card.text and card.data.pipeline_tag == "text-generation"  # the rest of the card kept


SUITE = """# a suite of one's own is one config file: a paper task, and one the paper does not report
# (no `paper:`) read by a data reader of one's own (tests/helpers/eval_reader.py)
name: own_suite
local: true
tasks:
  - {paper: PIQA, task: piqa_local, metric: acc_norm, include: piqa/piqa.yaml,
     data: {_target_: lamini_lm.evaluation.local_tasks.arrow, split: validation,
            path: hf_datasets/piqa/plain_text/validation}}
  - {task: sciq_first20, metric: acc, include: sciq/sciq.yaml,
     data: {_target_: tests.helpers.eval_reader.first_docs, split: validation, n: 20,
            path: hf_datasets/sciq/none/validation}}
"""


def test_an_eval_suite_of_ones_own_is_one_config(runs, tmp_path):  # no edit elsewhere
    from huggingface_hub import metadata_load

    from lamini_lm.evaluation import report
    from lamini_lm.evaluation.run import run_lm_eval

    (tmp_path / "conf" / "eval").mkdir(parents=True)
    (tmp_path / "conf" / "eval" / "own_suite.yaml").write_text(SUITE)
    search = f"hydra.searchpath=[file://{tmp_path / 'conf'}]"
    (summary,) = run_lm_eval(compose(tmp_path / "out", search, "eval=own_suite", f"models={runs['root']}/gpt2/hf",
                                     "lm_eval.limit=4", "wrapper=none"))
    assert summary["suite"] == "own_suite"
    assert [(r["name"], r["paper"]) for r in summary["tasks"]] == [("PIQA", "PIQA"), ("sciq_first20", None)]
    assert all(r["status"] == "ok" and 0 <= r["value"] <= 1 for r in summary["tasks"])
    assert {r["name"]: (r["n"], r["n_total"]) for r in summary["tasks"]} == {"PIQA": (4, 1838), "sciq_first20": (4, 20)}
    # the report puts the new task after the paper's rows, with no paper number; the paper's average is unchanged
    cfg = compose(tmp_path / "report", search, "mode=report", f"report.results=[{tmp_path / 'out'}]",
                  "report.tables=[13]")
    report.run(cfg.report)
    rows = list(csv.DictReader(open(tmp_path / "report" / "tables.csv")))
    mine = [r for r in rows if r["result"] == summary["model"]["name"]]
    assert [r["task"] for r in mine][-3:] == ["HellaSwag", "sciq_first20", "Average"]
    sciq = mine[-2]
    assert sciq["paper"] == "" and sciq["diff"] == "" and float(sciq["ours"]) == round(100 * summary["tasks"][1]["value"], 2)
    assert "| sciq_first20 |" in (tmp_path / "report" / "tables.md").read_text()
    # and the export's card names it as the summary does
    index = metadata_load(runs["root"] / "gpt2" / "hf" / "README.md")["model-index"]
    names = {r["task"]["name"] for r in index[0]["results"]}
    assert {"PIQA", "sciq_first20"} <= names


def test_a_rerun_into_the_same_folder_answers_from_lm_evals_cache(runs, tmp_path, monkeypatch):
    """A killed evaluation resumes: lm-eval's request cache in the run folder answers what was answered."""
    from lm_eval.models.huggingface import HFLM

    from lamini_lm.evaluation.run import run_lm_eval

    args = (f"models={runs['root']}/gpt2/hf", "eval=lamini15_local", "tasks=[RTE]", "lm_eval.limit=3")
    (first,) = run_lm_eval(compose(tmp_path, *args))
    assert len(list((tmp_path / "gpt2").glob("lm_cache_*.db"))) == 1

    def asked(*args, **kwargs):
        raise AssertionError("the model was asked again")

    monkeypatch.setattr(HFLM, "_loglikelihood_tokens", asked)
    (again,) = run_lm_eval(compose(tmp_path, *args))
    assert again["tasks"] == first["tasks"]
    with pytest.raises(AssertionError, match="asked again"):  # a request the cache does not hold reaches the model
        run_lm_eval(compose(tmp_path, *args[:-1], "lm_eval.limit=4"))


def test_a_run_folder_keeps_one_model_per_name(runs, tmp_path):
    """Another model whose result name is taken in the run folder is refused before anything runs (one line naming
    both); under name= it is kept apart; the same model again is a resume (test above)."""
    import shutil

    from lamini_lm.errors import UserError
    from lamini_lm.evaluation.run import run_lm_eval

    wrapped = runs["out"] / "wrapped"
    assert json.loads((wrapped / "gpt2" / "model.json").read_text()) == runs["wrapped"][0]["model"]
    other = tmp_path / "elsewhere" / "gpt2" / "hf"  # the T5 export, in a run folder also called gpt2
    shutil.copytree(runs["root"] / "t5" / "hf", other)
    before = sorted(p.relative_to(wrapped) for p in wrapped.rglob("*"))
    args = (f"models={other}", "eval=lamini15_local", "tasks=[RTE]", "lm_eval.limit=3")
    with pytest.raises(UserError) as e:
        run_lm_eval(compose(wrapped, *args))
    assert str(e.value).startswith(f"{wrapped / 'gpt2'} holds the results of another model named 'gpt2' "
                                   f"({runs['root'] / 'gpt2' / 'hf'}, weights sha256 ")
    assert f"not of {other}, weights sha256 " in str(e.value) and "hydra.run.dir=" in str(e.value) and "name=" in str(e.value)
    assert sorted(p.relative_to(wrapped) for p in wrapped.rglob("*")) == before  # nothing written
    (summary,) = run_lm_eval(compose(wrapped, *args, "name=gpt2-t5-copy"))
    assert summary["model"]["name"] == "gpt2-t5-copy" and summary["model"]["location"] == str(other)
    assert json.loads((wrapped / "gpt2" / "summary.json").read_text()) == runs["wrapped"][0]  # left as it was


def test_what_makes_two_models_one(tmp_path):
    from lamini_lm.evaluation import harness
    from lamini_lm.evaluation.model_refs import ModelRef

    hub = ModelRef(name="org/m", location="org/m", local=False, revision="v1")
    export = ModelRef(name="m", location="/a/m/hf", local=True, revision="local", info={"weights_sha256": "ab" * 32})
    assert harness.same_model(hub.record(), hub) and harness.same_model(export.record(), export)
    assert not harness.same_model({**hub.record(), "revision": "v2"}, hub)  # another revision: another model
    assert not harness.same_model(hub.record(), export) and not harness.same_model(export.record(), hub)
    assert harness.same_model({**export.record(), "location": "/b/m/hf"}, export)  # a copy: the same weights
    assert harness.held_by(tmp_path) is None
    (tmp_path / "summary.json").write_text(json.dumps({"model": hub.record(), "tasks": []}))  # from before model.json
    assert harness.held_by(tmp_path) == hub.record()
