"""Exact and near-duplicate removal that stays sub-quadratic: MinHash LSH candidates only."""

from __future__ import annotations

import re

_WORD = re.compile(r"\w+")


def normalise(text: str) -> str:
    return " ".join(text.lower().split())


class Deduper:
    """Feed instructions in a fixed order; `check` returns a drop reason or None (and remembers it)."""

    def __init__(self, dcfg):
        self.exact = bool(dcfg.exact)
        self.near = bool(dcfg.near)
        self.seen: set[str] = set()
        self.shingle = int(dcfg.shingle)
        self.num_perm = int(dcfg.num_perm)
        self.lsh = None
        self.count = 0
        if self.near:
            from datasketch import MinHashLSH

            self.lsh = MinHashLSH(threshold=float(dcfg.threshold), num_perm=self.num_perm)

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
