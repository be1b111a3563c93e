"""A suite (conf/eval/*.yaml): lm-eval task names, metrics, offline data, and the paper's row each reproduces.

A suite of one's own is one config file; tasks the paper does not report leave ``paper`` unset and appear
in the report under their lm-eval name, beside the paper's rows (a new offline data format is one reader
function, named by ``data._target_``: see local_tasks)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from lamini_lm.errors import UserError

# The paper's 15 tasks in the order of its tables (Table 4, Tables 9-13).
PAPER_TASKS = ("OpenBookQA", "SciQ", "RACE", "ARC", "PIQA", "ReCoRD", "SST", "MRPC", "RTE", "MultiNLI",
               "MultiNLI (mis)", "WSC273", "WinoGrande", "WiC", "HellaSwag")


@dataclass
class TaskSpec:
    task: str  # lm-eval task name
    metric: str  # the metric reported (for the paper's tasks, the one the paper reports)
    paper: Optional[str] = None  # the row of the paper's tables this task reproduces; None: not in the paper
    include: Optional[str] = None  # local suites: lm-eval's task YAML, relative to lm_eval/tasks
    data: Optional[dict[str, Any]] = None  # local suites: the offline data's reader; None there = unavailable
    local: bool = False  # set from the suite

    def __post_init__(self):
        if self.paper is not None and self.paper not in PAPER_TASKS:
            raise ValueError(f"task {self.task}: paper '{self.paper}' is not one of the paper's tasks "
                             f"({', '.join(PAPER_TASKS)}); leave paper unset for a task the paper does not report")

    @property
    def name(self) -> str:
        """The task's row in summaries and reports: the paper's name where it has one."""
        return self.paper or self.task

    @property
    def available(self) -> bool:
        return not self.local or self.data is not None


@dataclass
class SuiteSpec:
    name: str
    tasks: list[TaskSpec]
    local: bool = False  # task files are written at run time over offline data

    def __post_init__(self):
        for t in self.tasks:
            t.local = self.local


def select(specs: list[TaskSpec], wanted) -> list[TaskSpec]:
    """The suite's tasks named in ``wanted`` (paper or lm-eval names, any case); all when empty."""
    if not wanted:
        return specs
    by_name = {s.name.lower(): s for s in specs} | {s.task.lower(): s for s in specs}
    unknown = [w for w in wanted if str(w).lower() not in by_name]
    if unknown:
        raise UserError(f"unknown task(s) {', '.join(map(str, unknown))}; this suite has: "
                        f"{', '.join(s.task for s in specs)} (or their rows' names: {', '.join(s.name for s in specs)})")
    chosen = {by_name[str(w).lower()].task for w in wanted}
    return [s for s in specs if s.task in chosen]
