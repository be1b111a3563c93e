"""train.py's whole config, typed and checked once at its entry (lamini_lm.config.typed): every later
function gets the node it needs as a dataclass, and a wrong key or value stops the run with one line."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from lamini_lm.config import BadValue, check_wandb_mode, hub_repo
from lamini_lm.data.spec import DataSpec
from lamini_lm.models.spec import ModelSpec


@dataclass
class OptimSpec:
    """AdamW and a transformers schedule (conf/optim/)."""

    lr: float
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    weight_decay: float = 0.0
    scheduler: str = "linear"  # any name transformers.get_scheduler knows
    warmup_ratio: float = 0.0

    def __post_init__(self):
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas={self.betas} must be two numbers in [0, 1)")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"warmup_ratio={self.warmup_ratio} must be in [0, 1)")


@dataclass
class ExportSpec:
    enabled: bool = True
    push_to_hub: Any = None  # a Hub model repo id (lamini_lm.config.hub_repo)
    private: bool = True

    def __post_init__(self):
        self.push_to_hub = hub_repo(self.push_to_hub)
        if self.push_to_hub and not self.enabled:
            raise ValueError("export.push_to_hub needs export.enabled=true")


@dataclass
class PlanSpec:
    """The planner's settings (conf/plan/default.yaml): the `plan` keys of train.py's config, read by the preflight
    and by python -m lamini_lm.training.plan."""

    preflight: bool  # a GPU run checks the planned peak against its device first (training/preflight.py)
    memory_gb: float
    reserve_gb: float
    length: int
    target_length: int
    micro_batches: list[int]
    attention: str  # checked against the kernels by activations.kernel
    tokens_per_s: Optional[float]
    measure: bool
    measure_micro_batch: int
    measure_length: int
    measure_steps: int
    prompt_tokens: dict[str, int]
    padding: float
    json: bool

    def __post_init__(self):
        for key in ("memory_gb", "length", "target_length", "measure_micro_batch", "measure_length", "measure_steps"):
            if getattr(self, key) <= 0:
                raise BadValue(key, f"{getattr(self, key)}: give a positive number")
        if not 0 <= self.reserve_gb < self.memory_gb:
            raise BadValue("reserve_gb", f"{self.reserve_gb} must be at least 0 and below plan.memory_gb={self.memory_gb}")
        if any(b < 1 for b in self.micro_batches):
            raise BadValue("micro_batches", f"{self.micro_batches}: give positive whole numbers")
        if self.tokens_per_s is not None and self.tokens_per_s <= 0:
            raise BadValue("tokens_per_s", f"{self.tokens_per_s}: give a positive number of tokens/s per device")
        if not 0 <= self.padding < 1:
            raise BadValue("padding", f"{self.padding}: give the padding share, at least 0 and below 1")


@dataclass
class TrainSpec:
    model: ModelSpec
    data: DataSpec
    optim: OptimSpec
    plan: PlanSpec
    global_batch_size: int  # examples per optimizer step, whatever the hardware
    # examples per device per forward/backward; None: one pass per device per step (data/batching.py micro_batch)
    micro_batch_size: Optional[int] = None
    activation_checkpointing: bool = False  # each block recomputes its activations in backward (models/backbone.py)
    seed: int = 42
    ckpt_path: Optional[str] = "auto"
    export: ExportSpec = field(default_factory=lambda: ExportSpec())
    allow_recipe_change: bool = False  # resume although what is optimised changed (training/recipe.py)
    compile: bool = False  # torch.compile each transformer block (models/backbone.py compile_blocks)
    fast_gelu: bool = True  # gelu_new as torch's one-kernel tanh GELU (models/backbone.py fuse_gelu)
    cpu_memory_cache: bool = True  # freed CPU memory kept for the next micro-batch (training/cpu_heap.py)
    task_name: str = "train"
    # instantiated by Lightning/Hydra as they are: their own constructors check them
    objective: Any = None  # {_target_: a lamini_lm.training.objectives Objective, its settings} (conf/objective/)
    trainer: Any = None
    logger: Any = None
    callbacks: Any = None
    paths: Any = None

    def __post_init__(self):
        wandb = (self.logger or {}).get("wandb")
        if wandb and "mode" in wandb:  # the logger itself is built by Lightning, after the heavy imports
            check_wandb_mode(wandb["mode"], "logger.wandb.mode")
        if self.global_batch_size < 1 or (self.micro_batch_size is not None and self.micro_batch_size < 1):
            raise ValueError("global_batch_size and micro_batch_size must be positive")
