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


def teacher_starts(teacher, response: str) -> dict[int, int] | None:
    """The teacher's token index by its first byte in the response (a token holding a stripped leading space starts
    at 0; a token that spells nothing, a special one, is left out); None when the teacher's tokens do not spell
    the record's response (the record was edited after generation)."""
    text = response.encode("utf-8")
    if teacher.text()[teacher.start: teacher.start + len(text)] != text:
        return None
    found: dict[int, int] = {}
    for j, (a, b) in enumerate(teacher.byte_spans()):
        if b > a and b > 0:
            found.setdefault(max(a, 0), j)
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
        self._open = None  # (Sidecar, the student's token bytes, bytes -> student id), read when first called

    def __getstate__(self) -> dict:
        return {**vars(self), "_open": None}

    def _opened(self):
        if self._open is None:
            from lamini_lm.logprobs import Sidecar
            from lamini_lm.token_bytes import token_bytes

            table = token_bytes(self.tokenizer)
            ids: dict[bytes, int] = {}
            for i, b in enumerate(table):
                if b:
                    ids.setdefault(b, i)  # two ids for one string (rare): the first
            self._open = (Sidecar(self.sidecar), table, ids)
        return self._open

    def __call__(self, records: dict, encoded: dict) -> dict:
        sidecar, table, to_id = self._opened()
        enc = self.tokenizer(records["response"], add_special_tokens=False, return_offsets_mapping=True)
        eos = self.tokenizer.eos_token_id
        out: dict[str, list] = {name: [] for name in self.widths}
        unspelled = 0
        for rid, response, labels, ids, offsets in zip(records["id"], records["response"], encoded["labels"],
                                                       enc["input_ids"], enc["offset_mapping"]):
            teacher = sidecar[rid]
            positions = self.family.target_positions(labels)
            lp = np.full((len(positions), self.k), -np.inf, np.float16)
            top = np.full((len(positions), self.k), -1, np.int32)
            found = teacher_starts(teacher, response)
            unspelled += found is None
            at, m = response_at(labels, ids, eos)
            starts = student_starts([table[i] for i in ids[:m]], offsets[:m], response) if found else []
            for n, p in enumerate(positions):
                q = p - at
                j = found.get(starts[q]) if found and 0 <= q < m and starts[q] is not None else None
                if j is None:
                    continue
                values = teacher.top_logprobs[j]
                if self.exact:
                    row = [to_id.get(b, -1) for b in teacher.top_tokens[j]]
                    seen: set[int] = set()
                    for c, i in enumerate(row):
                        if i >= 0 and i not in seen and values[c] > -np.inf:
                            seen.add(i)
                            top[n, c], lp[n, c] = i, values[c]
                else:
                    lp[n, : len(values)] = np.sort(values)[::-1]
            out["kd_logprobs"].append(lp.reshape(-1))
            if self.exact:
                out["kd_ids"].append(top.reshape(-1))
        if unspelled:
            log.warning("objective=token_kd: the teacher's tokens do not spell the response of %d records (edited "
                        "after generation?): they train on the NLL alone", unspelled)
        return out
