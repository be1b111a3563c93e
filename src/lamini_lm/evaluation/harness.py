"""Run one suite on one model through lm-eval's Python API and write its results into the run folder.

Per model: ``<out>/<model>/results_<date>.json`` and ``samples_<task>_<date>.jsonl`` (lm-eval's own
EvaluationTracker files, as its CLI writes them, plus a ``lamini_lm`` block: model provenance,
wrapper, suite) and ``summary.json`` / ``summary.csv``: one row per paper task with the paper's
metric, the task version and the status (``ok`` or ``unavailable``); ``model.json`` names the model
the folder belongs to (one name, one model: see same_model).
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import re
from importlib.metadata import version
from pathlib import Path

import lm_eval
from lm_eval.loggers import EvaluationTracker
from lm_eval.models.huggingface import HFLM
from lm_eval.tasks import TaskManager

from lamini_lm.errors import UserError
from lamini_lm.evaluation import card
from lamini_lm.evaluation import wrapper as wrappers
from lamini_lm.evaluation.model_refs import ModelRef
from lamini_lm.evaluation.spec import LmEvalSpec, WandbSpec
from lamini_lm.evaluation.suite import TaskSpec
from lamini_lm.files import open_atomic, write_atomic
from lamini_lm.models import families

log = logging.getLogger(__name__)
# wandb is imported by log_wandb only: most runs in tests and sweeps leave W&B off
SUMMARY_FIELDS = ("model", "paper_model", "name", "paper", "task", "metric", "value", "stderr", "version", "n", "n_total",
                  "status", "wrapper", "suite")
MODEL_FILE = "model.json"  # the record of the model <out>/<model>/ belongs to, written before its evaluation starts


def safe_name(name: str) -> str:
    return re.sub(r"[^\w.-]+", "__", name).strip("_") or "model"


def held_by(folder: Path) -> dict | None:
    """The record (ModelRef.record) of the model whose results ``folder`` holds: its model.json, else the
    summary.json of an evaluation from before model.json; None for a folder no evaluation has started in."""
    for name, part in ((MODEL_FILE, None), ("summary.json", "model")):
        try:
            data = json.loads((folder / name).read_text())
        except (OSError, ValueError):  # absent, or torn by a kill: the next file, or a new folder
            continue
        record = data.get(part) if part and isinstance(data, dict) else data
        if isinstance(record, dict):
            return record
    return None


def same_model(record: dict, ref: ModelRef) -> bool:
    """Whether ``record`` is ``ref``'s model: the same weights for an export (a copy of it elsewhere is the
    same model), the same hub id and revision for a hub model."""
    mine = ref.record()
    if mine.get("weights_sha256") or record.get("weights_sha256"):
        return mine.get("weights_sha256") == record.get("weights_sha256")
    return (mine["location"], mine["revision"]) == (record.get("location"), record.get("revision"))


def load_lm(ref: ModelRef, cfg: LmEvalSpec):
    """lm-eval's HFLM for ``ref`` with its family's backend, fixed batch size by default."""
    backend = ref.family.lm_eval_backend if ref.family else "default"
    try:
        lm = HFLM(pretrained=ref.location, backend=backend, revision=ref.revision, batch_size=cfg.batch_size,
                  max_batch_size=cfg.max_batch_size, device=cfg.device, dtype=cfg.dtype)
    except OSError as e:  # hub id not reachable / not found
        raise UserError(f"cannot load model '{ref.location}': {str(e).splitlines()[0]} "
                        "(offline? evaluate a local export folder instead)") from None
    if ref.family is None:
        ref.family = families.from_hf_config(lm.model.config)
    ref.info["params"] = int(lm.model.num_parameters())
    return lm


def task_manager(specs: list[TaskSpec], include_path: Path | None):
    # a local suite includes lm-eval's YAMLs by absolute path, so indexing the ~10k built-in task
    # files (~20 s on 2 cores) is not needed
    tm = TaskManager(include_path=str(include_path) if include_path else None, include_defaults=include_path is None)
    missing = [s.task for s in specs if s.available and s.task not in tm.all_tasks]
    if missing:
        raise UserError(f"lm-eval {_lm_eval_version()} has no task(s) {', '.join(missing)}")
    return tm


def _lm_eval_version() -> str:
    return version("lm_eval")


def evaluate(ref: ModelRef, specs: list[TaskSpec], tm, settings: LmEvalSpec, wrapper: str, seed: int, suite_name: str,
             out_dir: Path, paper_model: str | None = None) -> dict:
    """Evaluate ``ref`` on the available tasks of ``specs``; returns (and writes) its summary."""
    lm = load_lm(ref, settings)
    # hub models get their family's default style (LaMini's convention: Alpaca for decoder-only, raw for T5)
    style = wrappers.resolve(wrapper, ref.style if ref.local else ref.family.style())
    template = None
    if style is not None:
        template = wrappers.chat_template(style)
        lm.tokenizer.chat_template = template
    out = out_dir / safe_name(ref.name)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / MODEL_FILE, json.dumps(ref.record(), indent=2, default=str) + "\n")
    tracker = EvaluationTracker(output_path=str(out / "results.json"))
    # lm-eval's request cache (sqlite, a row per answered request): a killed evaluation rerun into the same run
    # folder answers only what is missing. Keyed by the exact weights, since lm-eval keys by request alone.
    weights = ref.info.get("weights_sha256") or f"{ref.revision}"
    cache = str(out / f"lm_cache_{hashlib.sha256(weights.encode()).hexdigest()[:12]}") if settings.cache else None
    names = [s.task for s in specs if s.available]
    log.info("evaluating %s on %d task(s), wrapper=%s", ref.name, len(names), style.name if style else "none")
    try:
        results = lm_eval.simple_evaluate(
            model=lm, tasks=names, num_fewshot=settings.num_fewshot, limit=settings.limit,
            bootstrap_iters=settings.bootstrap_iters, log_samples=settings.log_samples,
            apply_chat_template=style is not None, task_manager=tm, evaluation_tracker=tracker,
            random_seed=seed, numpy_random_seed=seed, torch_random_seed=seed, fewshot_random_seed=seed,
            use_cache=cache)
    except ConnectionError as e:  # datasets' "Couldn't reach '<dataset>' on the Hub"
        raise UserError(f"{e}: the {suite_name} suite downloads its data from the Hugging Face Hub; "
                        "offline, use eval=lamini15_local") from None
    samples = results.pop("samples", None)
    meta = {"model": ref.record(), "paper_model": paper_model, "suite": suite_name,
            "wrapper": style.name if style else "none", "wrapper_setting": wrapper, "chat_template": template,
            "lm_eval_version": _lm_eval_version(), "limit": settings.limit,
            "batch_size": settings.batch_size}
    results["lamini_lm"] = meta
    tracker.save_results_aggregated(results=results, samples=samples)
    if samples:
        for task, task_samples in samples.items():
            tracker.save_results_samples(task_name=task, samples=task_samples)
    summary = summarize(results, specs, meta)
    write_summary(summary, out)
    if ref.local:  # the export's own card carries its scores (model-index)
        card.add_scores(Path(ref.location), summary, results.get("configs", {}))
    return summary


def summarize(results: dict, specs: list[TaskSpec], meta: dict) -> dict:
    """One row per task (``name``: the paper's row, or the lm-eval name of a task the paper does not report;
    ``paper``: the paper's row or None): its metric from lm-eval's results, or why it has none."""
    rows = []
    for s in specs:
        row = {"name": s.name, "paper": s.paper, "task": s.task, "metric": s.metric}
        if not s.available:
            rows.append(row | {"status": "unavailable", "reason": "no offline copy of the data this task scores"})
            continue
        r = results["results"][s.task]
        key = f"{s.metric},none"
        if key not in r:
            raise UserError(f"lm-eval's {s.task} reports no '{s.metric}' (it has {', '.join(sorted(r))}); "
                            "fix the metric in the eval suite")
        stderr = r.get(f"{s.metric}_stderr,none")
        n = results.get("n-samples", {}).get(s.task, {})
        rows.append(row | {"status": "ok", "value": float(r[key]),
                           "stderr": float(stderr) if isinstance(stderr, (int, float)) else None,
                           "version": results["versions"].get(s.task), "n": n.get("effective"),
                           "n_total": n.get("original")})
    return {**meta, "tasks": rows}


def rows(summary: dict) -> list[dict]:
    """The summary's task rows, each with the model, wrapper and suite it belongs to (CSV and W&B)."""
    extra = {"model": summary["model"]["name"], "paper_model": summary["paper_model"], "wrapper": summary["wrapper"],
             "suite": summary["suite"]}
    return [extra | r for r in summary["tasks"]]


def write_summary(summary: dict, out: Path) -> None:
    """A model's summary.json and summary.csv, each written whole (a kill leaves the earlier one or the new one)."""
    write_atomic(out / "summary.json", json.dumps(summary, indent=2, default=str) + "\n")
    write_rows(out / "summary.csv", rows(summary))


def write_rows(path: Path, summary_rows: list[dict]) -> None:
    """Summary rows (rows()) as a CSV file, written whole: one model's, or every model's of a run."""
    with open_atomic(path) as f:
        w = csv.DictWriter(f, fieldnames=SUMMARY_FIELDS, extrasaction="ignore")
        w.writeheader()
        w.writerows(summary_rows)


def log_wandb(summary: dict, cfg: WandbSpec, out: Path) -> None:
    """The model's scores and summary table to W&B (offline runs land in <out>/wandb; `wandb sync` uploads).

    An export trained by train.py joins its training run: the same project and group (a sweep's), the
    training run's id in the config, the scores under eval/ in the summary, so the sweep's dashboard can put
    them beside val/loss and compare the herd by task score."""
    import wandb

    trained = summary["model"].get("training_wandb") or {}
    run = wandb.init(project=trained.get("project") or cfg.project, mode=cfg.mode, dir=str(out),
                     name=f"eval {trained.get('name') or summary['model']['name']}", job_type="evaluate",
                     group=trained.get("group") or cfg.group,
                     config={"training_run_id": trained.get("id"), **{k: v for k, v in summary.items() if k != "tasks"}},
                     reinit="finish_previous")
    try:
        scores = {f"eval/{r['name']}/{r['metric']}": r["value"] for r in summary["tasks"] if r["status"] == "ok"}
        run.log(scores)
        run.summary.update(scores)
        run.log({"summary": wandb.Table(columns=list(SUMMARY_FIELDS),
                                        data=[[r.get(k) for k in SUMMARY_FIELDS] for r in rows(summary)])})
    finally:
        run.finish()
