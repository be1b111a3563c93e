"""Exact and near-duplicate removal that stays sub-quadratic: MinHash LSH candidates only."""

from __future__ import annotations

import re
from dataclasses import dataclass

from lamini_lm.config import BadValue

_WORD = re.compile(r"\w+")


@dataclass
class DedupSpec:
    """conf/dedup/: exact, then near-duplicate removal (MinHash LSH over word shingles)."""

    exact: bool = True
    near: bool = True
    threshold: float = 0.7  # Jaccard similarity from which an instruction is a near-duplicate
    num_perm: int = 64  # MinHash permutations
    shingle: int = 2  # words per shingle

    def __post_init__(self):
        if not 0 < self.threshold <= 1:
            raise BadValue("threshold", f"{self.threshold} must be in (0, 1]")
        if self.num_perm < 2:
            raise BadValue("num_perm", f"{self.num_perm} must be at least 2")
        if self.shingle < 1:
            raise BadValue("shingle", f"{self.shingle} must be at least 1")


def normalise(text: str) -> str:
    return " ".join(text.lower().split())


class Deduper:
    """Feed instructions in a fixed order; `check` returns a drop reason or None (and remembers it)."""

    def __init__(self, spec: DedupSpec):
        self.exact = spec.exact
        self.seen: set[str] = set()
        self.shingle = spec.shingle
        self.num_perm = spec.num_perm
        self.lsh = None
        self.count = 0
        if spec.near:
            from datasketch import MinHashLSH  # heavy (numpy, scipy): imported when deduplication starts

            self.lsh = MinHashLSH(threshold=spec.threshold, num_perm=self.num_perm)

    def _minhash(self, text: str):
        from datasketch import MinHash

        words = _WORD.findall(text.lower())
        k = self.shingle
        grams = {" ".join(words[i : i + k]) for i in range(max(1, len(words) - k + 1))}
        m = MinHash(num_perm=self.num_perm)
        m.update_batch([g.encode("utf-8") for g in grams])
        return m

    def check(self, text: str) -> str | None:
        key = normalise(text)
        if self.exact:
            if key in self.seen:
                return "duplicate"
            self.seen.add(key)
        if self.lsh is not None:
            m = self._minhash(text)
            if self.lsh.query(m):
                return "near_duplicate"
            self.lsh.insert(str(self.count), m)
        self.count += 1
        return None
