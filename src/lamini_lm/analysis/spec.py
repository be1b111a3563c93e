"""stage=analyze's config (conf/analysis/ and the two top-level keys it reads), typed and checked once at its entry
(lamini_lm.analysis.run) with lamini_lm.config.typed: a wrong key or value is one line naming it, before the input
is read. Subset names come out as the released names, in Table 1's order."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from lamini_lm.analysis.mattr import DEFAULT_PATTERN
from lamini_lm.config import BadValue, check_wandb_mode
from lamini_lm.subsets import ordered, resolve

OUTPUTS = ("table1", "table2", "figure3", "rating_sheet", "figure4")
GRADIENTS = ("auto", "fft", "bh")  # openTSNE's negative_gradient_method
READS_RECORDS = ("table1", "table2", "figure3", "rating_sheet")  # the outputs of the one pass over the input


def _at_least_1(spec, *keys: str) -> None:
    for key in keys:
        value = getattr(spec, key)
        if value is not None and value < 1:
            raise BadValue(key, f"{value} must be at least 1")


@dataclass
class Table1Spec:
    tokenizer: str = "gpt2_tokenizer"  # an offline asset name, a tokenizer folder or a hub id
    piece_cache: bool = True  # byte-level BPE: count each distinct pre-token piece once (checked against the full)


@dataclass
class Table2Spec:
    window: int = 50  # MATTR's window (paper §3.3.2)
    token_pattern: str = DEFAULT_PATTERN  # a word, for MATTR
    lowercase: bool = True

    def __post_init__(self):
        _at_least_1(self, "window")
        try:
            re.compile(self.token_pattern)
        except re.error as e:
            raise BadValue("token_pattern", f"not a regular expression ({e})") from None


@dataclass
class Figure3Spec:
    models: list[str]  # sentence-transformers models, the first that loads is used
    cache_dir: str  # embeddings, per model and text
    sample_size: int = 50_000  # instructions per subset
    pairs: Optional[list[list[str]]] = None  # null: the paper's pairs the input has; names come out released
    batch_size: int = 64
    perplexity: float = 30.0
    metric: str = "cosine"  # openTSNE's neighbour metric
    gradient: str = "auto"  # openTSNE's negative_gradient_method: fft, bh, or auto (fft from 10K points)
    threads: Optional[int] = 1  # OpenMP/BLAS threads for t-SNE; null: all cores

    def __post_init__(self):
        _at_least_1(self, "sample_size", "batch_size", "threads")
        if self.gradient not in GRADIENTS:
            raise BadValue("gradient", f"{self.gradient!r} is not one of {', '.join(GRADIENTS)}")
        if self.pairs is not None:
            for p in self.pairs:
                if len(p) != 2:
                    raise BadValue("pairs", f"{list(p)} is not a pair of subsets")
            try:
                self.pairs = [resolve(p) for p in self.pairs]
            except ValueError as e:
                raise BadValue("pairs", str(e)) from None


@dataclass
class RatingSpec:
    per_subset: int = 20  # paper §3.3.3: 20 random examples per subset
    blind: bool = True  # the rating page does not show an item's subset
    filled: Optional[str] = None  # a filled rating sheet (.csv) to plot as Figure 4

    def __post_init__(self):
        _at_least_1(self, "per_subset")
        if self.filled is not None and not Path(self.filled).expanduser().is_file():
            raise BadValue("filled", f"{self.filled} does not exist")


@dataclass
class WandbSpec:
    enabled: bool = True
    project: str = "lamini-lm"
    entity: Optional[str] = None
    name: Optional[str] = None
    mode: str = "offline"  # online | offline | disabled (default: lamini_lm.config.wandb_mode)

    def __post_init__(self):
        check_wandb_mode(self.mode)


@dataclass
class AnalysisSpec:
    """conf/analysis/."""

    input: str  # a record file, a generate run folder, a save_to_disk folder or a hub dataset id
    table1: Table1Spec
    table2: Table2Spec
    figure3: Figure3Spec
    rating: RatingSpec
    wandb: WandbSpec
    split: str = "train"
    limit: Optional[int] = None  # the first N rows only
    subsets: Any = None  # null: every subset present; or a name or list of names (released or paper names)
    outputs: Optional[list[str]] = field(default_factory=lambda: list(READS_RECORDS))  # figure4: see rating.filled
    compare_paper: Any = "auto"  # auto: with the released dataset as input; true | false
    batch_size: int = 2048  # records per batch of the one streaming pass
    subdir: str = "analysis"

    def __post_init__(self):
        _at_least_1(self, "limit", "batch_size")
        self.outputs = list(self.outputs or [])
        for o in self.outputs:
            if o not in OUTPUTS:
                raise BadValue("outputs", f"unknown output '{o}'; choose from {', '.join(OUTPUTS)}")
        if self.rating.filled and "figure4" not in self.outputs:
            self.outputs.append("figure4")
        if "figure4" in self.outputs and not self.rating.filled:
            raise BadValue("outputs", "has figure4 but no ratings: set analysis.rating.filled=<filled sheet .csv>")
        if self.compare_paper not in ("auto", True, False):
            raise BadValue("compare_paper", f"'{self.compare_paper}' is not one of auto, true, false")
        if self.subsets is not None:
            try:
                self.subsets = ordered(resolve(self.subsets))
            except ValueError as e:
                raise BadValue("subsets", str(e)) from None


@dataclass
class AnalyzeSpec:
    """What stage=analyze reads of generate.py's config."""

    analysis: AnalysisSpec
    out_dir: str  # outputs go to <out_dir>/<analysis.subdir>/
    seed: int = 42  # the samples of Figure 3 and of the rating sheet, the rating sheet's order, t-SNE
