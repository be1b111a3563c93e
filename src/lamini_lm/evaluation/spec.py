"""evaluate.py's whole config (conf/evaluate.yaml), typed and checked once at its entry
(lamini_lm.config.typed); each mode's function gets the nodes it needs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from lamini_lm.config import check_wandb_mode
from lamini_lm.evaluation.suite import SuiteSpec
from lamini_lm.evaluation.wrapper import WRAPPERS

MODES = ("lm_eval", "report", "human_select", "human_generate", "human_sheets", "human_ingest", "human_judge")


@dataclass
class LmEvalSpec:
    batch_size: Any = 8  # a number, or lm-eval's "auto" / "auto:N"
    max_batch_size: int = 64
    device: str = "cpu"
    dtype: str = "auto"
    num_fewshot: int = 0
    limit: Optional[int] = None  # documents per task (smoke tests only)
    bootstrap_iters: int = 1000
    log_samples: bool = True
    cache: bool = True  # lm-eval's request cache in the run folder: a rerun into it resumes

    def __post_init__(self):
        b = self.batch_size
        if not ((isinstance(b, int) and not isinstance(b, bool) and b > 0) or (isinstance(b, str) and b.startswith("auto"))):
            raise ValueError(f"lm_eval.batch_size={b!r} must be a positive number or auto / auto:N")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"lm_eval.limit={self.limit} must be a positive number of documents (or null for all)")
        if self.num_fewshot < 0 or self.bootstrap_iters < 0:
            raise ValueError("lm_eval.num_fewshot and lm_eval.bootstrap_iters must be >= 0")


@dataclass
class WandbSpec:
    enabled: bool = True
    project: str = "lamini-lm"
    group: Optional[str] = None
    mode: str = "offline"

    def __post_init__(self):
        check_wandb_mode(self.mode)


@dataclass
class ReportSpec:
    paper_results: str
    out_dir: str
    results: list[str] = field(default_factory=list)  # evaluate.py run folders or summary.json files
    tables: list[int] = field(default_factory=lambda: [4, 9, 10, 11, 12, 13])
    labels: dict[str, str] | None = None  # our model name -> paper model


@dataclass
class GenerationSpec:
    batch_size: int = 8
    max_new_tokens: int = 256


@dataclass
class HumanSpec:
    """The user-oriented human evaluation (Section 4.2, Figure 6)."""

    url: str
    cache: str
    ids_file: str
    responses: str
    sheets: str
    path: Optional[str] = None
    max_per_app: int = 2
    nlp_task_patterns: list[str] = field(default_factory=list)
    input_separator: str = "\n\n"
    generation: GenerationSpec = field(default_factory=GenerationSpec)
    raters: int = 8

    def __post_init__(self):
        if self.raters < 1 or self.max_per_app < 1:
            raise ValueError(f"human.raters={self.raters} and human.max_per_app={self.max_per_app} must be >= 1")


@dataclass
class JudgeSpec:
    template: str
    max_tokens: int = 16
    params: dict[str, Any] = field(default_factory=dict)  # on top of teacher.params
    out_dir: Optional[str] = None  # null: <human.responses>/../judge
    progress: bool = True


@dataclass
class EvaluateSpec:
    lm_eval: LmEvalSpec
    wandb: WandbSpec
    report: ReportSpec
    human: HumanSpec
    judge: JudgeSpec
    eval: SuiteSpec
    mode: str = "lm_eval"
    models: Any = None  # an export, run or multirun folder, a hub id, or a list of them
    name: Optional[str] = None  # one model's result name; None: model_refs.resolve's
    revision: str = "main"
    paper_model: Optional[str] = None
    tasks: Optional[list[str]] = None
    wrapper: str = "alpaca"
    seed: int = 1234
    task_name: str = "evaluate"
    # built where they are used: the judge's teacher (lamini_lm.teachers.build checks it), prices, folders
    teacher: Any = None
    prices: Any = None
    paths: Any = None

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode={self.mode} is not a mode; choose one of {', '.join(MODES)}")
        if self.wrapper not in WRAPPERS:
            raise ValueError(f"wrapper={self.wrapper} is not a wrapper; choose one of {', '.join(WRAPPERS)}")
        if isinstance(self.models, list) and not all(isinstance(m, str) for m in self.models):
            raise ValueError("models must be a folder or hub id, or a list of them")
        if self.name is not None and not self.name.strip():
            raise ValueError("name= must be a name for the model's results, or null for its own")
