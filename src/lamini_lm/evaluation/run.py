"""evaluate.py's one function: check the config once, then run its ``mode`` with the nodes it needs.

Each mode imports its own module when it runs: `mode=report` and the human-rating modes start without
torch, transformers or lm-eval."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from lamini_lm.config import typed
from lamini_lm.errors import UserError
from lamini_lm.evaluation.spec import EvaluateSpec
from lamini_lm.run_lock import RunLock
from lamini_lm.secret_keys import refuse_secret_values


def run(cfg: DictConfig):
    spec = typed(cfg, EvaluateSpec)
    refuse_secret_values(cfg)  # a config file's (human.url, the judge's teacher.base_url): the command line's were refused
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
        return human.generate(spec.human, _models(spec))
    if spec.mode == "human_sheets":
        return human.sheets(spec.human, spec.seed)
    return human.ingest(spec.human, out)  # human_ingest, the last of spec.MODES


def _models(spec: EvaluateSpec) -> list:
    """What model= names (lamini_lm.evaluation.model_refs.ModelRef), under name= when it is given."""
    from lamini_lm.evaluation.model_refs import resolve_all

    refs = resolve_all(spec.models, spec.revision)
    if spec.name is not None:
        if len(refs) > 1:
            raise UserError(f"name={spec.name} names one model but model= gives {len(refs)}; evaluate each under "
                            "its own name, one at a time")
        refs[0].name = spec.name
    return refs


def _one_model_per_name(refs: list, out: Path) -> None:
    """A result folder <out>/<name>/ holds one model's results: the same model again resumes it (lm-eval's
    cache), another model of that name is refused before anything runs, never mixed into it."""
    from lamini_lm.evaluation import harness

    taken: dict[str, str] = {}  # folder name -> the location of this run's model in it
    for ref in refs:
        folder = harness.safe_name(ref.name)
        if folder in taken:
            raise UserError(f"{taken[folder]} and {ref.location} would share the result folder {out / folder}; "
                            "evaluate them in separate runs, or one under another name (name=...)")
        taken[folder] = ref.location
        held = harness.held_by(out / folder)
        if held is not None and not harness.same_model(held, ref):
            raise UserError(f"{out / folder} holds the results of another model named '{ref.name}' "
                            f"({_described(held)}), not of {_described(ref.record())}: evaluate it into another "
                            "run folder (hydra.run.dir=...) or under another name (name=...)")


def _described(record: dict) -> str:
    if record.get("weights_sha256"):
        return f"{record.get('location')}, weights sha256 {record['weights_sha256'][:12]}"
    return f"{record.get('location')} at revision {record.get('revision')}"


def run_lm_eval(spec: EvaluateSpec) -> list[dict]:
    from lamini_lm.evaluation import harness, local_tasks, paper, suite

    tasks = suite.select(spec.eval.tasks, spec.tasks)
    out = Path(spec.paths["output_dir"])
    refs = _models(spec)
    _one_model_per_name(refs, out)
    known = paper.all_models(paper.load())
    if spec.paper_model is not None:
        if spec.paper_model not in known:
            raise UserError(f"paper_model={spec.paper_model} is not in the paper's tables; one of: {', '.join(known)}")
        if len(refs) > 1:
            raise UserError(f"paper_model= names one model but model= gives {len(refs)}; use report.labels instead")
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
    harness.write_rows(out / "summary.csv", all_rows)
    for r in all_rows:
        score = f"{100 * r['value']:.1f}" if r["status"] == "ok" else "unavailable"
        print(f"{r['model']:30s} {r['name']:15s} {r['task']:20s} {r['metric']:9s} {score}")
    print(f"results: {out}")
    return summaries

