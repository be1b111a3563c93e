"""The training data's config (conf/data/*.yaml), typed and checked once at train.py's entry."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from lamini_lm.data.fields import TRAINING_SUBSETS, Fields

PACKINGS = ("padding_free", "padded")


@dataclass
class DataSpec:
    reader: Any  # {_target_: lamini_lm.data.readers.LocalFile | HubDataset, ...}
    val_size: Any  # a fraction in (0, 1) or a number of examples
    max_source_length: int
    max_target_length: int
    mask_prompt: bool = True
    num_workers: int = 0
    path: Optional[str] = None  # a local file (data=jsonl)
    name: Optional[str] = None  # a hub dataset id (data=hub)
    split: str = "train"  # the hub dataset's split
    fields: Fields = field(default_factory=Fields)
    subsets: Optional[list[str]] = None
    limit: Optional[int] = None
    packing: str = "padded"  # padded | padding_free (under a varlen attention, models/attention.py)

    def __post_init__(self):
        v = self.val_size
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (isinstance(v, float) and not 0 < v < 1) or v <= 0:
            raise ValueError(f"val_size={v!r} must be a fraction in (0, 1) or a positive number of examples")
        if self.max_source_length < 1 or self.max_target_length < 2:
            raise ValueError("max_source_length must be >= 1 and max_target_length >= 2 (the response and its EOS)")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit={self.limit} must be a positive number of records (or null for all)")
        unknown = [s for s in self.subsets or () if s not in TRAINING_SUBSETS]
        if unknown:
            raise ValueError(f"subsets has unknown value(s) {unknown}; known: {', '.join(TRAINING_SUBSETS)}")
        if self.packing not in PACKINGS:
            raise ValueError(f"packing={self.packing} is not one of {', '.join(PACKINGS)}")
        if self.num_workers < 0:
            raise ValueError("num_workers must be >= 0")
