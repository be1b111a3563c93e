"""The teacher's distribution over a response: its top-k alternatives per response token, as a reply in the
request store carries them and as D_ALL's sidecar (``d_all.logprobs.parquet``) holds them for training.

Tokens are kept as bytes, not ids: an API teacher names its tokens only by their text (the OpenAI API's
``bytes`` field), and a student of another tokenizer aligns with them by offsets into the response's text.
``b"".join(tokens)`` is the reply's text; a record's response is that text stripped, so ``start`` says where
the response begins in the joined tokens (the first token may carry a stripped space).

The sidecar is one Parquet file, a row per record id, with the distinct token strings of the whole file in
one table of its key-value metadata: per response token it stores the sampled token's index (int32), k
alternatives' indices (int32, -1 where a teacher returned fewer than k) and their log-probabilities (float16,
natural log). ~6 bytes x (k + 1) per token before Parquet's compression.
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import numpy as np

from lamini_lm.errors import UserError
from lamini_lm.files import replacing

SIDECAR = "d_all.logprobs.parquet"  # beside d_all.jsonl / d_all.parquet
_META = b"lamini_lm.logprobs"  # the schema metadata key of the token table and the teacher's name
FORMAT = 1


@dataclass
class TokenLogprobs:
    """One response's sampled tokens and, per token, the teacher's k most likely tokens with their log-probs."""

    tokens: list[bytes]  # n sampled tokens, in order
    top_tokens: list[list[bytes]]  # n lists of at most k alternatives, most likely first
    top_logprobs: np.ndarray  # float32 [n, k]; -inf where a list holds fewer than k
    start: int = 0  # byte offset in b"".join(tokens) where the record's response begins

    def __post_init__(self) -> None:
        self.top_logprobs = np.asarray(self.top_logprobs, dtype=np.float32).reshape(len(self.tokens), -1)
        if len(self.top_tokens) != len(self.tokens):
            raise ValueError(f"{len(self.tokens)} tokens but {len(self.top_tokens)} lists of alternatives")

    @property
    def k(self) -> int:
        return self.top_logprobs.shape[1]

    def text(self) -> bytes:
        return b"".join(self.tokens)

    def byte_spans(self) -> list[tuple[int, int]]:
        """Each token's [start, end) in the response's UTF-8 bytes (the first may start below 0: a stripped
        space; the last may end past the response: stripped trailing whitespace)."""
        ends = np.cumsum([len(t) for t in self.tokens]) - self.start
        return [(int(e) - len(t), int(e)) for t, e in zip(self.tokens, ends)]

    def trimmed(self, response: str) -> TokenLogprobs:
        """The tokens that cover ``response``, which must be the joined text with only whitespace stripped
        (what generate's assembly stores); ``start`` then points at its first byte."""
        text, want = self.text(), response.encode("utf-8")
        at = text.find(want)
        if at < 0 or text[:at].strip() or text[at + len(want):].strip():
            raise ValueError("the response is not the teacher's tokens with only whitespace stripped")
        bounds = np.cumsum([0] + [len(t) for t in self.tokens])  # in the joined text
        keep = [i for i in range(len(self.tokens)) if bounds[i + 1] > at and bounds[i] < at + len(want)]
        if not keep:
            return TokenLogprobs([], [], np.zeros((0, self.k), np.float32))
        start = at - int(bounds[keep[0]])
        return TokenLogprobs([self.tokens[i] for i in keep], [self.top_tokens[i] for i in keep],
                             self.top_logprobs[keep], start)

    # -- in a reply of the request store: one compressed field (a store line holds no JSON float per alternative) --
    def to_json(self) -> dict:
        """The reply's form in a request-store line: its distinct tokens (lengths, then bytes) and, as indices into
        them, the sampled tokens and the alternatives (int16 where the reply names fewer than 32k tokens), then the
        float16 log-probs, zlib-compressed in one base64 field: ~120 bytes a response token at k = 20 (docs/
        generate.md), half of the separate base64 fields of the first format (still read)."""
        vocab, index = _vocab([self.tokens, *self.top_tokens])
        ids, top = _indices(self, index)
        width = np.int16 if len(vocab) < 2 ** 15 else np.int32
        raw = b"".join([np.array([len(v) for v in vocab], np.uint16).tobytes(), *vocab, ids.astype(width).tobytes(),
                        top.astype(width).tobytes(), self.top_logprobs.astype(np.float16).tobytes()])
        return {"k": self.k, "start": self.start, "n": len(self.tokens), "vocab": len(vocab),
                "index": np.dtype(width).name, "zlib": _b64(zlib.compress(raw, 6))}

    @classmethod
    def from_json(cls, d: dict) -> TokenLogprobs:
        if "zlib" not in d:  # the first format: separate base64 fields, int32 indices (stores written before)
            vocab = [base64.b64decode(t) for t in d["vocab"]]
            ids = np.frombuffer(base64.b64decode(d["tokens"]), np.int32)
            top = np.frombuffer(base64.b64decode(d["top"]), np.int32).reshape(len(ids), d["k"])
            lp = np.frombuffer(base64.b64decode(d["logprobs"]), np.float16).reshape(len(ids), d["k"])
            return _decoded(vocab, ids, top, lp, d.get("start", 0))
        raw, n, k, width = zlib.decompress(base64.b64decode(d["zlib"])), d["n"], d["k"], np.dtype(d["index"])
        lengths = np.frombuffer(raw, np.uint16, d["vocab"])
        at = 2 * len(lengths)
        vocab = []
        for size in lengths.tolist():
            vocab.append(raw[at:at + size])
            at += size
        ids = np.frombuffer(raw, width, n, at)
        top = np.frombuffer(raw, width, n * k, at + n * width.itemsize).reshape(n, k)
        lp = np.frombuffer(raw, np.float16, n * k, at + n * (k + 1) * width.itemsize).reshape(n, k)
        return _decoded(vocab, ids.astype(np.int32), top.astype(np.int32), lp, d["start"])


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def _vocab(lists: Iterable[list[bytes]]) -> tuple[list[bytes], dict[bytes, int]]:
    index: dict[bytes, int] = {}
    for tokens in lists:
        for t in tokens:
            index.setdefault(t, len(index))
    return list(index), index


def _indices(t: TokenLogprobs, index: dict[bytes, int]) -> tuple[np.ndarray, np.ndarray]:
    ids = np.array([index[x] for x in t.tokens], dtype=np.int32)
    top = np.full((len(t.tokens), t.k), -1, dtype=np.int32)
    for i, alts in enumerate(t.top_tokens):
        top[i, : len(alts)] = [index[x] for x in alts]
    return ids, top


def _decoded(vocab: list[bytes], ids: np.ndarray, top: np.ndarray, lp: np.ndarray, start: int) -> TokenLogprobs:
    lp = lp.astype(np.float32)
    lp[top < 0] = -np.inf
    return TokenLogprobs([vocab[i] for i in ids], [[vocab[j] for j in row if j >= 0] for row in top], lp, start)


# -- D_ALL's sidecar ---------------------------------------------------------------------------------------------
ROW_GROUP = 10_000  # records per Parquet row group: the writer holds one group's columns at a time


def write_sidecar(path: str | Path, items: Iterable[tuple[str, TokenLogprobs]], teacher: str) -> dict:
    """Write ``(record id, logprobs)`` pairs as the sidecar, whole or not at all, one row group at a time (items
    may be a generator: D_ALL's 2.58M responses never sit in memory together); returns its size in bytes and
    response tokens. Every record has the first row group's k (a teacher's k); fewer alternatives are padded."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("id", pa.string()), ("start", pa.int32()), ("tokens", pa.list_(pa.int32())),
                        ("top_tokens", pa.list_(pa.int32())), ("top_logprobs", pa.list_(pa.float16()))])
    index: dict[bytes, int] = {}  # the whole file's token table, grown as the groups are written
    k, n_tokens, n_records = None, 0, 0
    it = iter(items)
    with replacing(path) as tmp:
        # measured on SmolLM2's top 20 (docs/generate.md): token indices and float16 log-probs barely repeat, so a
        # dictionary only costs; zstd level 9 writes ~10% less than its default 3 at ~1.5x the time
        writer = pq.ParquetWriter(tmp, schema, compression="zstd", compression_level=9, use_dictionary=False)
        try:
            while chunk := list(islice(it, ROW_GROUP)):
                k = max(t.k for _, t in chunk) if k is None else k
                writer.write_table(_row_group(chunk, k, index, schema))
                n_tokens += sum(len(t.tokens) for _, t in chunk)
                n_records += len(chunk)
            meta = {"format": FORMAT, "teacher": teacher, "k": k or 0, "vocab": [_b64(v) for v in index]}
            writer.add_key_value_metadata({_META.decode(): json.dumps(meta)})
        finally:
            writer.close()
    size = Path(path).stat().st_size
    return {"bytes": size, "records": n_records, "response_tokens": n_tokens,
            "bytes_per_token": size / max(n_tokens, 1), "k": k or 0}


def _row_group(chunk: list[tuple[str, TokenLogprobs]], k: int, index: dict[bytes, int], schema):
    import pyarrow as pa

    ids_col, top_col, lp_col, start_col = [], [], [], []
    for rid, t in chunk:
        if t.k > k:
            raise ValueError(f"record {rid} has {t.k} alternatives per token, the sidecar's first records {k}")
        for tokens in (t.tokens, *t.top_tokens):
            for x in tokens:
                index.setdefault(x, len(index))
        ids, top = _indices(t, index)
        top = np.pad(top, ((0, 0), (0, k - t.k)), constant_values=-1)
        lp = np.pad(t.top_logprobs, ((0, 0), (0, k - t.k)), constant_values=-np.inf)
        ids_col.append(ids)
        top_col.append(top.reshape(-1))
        lp_col.append(lp.astype(np.float16).reshape(-1))
        start_col.append(t.start)
    return pa.table({
        "id": pa.array([rid for rid, _ in chunk], pa.string()),
        "start": pa.array(start_col, pa.int32()),
        "tokens": pa.array(ids_col, pa.list_(pa.int32())),
        "top_tokens": pa.array(top_col, pa.list_(pa.int32())),
        "top_logprobs": pa.array(lp_col, pa.list_(pa.float16())),
    }, schema=schema)


class Sidecar:
    """A D_ALL sidecar read back: ``sidecar[record_id]`` is that record's TokenLogprobs.

    Only the record ids are read up front; a record's row group (ROW_GROUP records) is read when one of its records
    is asked for and kept until another group is: reading in D_ALL's order (as training's tokenisation does) reads
    each group once, and memory holds one group whatever the file's size (2.58M responses at k = 20 are ~30 GB
    decompressed)."""

    def __init__(self, path: str | Path):
        import pyarrow.parquet as pq

        self.path = Path(path)
        if not self.path.is_file():
            raise UserError(f"{self.path}: no teacher log-probs here; generate D_ALL with teacher.logprobs=<k> "
                            "(or point objective.logprobs at the sidecar)")
        self._file = pq.ParquetFile(self.path)
        raw = (self._file.metadata.metadata or {}).get(_META)  # the file's key-value metadata
        if raw is None:
            raise UserError(f"{self.path} is not a teacher log-probs sidecar (no {_META.decode()} metadata)")
        meta = json.loads(raw)
        if meta.get("format") != FORMAT:
            raise UserError(f"{self.path}: sidecar format {meta.get('format')}, this version reads {FORMAT}")
        self.teacher, self.k = meta["teacher"], meta["k"]
        self._vocab = [base64.b64decode(v) for v in meta["vocab"]]
        self._row: dict[str, tuple[int, int]] = {}  # record id -> (row group, row in it)
        for g in range(self._file.num_row_groups):
            ids = self._file.read_row_group(g, columns=["id"]).column("id").to_pylist()
            self._row.update((rid, (g, i)) for i, rid in enumerate(ids))
        self._group: tuple[int, object] | None = None  # (index, pyarrow Table) of the group read last

    def _record(self, rid: str):
        """Record ``rid``'s row, a one-row pyarrow Table."""
        g, i = self._row[rid]
        if self._group is None or self._group[0] != g:
            self._group = (g, self._file.read_row_group(g))
        return self._group[1].slice(i, 1)

    def __len__(self) -> int:
        return len(self._row)

    def __contains__(self, rid: str) -> bool:
        return rid in self._row

    def __iter__(self) -> Iterator[str]:
        return iter(self._row)

    def get(self, rid: str) -> TokenLogprobs | None:
        if rid not in self._row:
            return None
        return _decoded(self._vocab, *self.indices(rid))

    def __getitem__(self, rid: str) -> TokenLogprobs:
        t = self.get(rid)
        if t is None:
            raise KeyError(rid)
        return t

    @property
    def tokens(self) -> list[bytes]:
        """The file's token table: every token its records name, each once; ``indices`` point into it."""
        return self._vocab

    def indices(self, rid: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """Record ``rid`` as ``get`` gives it, its tokens left as indices into ``tokens`` (what training reads for
        millions of records): sampled [n] int32, top [n, k] int32 (-1: none), top_logprobs [n, k] float16 (-inf:
        none), start."""
        row = self._record(rid)
        ids, top, lp = (row.column(c).combine_chunks().flatten().to_numpy(zero_copy_only=False)
                        for c in ("tokens", "top_tokens", "top_logprobs"))
        top = top.astype(np.int32).reshape(len(ids), self.k)
        lp = np.where(top >= 0, lp.astype(np.float16).reshape(len(ids), self.k), np.float16(-np.inf))
        return ids.astype(np.int32), top, lp, int(row.column("start")[0].as_py())


# bytes per response token at k = 20, measured (docs/generate.md, "Teacher log-probs", `python -m
# bench.logprobs_size`: teacher=hf_local, SmolLM2-135M-Instruct): in a request-store line (to_json; 160 responses of
# up to 192 tokens) and in the sidecar's columns (50 responses of up to 256 tokens; its token table, at most the
# teacher's vocabulary, is left out: a few 100 kB however large D_ALL is). Another k scales with the 4 + 6k bytes a
# token holds before compression
_MEASURED_K, _STORE_PER_TOKEN, _SIDECAR_PER_TOKEN = 20, 123.2, 67.0


def size_estimate(k: int, tokens: float) -> dict[str, int]:
    """About the bytes the top-k log-probs of ``tokens`` response tokens take in the request store and in the
    sidecar (nothing at k = 0)."""
    scale = (4 + 6 * k) / (4 + 6 * _MEASURED_K) if k else 0.0
    return {"store": int(tokens * _STORE_PER_TOKEN * scale), "sidecar": int(tokens * _SIDECAR_PER_TOKEN * scale)}
