"""Moving-Average Type-Token Ratio (Covington and McFall, 2010), streamed over a concatenated token stream.

Definition used for Table 2 (the paper gives only the measure and the window, 50):
- tokens: the lowercased text split into words by ``token_pattern`` (by default runs of letters, an
  inner apostrophe kept: "Don't stop, 2 cats!" -> don't, stop, cats; digits and punctuation dropped).
- one stream per subset (and one for D_ALL): the tokens of its texts concatenated in input order, so a
  window runs across text boundaries and a text shorter than the window is simply part of the stream.
  An average of per-text ratios would put short instructions above 0.9; Table 2 prints 72-78.
- MATTR = mean over every window position i = 0..N-W of (distinct tokens in stream[i:i+W]) / W.
  A stream shorter than the window (N < W) has no full window: its MATTR is its plain TTR, types / N.

Streaming: the token at position j is the first of its type in window i exactly when
max(prev_j + 1, j - W + 1) <= i <= min(j, N - W), where prev_j is the last earlier position of the same
token. So the sum over windows of distinct counts is a sum over tokens of window counts, computed one
chunk at a time with numpy (only the last W - 1 tokens are carried over: an earlier occurrence is out of
every window that holds j). Memory is O(chunk + W), whatever the number of texts.
"""

from __future__ import annotations

import re

import numpy as np

DEFAULT_PATTERN = r"[^\W\d_]+(?:['’][^\W\d_]+)*"


class Tokenizer:
    """Text -> word ids. Ids are Python's 64-bit string hashes: no vocabulary held in memory; two
    different words share an id with probability ~types²/2^64 (about 1e-8 for a million types)."""

    def __init__(self, pattern: str = DEFAULT_PATTERN, lowercase: bool = True):
        self.findall = re.compile(pattern).findall
        self.lowercase = lowercase

    def words(self, text: str) -> list[str]:
        return self.findall(text.lower() if self.lowercase else text)

    def ids(self, texts) -> tuple[np.ndarray, np.ndarray]:
        """Flat word ids of all texts in order, and the number of words of each text."""
        words: list[str] = []
        counts = np.empty(len(texts), dtype=np.int64)
        for k, t in enumerate(texts):
            w = self.words(t)
            counts[k] = len(w)
            words.extend(w)
        return np.fromiter(map(hash, words), dtype=np.int64, count=len(words)), counts


class MattrStream:
    """Feed token-id chunks in stream order with ``update``; ``result`` gives MATTR (a fraction)."""

    def __init__(self, window: int = 50):
        if window < 1:
            raise ValueError("window must be >= 1")
        self.window = window
        self.n = 0  # tokens seen
        self.total = 0  # sum over tokens of the windows (starting at or before the token) it counts in
        self.tail = np.empty(0, np.int64)  # the last window-1 ids
        self.tail_lo = np.empty(0, np.int64)  # their first window start

    def update(self, ids: np.ndarray) -> None:
        if len(ids) == 0:
            return
        w = self.window
        ext = np.concatenate([self.tail, np.asarray(ids, dtype=np.int64)])
        m = len(self.tail)
        base = self.n - m  # stream position of ext[0]
        order = np.argsort(ext, kind="stable")
        same = ext[order[1:]] == ext[order[:-1]]
        prev = np.full(len(ext), np.iinfo(np.int64).min // 2)
        prev[order[1:][same]] = order[:-1][same] + base
        j = np.arange(base + m, base + len(ext))
        lo = np.maximum(np.maximum(prev[m:] + 1, j - w + 1), 0)
        self.total += int((j - lo + 1).sum())
        self.n += len(ids)
        self.tail = ext[max(len(ext) - (w - 1), 0):]
        self.tail_lo = np.concatenate([self.tail_lo, lo])[len(self.tail_lo) + len(lo) - len(self.tail):]

    @property
    def windows(self) -> int:
        return max(self.n - self.window + 1, 0)

    def result(self) -> float | None:
        """MATTR in [0, 1]; TTR when the stream is shorter than the window; None when empty."""
        n, w = self.n, self.window
        if n == 0:
            return None
        if n < w:
            return len(np.unique(self.tail)) / n
        # the last w-1 tokens were credited with windows starting after N - W, which do not exist
        j = np.arange(n - len(self.tail), n)
        credited = j - self.tail_lo + 1
        real = np.maximum(np.minimum(j, n - w) - self.tail_lo + 1, 0)
        return (self.total - int((credited - real).sum())) / (w * (n - w + 1))


def mattr(tokens, window: int = 50) -> float | None:
    """MATTR of one token sequence (any hashable tokens); the reference for tests and small inputs."""
    s = MattrStream(window)
    s.update(np.fromiter(map(hash, tokens), dtype=np.int64))
    return s.result()
