"""Decontamination: drop instructions that share a word n-gram with a local evaluation set."""

from __future__ import annotations

import re

from lamini_lm.errors import UserError

_WORD = re.compile(r"\w+")


def ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    words = _WORD.findall(text.lower())
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


class Decontaminator:
    def __init__(self, dcfg, texts: list[str] | None = None):
        self.n = int(dcfg.n or 0)
        self.index: set[tuple[str, ...]] = set()
        self.n_texts = 0  # evaluation texts indexed
        if not self.n:
            return
        for t in texts if texts is not None else _eval_texts(dcfg):
            self.index |= ngrams(t, self.n)
            self.n_texts += 1

    def contaminated(self, text: str) -> bool:
        return bool(self.n) and not self.index.isdisjoint(ngrams(text, self.n))


def _eval_texts(dcfg) -> list[str]:
    from datasets import load_from_disk

    from lamini_lm import assets

    root = assets.path(dcfg.asset)
    texts = []
    for rel, fields in dcfg.sets.items():
        folder = root / rel
        if not folder.exists():
            raise UserError(f"decontam.sets names {rel}, which is not in {root}")
        ds = load_from_disk(str(folder))
        for f in fields:
            if f not in ds.column_names:
                raise UserError(f"decontam.sets.{rel}: no column '{f}' (has {', '.join(ds.column_names)})")
            texts.extend(t for t in ds[f] if isinstance(t, str))
    return texts
