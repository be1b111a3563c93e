"""One streaming pass over the records: Table 1 counts, Table 2 MATTR, and seeded samples for the figures.

Nothing grows with the number of rows except the fixed-size samples: counts are per-subset integers,
MATTR keeps W-1 tokens per stream, a sample is a reservoir of k items.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np

from lamini_lm import assets
from lamini_lm.analysis.mattr import MattrStream, Tokenizer
from lamini_lm.errors import UserError
from lamini_lm.subsets import ALL, SUBSETS

FIELDS = ("instruction", "response")
CODES = {s: i for i, s in enumerate(SUBSETS)}  # dense integer code per source, for numpy bincounts


# tokenizers' ByteLevel pre-tokenisation (GPT-2, GPT-Neo, Cerebras-GPT): BPE never merges across these pieces
BYTE_LEVEL_PIECES = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


class TokenCounter:
    """Table 1's token counts: tokens per text with a Hugging Face tokenizer, special tokens not added.

    For a plain byte-level BPE (GPT-2's kind) a text's count is the sum of its pre-token pieces' counts,
    so each distinct piece is tokenized once and remembered: ~4x faster on 2 busy cores, and the same
    numbers. Every batch checks a few texts against the full tokenizer (the first batch all of them).
    """

    def __init__(self, name_or_path: str, piece_cache: bool = True, cache_size: int = 1_000_000):
        from transformers import AutoTokenizer

        self.name = name_or_path
        local = assets.path(name_or_path) if name_or_path in assets.ASSETS else Path(name_or_path).expanduser()
        try:
            self.tok = AutoTokenizer.from_pretrained(str(local) if local.exists() else name_or_path)
        except Exception as e:  # not a folder, not reachable on the Hub
            raise UserError(
                f"analysis.table1.tokenizer: cannot load tokenizer '{name_or_path}' ({type(e).__name__}); "
                "give an offline asset name (gpt2_tokenizer, t5_tokenizer), a tokenizer folder or a cached hub id"
            ) from None
        backend = getattr(self.tok, "backend_tokenizer", None)
        self._encode = getattr(backend, "encode_batch_fast", None) if backend is not None else None
        self._pieces = None
        if piece_cache and self._encode is not None and self._plain_byte_level(backend):
            import regex

            self._pieces = regex.compile(BYTE_LEVEL_PIECES).findall
            self._known: dict[str, int] = {}
            self._cache_size = cache_size
            self._special = [t.content for t in self.tok.added_tokens_decoder.values()]
            self._rng = random.Random(0)
            self._checked = False

    @staticmethod
    def _plain_byte_level(backend) -> bool:
        pre = backend.pre_tokenizer
        return (
            type(pre).__name__ == "ByteLevel" and pre.use_regex and not pre.add_prefix_space
            and backend.normalizer is None and type(backend.model).__name__ == "BPE"
        )

    def _exact(self, texts: list[str]) -> np.ndarray:
        if self._encode is not None:  # the Rust tokenizer straight, without building BatchEncodings
            return np.fromiter((len(e) for e in self._encode(texts, add_special_tokens=False)), np.int64, len(texts))
        ids = self.tok(texts, add_special_tokens=False, return_attention_mask=False)["input_ids"]
        return np.fromiter(map(len, ids), np.int64, len(ids))

    def _by_pieces(self, texts: list[str]) -> np.ndarray:
        known = self._known
        if len(known) > self._cache_size:
            known.clear()
        # an added token written inside a text (e.g. <|endoftext|>) is one token: such texts go whole
        whole = [k for k, t in enumerate(texts) if any(s in t for s in self._special)]
        pieces = [self._pieces(t) for t in texts]
        new = list({p for ps in pieces for p in ps if p not in known})
        if new:
            known.update(zip(new, self._exact(new).tolist()))
        out = np.fromiter((sum(map(known.__getitem__, ps)) for ps in pieces), np.int64, len(texts))
        if whole:
            out[whole] = self._exact([texts[k] for k in whole])
        return out

    def lengths(self, texts: list[str]) -> np.ndarray:
        if self._pieces is None:
            return self._exact(texts)
        counts = self._by_pieces(texts)
        check = range(len(texts)) if not self._checked else self._rng.sample(range(len(texts)), min(32, len(texts)))
        check = list(check)
        exact = self._exact([texts[i] for i in check])
        if not np.array_equal(exact, counts[check]):
            i = check[int(np.argmax(exact != counts[check]))]
            raise UserError(
                f"Table 1 token counts: the piece cache disagrees with tokenizer '{self.name}' on {texts[i][:80]!r}; "
                "set analysis.table1.piece_cache=false"
            )
        self._checked = True
        return counts


class Reservoir:
    """A uniform sample of k items from a stream of unknown length (Algorithm R), seeded."""

    def __init__(self, k: int, seed: str):
        self.k, self.seen, self.items = k, 0, []
        self.rng = random.Random(seed)

    def add(self, item) -> None:
        if self.seen < self.k:
            self.items.append(item)
        else:
            j = self.rng.randrange(self.seen + 1)
            if j < self.k:
                self.items[j] = item
        self.seen += 1


class DatasetStats:
    """Feed record batches to ``add``; read ``samples``, ``in_tokens``, ``words`` and ``streams`` after."""

    def __init__(
        self,
        counter: TokenCounter | None,
        word_tokenizer: Tokenizer | None,
        window: int = 50,
        subsets: list[str] | None = None,
        samples: dict[str, tuple[int, list[str]]] | None = None,
        seed: int = 0,
    ):
        """``counter`` None skips Table 1's token counts, ``word_tokenizer`` None skips MATTR; ``subsets`` keeps only
        those; ``samples`` maps a sample name to (k, subsets to sample from)."""
        self.counter, self.word_tokenizer = counter, word_tokenizer
        self.keep = np.zeros(len(SUBSETS), bool)
        self.keep[[CODES[s] for s in (subsets or SUBSETS)]] = True
        self.samples = np.zeros(len(SUBSETS), np.int64)
        self.tokens = {f: np.zeros(len(SUBSETS), np.int64) for f in FIELDS}
        self.words = {f: np.zeros(len(SUBSETS), np.int64) for f in FIELDS}
        self.streams = {f: {s: MattrStream(window) for s in [*SUBSETS, ALL]} for f in FIELDS}
        self.reservoirs = {
            name: {s: Reservoir(k, f"{seed}/{name}/{s}") for s in srcs} for name, (k, srcs) in (samples or {}).items()
        }
        self.rows_skipped = 0

    def add(self, batch: list[dict]) -> None:
        codes = np.fromiter((CODES[r["instruction_source"]] for r in batch), np.int64, len(batch))
        if not self.keep[codes].all():
            mask = self.keep[codes]
            self.rows_skipped += int((~mask).sum())
            batch = [r for r, k in zip(batch, mask) if k]
            codes = codes[mask]
        if not batch:
            return
        n = len(SUBSETS)
        self.samples += np.bincount(codes, minlength=n)
        present = np.unique(codes)
        for f in FIELDS:
            texts = [r[f] for r in batch]
            if self.counter is not None:
                self.tokens[f] += np.bincount(codes, weights=self.counter.lengths(texts), minlength=n).astype(np.int64)
            if self.word_tokenizer is not None:
                ids, counts = self.word_tokenizer.ids(texts)
                self.words[f] += np.bincount(codes, weights=counts, minlength=n).astype(np.int64)
                self.streams[f][ALL].update(ids)
                token_codes = np.repeat(codes, counts)
                src = list(SUBSETS)
                for c in present:
                    self.streams[f][src[c]].update(ids if len(present) == 1 else ids[token_codes == c])
        for res in self.reservoirs.values():
            for r in batch:
                if (box := res.get(r["instruction_source"])) is not None:
                    box.add(r)

    def consume(self, batches) -> DatasetStats:
        for b in batches:
            self.add(b)
        return self

    def present(self) -> list[str]:
        """Subsets with at least one row, in Table 1's order."""
        return [s for s, c in zip(SUBSETS, self.samples) if c]

    def require(self, subsets: list[str], where: str) -> None:
        """One clear error for a subset the user asked for that has no rows."""
        for s in subsets:
            if not self.samples[CODES[s]]:
                raise UserError(
                    f"{where}: subset '{s}' is empty in the input (it has {', '.join(self.present()) or 'no rows'})"
                )
