"""evaluate.py's one function: dispatch on ``mode``."""

from __future__ import annotations

import csv
from pathlib import Path

from lamini_lm.errors import UserError

MODES = ("lm_eval", "report", "human_select", "human_generate", "human_sheets", "human_ingest", "human_judge")


def run(cfg) -> None:
    if cfg.mode not in MODES:
        raise UserError(f"unknown mode '{cfg.mode}'; choose one of {', '.join(MODES)}")
    if cfg.mode == "lm_eval":
        run_lm_eval(cfg)
    elif cfg.mode == "report":
        from lamini_lm.evaluation import report

        report.run(cfg.report)
    elif cfg.mode == "human_judge":
        from lamini_lm.evaluation import judge

        judge.judge(cfg)
    else:
        from lamini_lm.evaluation import human

        getattr(human, cfg.mode.removeprefix("human_"))(cfg)


def run_lm_eval(cfg) -> list[dict]:
    from lamini_lm.evaluation import harness, local_tasks, model_refs, paper, suite

    specs = suite.select(suite.load(cfg.eval), cfg.tasks)
    refs = model_refs.resolve_all(cfg.models, cfg.revision)
    known = paper.all_models(paper.load())
    if cfg.paper_model is not None:
        if cfg.paper_model not in known:
            raise UserError(f"paper_model={cfg.paper_model} is not in the paper's tables; one of: {', '.join(known)}")
        if len(refs) > 1:
            raise UserError(f"paper_model= names one model but model= gives {len(refs)}; use report.labels instead")
    out = Path(cfg.paths.output_dir)
    include = local_tasks.write(specs, out / "tasks") if cfg.eval.local else None
    tm = harness.task_manager(specs, include)
    summaries = []
    for ref in refs:
        # a training export names its herd member (e.g. LaMini-GPT-124M); else the name may be a paper model's
        paper_model = cfg.paper_model or paper.match(ref.info.get("lamini_name", ""), known) or paper.match(ref.name, known)
        summary = harness.evaluate(ref, specs, tm, cfg, cfg.eval.name, out, paper_model)
        if cfg.wandb.enabled:
            harness.log_wandb(summary, cfg.wandb, out / harness.safe_name(ref.name))
        summaries.append(summary)
    all_rows = [r for s in summaries for r in harness.rows(s)]
    with open(out / "summary.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=harness.SUMMARY_FIELDS, extrasaction="ignore")
        w.writeheader()
        w.writerows(all_rows)
    for r in all_rows:
        score = f"{100 * r['value']:.1f}" if r["status"] == "ok" else "unavailable"
        print(f"{r['model']:30s} {r['paper']:15s} {r['task']:20s} {r['metric']:9s} {score}")
    print(f"results: {out}")
    return summaries
