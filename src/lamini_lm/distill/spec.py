"""generate.py's config (every stage but analyze), typed and checked once at its entry (distill/pipeline.py) with
lamini_lm.config.typed: every later function gets the node it needs as a dataclass, and a wrong key or value stops
the run with one line naming it, before a teacher is built or a file is read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from lamini_lm.config import BadValue, hub_repo
from lamini_lm.distill import filters
from lamini_lm.distill.decontam import DecontamSpec
from lamini_lm.distill.dedup import DedupSpec
from lamini_lm.distill.dryrun import DryRunEstimates
from lamini_lm.distill.instructions import InstructionsSpec
from lamini_lm.distill.prompt_builders import PromptsSpec
from lamini_lm.distill.seed_pools import SeedPoolsSpec
from lamini_lm.distill.stages import ResponsesSpec
from lamini_lm.subsets import SUBSETS, per_subset

STAGES = ("all", "instructions", "responses", "assemble", "topics", "analyze")

# pairs per subset (conf/size/): 0 leaves a subset out, a subset not named is 0
Sizes = per_subset("Sizes", SUBSETS, int, default=0,
                   check=lambda n: "is negative: a size is a number of pairs (0 leaves the subset out)" if n < 0
                   else None)


@dataclass
class GenerateSpec:
    # built from their `_target_` with their settings checked against it (teachers.build, targets.build)
    teacher: Any  # {_target_: a lamini_lm.teachers.base.Teacher subclass, its settings}
    topics: Any  # {_target_: a function returning the topic list, its settings}
    seed_pools: SeedPoolsSpec
    prompts: PromptsSpec
    size: Sizes
    instructions: InstructionsSpec
    responses: ResponsesSpec
    filters: dict[str, Optional[dict[str, Any]]]  # {filter name: its settings, null: off}, applied in this order
    dedup: DedupSpec
    decontam: DecontamSpec
    dry_run_estimates: DryRunEstimates
    prices: dict[str, dict[str, float]]  # USD per 1M tokens by model: input, output, batch_input, batch_output
    out_dir: str
    stage: str = "all"
    seed: int = 42
    dry_run: bool = False
    progress: bool = True
    max_rejected: float = 0.01  # refusals stored as such: a share of a stage's requests, or a count when >= 1
    push_to_hub: Any = None  # a Hub dataset repo id for D_ALL (lamini_lm.config.hub_repo)
    task_name: str = "generate"
    analysis: Any = None  # stage=analyze's own config, typed by lamini_lm.analysis (AnalysisSpec)

    def __post_init__(self):
        if self.stage not in STAGES:
            raise BadValue("stage", f"'{self.stage}' is not a stage; choose one of {', '.join(STAGES)}")
        self.push_to_hub = hub_repo(self.push_to_hub)
        if self.max_rejected < 0:
            raise BadValue("max_rejected", f"{self.max_rejected} must be a share (0 to 1) or a count (>= 1)")
        filters.check(self.filters)
