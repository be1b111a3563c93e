"""An export's scores in its own model card, as `model-index` metadata (what the Hub renders and leaderboards
read), through huggingface_hub's ModelCard: evaluating an export updates <export>/README.md in place, the
rest of the card kept; entries of an earlier evaluation with the same task, metric and setting are replaced.
The lm-eval scores (add_scores) and the human evaluation's Rate-A..D shares, by people or the LLM judge
(add_ratings), go there alike."""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import EvalResult, ModelCard

from lamini_lm import rating
from lamini_lm.files import replacing

LOCAL_FORMATS = ("arrow", "json", "parquet", "csv")  # our offline copies: named by their lm-eval task instead


def metric_name(metric: str, wrapper: str, suite: str) -> str:
    """The metric's display name, which also tells one evaluation setting from another."""
    return f"{metric} (lamini_lm evaluate.py, wrapper={wrapper}, suite={suite})"


def add_scores(folder: Path, summary: dict, configs: dict) -> Path | None:
    """Write ``summary``'s scores (harness.summarize) into ``folder``'s card; ``configs`` are lm-eval's task
    configs from its results (dataset and output type). None when the folder has no card."""
    path = Path(folder) / "README.md"
    if not path.exists():
        return None
    card = ModelCard.load(path)
    new = []
    for row in summary["tasks"]:
        if row["status"] != "ok":
            continue
        task = configs.get(row["task"], {})
        dataset = task.get("dataset_path") or row["task"]
        new.append(EvalResult(
            task_type=task.get("output_type", "multiple_choice"), task_name=row["name"],
            dataset_type=row["task"].removesuffix("_local") if dataset in LOCAL_FORMATS else dataset,
            dataset_name=row["name"], dataset_config=task.get("dataset_name"),
            dataset_split=task.get("test_split") or task.get("validation_split"),
            metric_type=row["metric"], metric_value=row["value"],
            metric_name=metric_name(row["metric"], summary["wrapper"], summary["suite"])))
    return _merge(path, card, new, summary["model"]["name"])


def add_ratings(folder: Path, model: str, counts: dict[str, int], rater: str) -> Path | None:
    """The human evaluation of ``model`` (Figure 6): the share of its responses rated A, B, C and D (percent) by
    ``rater`` (e.g. "8 human raters", "LLM judge gpt-4o"). None when the folder has no card."""
    path = Path(folder) / "README.md"
    if not path.exists():
        return None
    n = sum(counts.values())
    new = [EvalResult(
        task_type="text-generation", task_name="Human evaluation (LaMini-LM Figure 6)",
        dataset_type="self-instruct/user_oriented_instructions",
        dataset_name=f"self-instruct user-oriented instructions ({n} responses)",
        metric_type=f"rate-{level.lower()}", metric_value=round(100 * counts.get(level, 0) / n, 2),
        metric_name=f"Rate-{level} share, % ({rater})") for level in rating.LEVELS] if n else []
    return _merge(path, ModelCard.load(path), new, model)


def _merge(path: Path, card: ModelCard, new: list[EvalResult], model: str) -> Path:
    replaced = {(r.task_name, r.metric_name) for r in new}
    kept = [r for r in card.data.eval_results or [] if (r.task_name, r.metric_name) not in replaced]
    card.data.eval_results = kept + new
    card.data.model_name = card.data.model_name or model  # model-index needs a name
    with replacing(path) as tmp:  # a kill leaves the old card or the new one (the export stays whole)
        card.save(tmp)
    return path
