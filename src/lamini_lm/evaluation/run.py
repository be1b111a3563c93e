"""evaluate.py's one function: check the config once, then run its ``mode`` with the nodes it needs.

Each mode imports its own module when it runs: `mode=report` and the human-rating modes start without
torch, transformers or lm-eval."""

from __future__ import annotations

import csv
from pathlib import Path

from omegaconf import DictConfig

from lamini_lm.config import typed
from lamini_lm.errors import UserError
from lamini_lm.evaluation.spec import EvaluateSpec
from lamini_lm.run_lock import RunLock
from lamini_lm.secret_keys import refuse_secret_values


def run(cfg: DictConfig):
    refuse_secret_values(cfg)  # a config file's (human.url, the judge's teacher.base_url): the command line's were refused
    spec = typed(cfg, EvaluateSpec)
    with RunLock(Path(spec.paths["output_dir"]), "hydra.run.dir"):  # one evaluation writes a run folder at a time
        return _mode(spec)


def _mode(spec: EvaluateSpec):
    out = Path(spec.paths["output_dir"])
    if spec.mode == "lm_eval":
        return run_lm_eval(spec)
    if spec.mode == "report":
        from lamini_lm.evaluation import report

        return report.run(spec.report)
    if spec.mode == "human_judge":
        from lamini_lm.evaluation import judge

        return judge.judge(spec.judge, spec.human, spec.teacher, spec.prices)
    from lamini_lm.evaluation import human

    if spec.mode == "human_select":
        return human.select(spec.human)
    if spec.mode == "human_generate":
        from lamini_lm.evaluation.model_refs import resolve_all

        return human.generate(spec.human, resolve_all(spec.models, spec.revision))
    if spec.mode == "human_sheets":
        return human.sheets(spec.human, spec.seed)
    return human.ingest(spec.human, out)  # human_ingest, the last of spec.MODES


def run_lm_eval(spec: EvaluateSpec) -> list[dict]:
    from lamini_lm.evaluation import harness, local_tasks, model_refs, paper, suite

    tasks = suite.select(spec.eval.tasks, spec.tasks)
    refs = model_refs.resolve_all(spec.models, spec.revision)
    known = paper.all_models(paper.load())
    if spec.paper_model is not None:
        if spec.paper_model not in known:
            raise UserError(f"paper_model={spec.paper_model} is not in the paper's tables; one of: {', '.join(known)}")
        if len(refs) > 1:
            raise UserError(f"paper_model= names one model but model= gives {len(refs)}; use report.labels instead")
    out = Path(spec.paths["output_dir"])
    include = local_tasks.write(tasks, out / "tasks", spec.eval.name) if spec.eval.local else None
    tm = harness.task_manager(tasks, include)
    summaries = []
    for ref in refs:
        # a training export names its herd member (e.g. LaMini-GPT-124M); else the name may be a paper model's
        paper_model = spec.paper_model or paper.match(ref.info.get("lamini_name", ""), known) or paper.match(ref.name, known)
        summary = harness.evaluate(ref, tasks, tm, spec.lm_eval, spec.wrapper, spec.seed, spec.eval.name, out,
                                   paper_model)
        if spec.wandb.enabled:
            harness.log_wandb(summary, spec.wandb, out / harness.safe_name(ref.name))
        summaries.append(summary)
    all_rows = [r for s in summaries for r in harness.rows(s)]
    with open(out / "summary.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=harness.SUMMARY_FIELDS, extrasaction="ignore")
        w.writeheader()
        w.writerows(all_rows)
    for r in all_rows:
        score = f"{100 * r['value']:.1f}" if r["status"] == "ok" else "unavailable"
        print(f"{r['model']:30s} {r['name']:15s} {r['task']:20s} {r['metric']:9s} {score}")
    print(f"results: {out}")
    return summaries
