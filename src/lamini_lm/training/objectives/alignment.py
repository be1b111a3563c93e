"""Where a student's target tokens meet the teacher's stored top-k: computed once per example when the records are
tokenised, cached with the tokenised set, and carried by the collate as token_kd's per-target columns.

A student target token takes the distribution of the teacher's token that starts at the same byte of the
response. There both tokenizations have a boundary, and both predict the next token from the same text (the
prompt, then the response up to that byte), so the teacher's distribution is one the student can be held to.
These are the first positions of the groups of tokens that spell the same text in both tokenizations, the groups
that TRL's GOLD trainer forms from byte offsets (use_extended_uld). A student token inside a group (the two
tokenizations cut the text differently there) and the student's EOS (the teacher's stop is not stored) have no
teacher distribution.
- exact: the student's tokenizer is the teacher's. Every position aligns where the student's tokenization of the
  response is the one the teacher sampled; the alternatives become student ids by their bytes (an alternative the
  student has no token for leaves the top-k: its mass joins the rest bucket).
- otherwise: the same positions, the teacher's k log-probs sorted, for ULD (divergence.uld).
Spans: the teacher's from its tokens' bytes (TokenLogprobs.byte_spans); the student's from its tokens' bytes when
they spell the response (byte-level BPE), else from the fast tokenizer's character offsets (SentencePiece: T5's
normalizer drops newlines, and its lone "▁" piece reports the next piece's first character). Each student span
starts where the previous one ended: a token owns the whitespace before it that no token spells (T5's "▁Hello"
covers " Hello", as GPT-2's "ĠHello" does).
"""

from __future__ import annotations

import logging
from itertools import accumulate
from pathlib import Path

import numpy as np

from lamini_lm.training.objectives.base import Columns

log = logging.getLogger(__name__)


def student_starts(pieces: list[bytes] | None, offsets: list[tuple[int, int]], response: str) -> list[int | None]:
    """Each response token's first byte in the response, or None for a token that spells no text (``pieces``: the
    tokens' bytes, or None when unknown; ``offsets``: the fast tokenizer's character offsets)."""
    text = response.encode("utf-8")
    if pieces is not None and b"".join(pieces) == text:
        ends = list(accumulate(len(p) for p in pieces))
    else:
        at = [0, *accumulate(len(c.encode("utf-8")) for c in response)]  # character -> byte offset
        ends = []
        for q, (a, b) in enumerate(offsets):
            if q + 1 < len(offsets) and offsets[q + 1][0] == a:  # T5's lone "▁", reported at the next piece's
                b = a  # first character: it spells only the space before
            ends.append(at[min(b, len(response))])
        ends = list(accumulate(ends, max))
    starts = [0, *ends[:-1]]
    return [s if e > s else None for s, e in zip(starts, ends)]


def teacher_starts(tokens: list[bytes], sampled: np.ndarray, start: int, response: str) -> dict[int, int] | None:
    """The teacher's token index by its first byte in the response (a token holding a stripped leading space starts
    at 0; a token that spells nothing, a special one, is left out), from the sidecar's token table ``tokens``, a
    record's ``sampled`` indices into it and its ``start``; None when those tokens do not spell the record's
    response (the record was edited after generation)."""
    text = response.encode("utf-8")
    pieces = [tokens[i] for i in sampled]
    if b"".join(pieces)[start: start + len(text)] != text:
        return None
    found: dict[int, int] = {}
    end = -start
    for j, piece in enumerate(pieces):
        end += len(piece)
        if piece and end > 0:
            found.setdefault(max(end - len(piece), 0), j)
    return found


def response_at(labels: list[int], ids: list[int], eos: int | None) -> tuple[int, int]:
    """Where the response's tokens ``ids`` sit in an example's labels: (the label position of the first, how many
    of them are there). The family's encoding ends the labels with the response (cut to the length limits) and
    its EOS, when not cut by the model's positions."""
    body = labels[:-1] if labels and eos is not None and labels[-1] == eos else labels
    for m in range(min(len(ids), len(body)), 0, -1):
        if body[len(body) - m:] == ids[:m]:
            return len(body) - m, m
    return len(body), 0


class TopKColumns(Columns):
    """token_kd's per-target columns (see the module): ``kd_logprobs`` [k] float16 (-inf: none; a row of -inf: no
    teacher distribution), and under ``exact`` ``kd_ids`` [k] int32, the alternatives as student ids (-1: none).
    Its fields enter the datasets fingerprint: the sidecar by path, size and modification time, not its content."""

    def __init__(self, sidecar: Path, tokenizer, family, exact: bool, k: int):
        st = sidecar.stat()
        self.sidecar, self.stamp = str(sidecar), f"{st.st_size}-{st.st_mtime_ns}"
        self.tokenizer, self.family, self.exact, self.k = tokenizer, family, exact, k
        self.widths = {"kd_ids": k, "kd_logprobs": k} if exact else {"kd_logprobs": k}
        self._open = None  # (Sidecar, the student's token bytes, the sidecar's tokens as student ids), when called

    def __getstate__(self) -> dict:
        return {**vars(self), "_open": None}

    def _opened(self):
        if self._open is None:
            from lamini_lm.logprobs import Sidecar
            from lamini_lm.token_bytes import token_bytes

            sidecar, table = Sidecar(self.sidecar), token_bytes(self.tokenizer)
            own: dict[bytes, int] = {}
            for i, b in enumerate(table):
                if b:
                    own.setdefault(b, i)  # two ids for one string (rare): the first
            # the sidecar's token table as student ids (-1: none), once, so a record's alternatives are one take
            as_ids = np.array([own.get(b, -1) if b else -1 for b in sidecar.tokens] + [-1], np.int32)
            self._open = (sidecar, table, as_ids)
        return self._open

    def __call__(self, records: dict, encoded: dict) -> dict:
        sidecar, table, as_ids = self._opened()
        enc = self.tokenizer(records["response"], add_special_tokens=False, return_offsets_mapping=True)
        eos = self.tokenizer.eos_token_id
        out: dict[str, list] = {name: [] for name in self.widths}
        unspelled = 0
        earlier = np.tri(self.k, self.k, -1, dtype=bool)  # [c, c']: c' before c
        for rid, response, labels, ids, offsets in zip(records["id"], records["response"], encoded["labels"],
                                                       enc["input_ids"], enc["offset_mapping"]):
            sampled, top, values, start = sidecar.indices(rid)
            positions = self.family.target_positions(labels)
            lp = np.full((len(positions), self.k), -np.inf, np.float16)
            found = teacher_starts(sidecar.tokens, sampled, start, response)
            unspelled += found is None
            at, m = response_at(labels, ids, eos)
            starts = student_starts([table[i] for i in ids[:m]], offsets[:m], response) if found else []
            pairs = [(n, found[starts[p - at]]) for n, p in enumerate(positions)
                     if found and 0 <= p - at < m and starts[p - at] in found]
            rows, js = (np.array(x, np.int64) for x in zip(*pairs)) if pairs else (np.zeros(0, np.int64),) * 2
            if self.exact:
                alt = as_ids[top[js]]  # top's -1 reads as_ids' last entry, -1
                # an alternative the student has no token for, or a second one for the same student token, is left
                # out of the top-k: its mass joins the rest bucket
                alt[((alt[:, :, None] == alt[:, None, :]) & earlier).any(-1)] = -1
                kd_ids = np.full((len(positions), self.k), -1, np.int32)
                kd_ids[rows] = alt
                lp[rows] = np.where(alt >= 0, values[js], np.float16(-np.inf))
                out["kd_ids"].append(kd_ids.reshape(-1))
            else:
                lp[rows] = -np.sort(-values[js], -1)  # decreasing, -inf last
            out["kd_logprobs"].append(lp.reshape(-1))
        if unspelled:
            log.warning("objective=token_kd: the teacher's tokens do not spell the response of %d records (edited "
                        "after generation?): they train on the NLL alone", unspelled)
        return out
