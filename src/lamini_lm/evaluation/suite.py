"""A suite (conf/eval/*.yaml): the paper's task names, lm-eval task names, metrics, offline data."""

from __future__ import annotations

from dataclasses import dataclass

from lamini_lm.errors import UserError

# The paper's 15 tasks in the order of its tables (Table 4, Tables 9-13).
PAPER_TASKS = ("OpenBookQA", "SciQ", "RACE", "ARC", "PIQA", "ReCoRD", "SST", "MRPC", "RTE", "MultiNLI",
               "MultiNLI (mis)", "WSC273", "WinoGrande", "WiC", "HellaSwag")


@dataclass(frozen=True)
class TaskSpec:
    paper: str  # row name in the paper's tables
    task: str  # lm-eval task name
    metric: str  # the metric the paper reports
    include: str | None = None  # local suites: lm-eval's task YAML, relative to lm_eval/tasks
    data: dict | None = None  # local suites: the offline data; None there = unavailable offline
    local: bool = False

    @property
    def available(self) -> bool:
        return not self.local or self.data is not None


def load(eval_cfg) -> list[TaskSpec]:
    local = bool(eval_cfg.get("local", False))
    specs = []
    for i, t in enumerate(eval_cfg.tasks):
        for key in ("paper", "task", "metric"):
            if key not in t:
                raise UserError(f"eval.tasks[{i}] has no '{key}' (suite '{eval_cfg.name}')")
        if t.paper not in PAPER_TASKS:
            raise UserError(f"eval.tasks[{i}].paper '{t.paper}' is not one of the paper's tasks: {', '.join(PAPER_TASKS)}")
        data = t.get("data")
        specs.append(TaskSpec(t.paper, t.task, t.metric, t.get("include"), dict(data) if data else None, local))
    return specs


def select(specs: list[TaskSpec], wanted) -> list[TaskSpec]:
    """The suite's tasks named in ``wanted`` (paper or lm-eval names, any case); all when empty."""
    if not wanted:
        return specs
    by_name = {s.paper.lower(): s for s in specs} | {s.task.lower(): s for s in specs}
    unknown = [w for w in wanted if str(w).lower() not in by_name]
    if unknown:
        raise UserError(f"unknown task(s) {', '.join(map(str, unknown))}; this suite has: "
                        f"{', '.join(s.task for s in specs)} (or the paper's names: {', '.join(PAPER_TASKS)})")
    chosen = {by_name[str(w).lower()].task for w in wanted}
    return [s for s in specs if s.task in chosen]
