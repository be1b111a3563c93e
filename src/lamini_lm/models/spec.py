"""A student's config (conf/model/*.yaml), typed and checked once at train.py's entry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from lamini_lm.models.size import parse_size


@dataclass
class ModelSpec:
    name: str
    family: Any  # {_target_: a lamini_lm.models.families.Family class}
    lamini_name: str  # Table 3's name, e.g. LaMini-GPT-124M
    params: str  # the size in that name, checked against the model (models/size.py)
    lr: float
    tokenizer: str  # a hub id, a folder or an offline asset
    fsdp_block: str  # the transformer block class FSDP wraps
    micro_batch_size: int
    hub_id: Optional[str] = None
    revision: Optional[str] = None
    prompt_style: Optional[str] = None  # null: the family's default
    architecture: Optional[dict[str, Any]] = None  # random init from a transformers config instead of hub_id

    def __post_init__(self):
        parse_size(self.params)
        if not (self.hub_id or self.architecture):
            raise ValueError("has neither hub_id nor architecture: set one (a hub id or folder, or a transformers "
                             "config to build randomly initialised)")
        if self.architecture is not None and "model_type" not in self.architecture:
            raise ValueError("architecture needs a model_type (gpt2, t5, llama, ...)")
        if self.lr <= 0 or self.micro_batch_size <= 0:
            raise ValueError("lr and micro_batch_size must be positive")
