"""A student's config (conf/model/*.yaml), typed and checked once at train.py's entry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from lamini_lm.models.size import PlannerSpec, parse_size


INITS = ("pretrained", "random")


@dataclass
class ModelSpec:
    name: str
    family: Any  # {_target_: a lamini_lm.models.families.Family class}
    lamini_name: str  # Table 3's name, e.g. LaMini-GPT-124M
    params: str  # the size in that name, checked against the model (models/size.py)
    lr: float
    tokenizer: str  # a hub id, a folder or an offline asset
    fsdp_block: str  # the transformer block class FSDP wraps
    micro_batch_size: int  # on the paper's hardware (experiment=lamini_paper)
    hub_id: Optional[str] = None
    revision: Optional[str] = None
    prompt_style: Optional[str] = None  # null: the family's default
    # the hub model's architecture (its config.json's essential values: model_type + fields); built with random
    # weights when init is random, and the shape the memory planner and the meta-device tests read
    architecture: Optional[dict[str, Any]] = None
    init: str = "pretrained"  # pretrained: the weights of hub_id; random: built from architecture
    gguf_file: Optional[str] = None  # a GGUF file inside hub_id (a folder): transformers dequantizes it to fp32
    attn_implementation: Optional[str] = None  # transformers' attn_implementation; null: its default
    activation_checkpointing: bool = False  # on the paper's hardware (experiment=lamini_paper)
    # what the planner reads of the architecture (conf/model/base/<model_type>.yaml declares it; models/size.py)
    planner: Optional[PlannerSpec] = None

    def __post_init__(self):
        parse_size(self.params)
        if self.init not in INITS:
            raise ValueError(f"model.init={self.init} is not one of {', '.join(INITS)}")
        if self.init == "random" and not self.architecture:
            raise ValueError("model.init=random needs model.architecture (a transformers config: model_type + fields)")
        if self.init == "pretrained" and not self.hub_id:
            raise ValueError("model.init=pretrained needs model.hub_id (a hub id or folder); or set model.init=random "
                             "to build model.architecture with random weights")
        if self.architecture is not None and "model_type" not in self.architecture:
            raise ValueError("architecture needs a model_type (gpt2, t5, llama, ...)")
        if self.lr <= 0 or self.micro_batch_size <= 0:
            raise ValueError("lr and micro_batch_size must be positive")
