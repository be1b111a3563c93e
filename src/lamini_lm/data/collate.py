"""Micro-batches as the model takes them: padded to their own longest example (dynamic padding), or packed
into one row with no padding at all (data.packing=padding_free)."""

from __future__ import annotations

import numpy as np
import torch

from lamini_lm.models.families import IGNORE_INDEX


class TokenizedSet:
    """Map-style dataset over the tokenised records. ``__getitems__`` fetches a whole micro-batch in one
    Arrow read (torch's DataLoader uses it when present) and passes its step normaliser along; ``columns``: an
    objective's per-target columns to fetch too, each example's as one numpy array."""

    def __init__(self, hf_dataset, columns=()):
        self.ds = hf_dataset.select_columns(["input_ids", "labels"])
        self.extra = hf_dataset.select_columns(list(columns)).with_format("arrow") if columns else None

    def __len__(self) -> int:
        return len(self.ds)

    def __getitems__(self, indices):
        rows = self.ds[list(indices)]
        if self.extra is not None:
            table = self.extra[list(indices)]
            rows.update({name: list(table[name].combine_chunks().to_numpy(zero_copy_only=False))
                         for name in table.column_names})
        return rows, getattr(indices, "step_target_tokens", None)


class Collate:
    def __init__(self, pad_token_id: int, separate_labels: bool, packed: bool = False, pack_limit: int | None = None,
                 columns: dict[str, int] | None = None):
        self.pad_token_id = pad_token_id
        self.separate_labels = separate_labels  # the labels are a second (decoder) sequence: Family.separate_labels
        self.packed = packed  # one row of concatenated examples (data.packing=padding_free, a varlen attention)
        self.pack_limit = pack_limit  # Family.pack_limit: a micro-batch whose row would be longer is padded
        # an objective's per-target columns (training/objectives/base.py Columns.widths): name -> values per target
        # token; each example holds its target tokens' rows, so the batch's are theirs in the examples' order. A width
        # of 0: a sequence of any length per example (a teacher's own token ids), kept apart per example
        self.columns = dict(columns or {})

    def __call__(self, item) -> dict:
        rows, step_target_tokens = item
        batch = self._packed(rows) if self.packed and self._fits(rows) else self._padded(rows)
        # counted on the rows, not the batch: a packed row unmarks first tokens, which no mode predicts
        target_tokens = sum(v != IGNORE_INDEX for y in rows["labels"] for v in y)
        batch["step_target_tokens"] = torch.tensor(step_target_tokens or target_tokens, dtype=torch.float)
        for name, width in self.columns.items():
            if name not in rows:
                continue
            if width == 0:  # one sequence of any length per example: a list of 1-D tensors, in the examples' order
                # copied: a row read from the datasets cache is a read-only view, which torch warns about sharing
                batch[name] = [torch.tensor(np.asarray(x)) for x in rows[name]]
                continue
            # [target tokens, width], in the target order of padded and packed rows alike
            values = np.concatenate([np.asarray(x) for x in rows[name]]) if len(rows[name]) else np.zeros(0)
            batch[name] = torch.from_numpy(values.reshape(-1, width))
        return batch

    def _fits(self, rows) -> bool:
        return fits(self.pack_limit, sum(map(len, rows["input_ids"])), sum(map(len, rows["labels"])))

    def _padded(self, rows) -> dict:
        ids, labels = rows["input_ids"], rows["labels"]
        n, width, label_width = len(ids), max(map(len, ids)), max(map(len, labels))
        input_ids = torch.full((n, width), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((n, width), dtype=torch.long)
        label_t = torch.full((n, label_width), IGNORE_INDEX, dtype=torch.long)
        for i, (x, y) in enumerate(zip(ids, labels)):
            input_ids[i, : len(x)] = torch.tensor(x)
            attention_mask[i, : len(x)] = 1
            label_t[i, : len(y)] = torch.tensor(y)
        real, padded = int(attention_mask.sum()), n * width
        if self.separate_labels:
            real, padded = real + sum(map(len, labels)), padded + n * label_width
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": label_t, "real_tokens": real,
                "padded_tokens": padded}

    def _packed(self, rows) -> dict:
        """One row: the examples end to end, each with its varlen bounds (the names transformers' flash-attention
        and our sdpa_varlen read). Decoder-only: one sequence, positions from 0 per example; an example's first
        token is no target: in the row it would be predicted from the previous example's last token (alone, nothing
        predicts it). Encoder-decoder: the inputs in one row and the labels in another; the decoder's bounds are the
        queries' (``cu_seq_lens_q``), the encoder's the keys' (``cu_seq_lens_k``), as a cross-attention reads them."""
        ids = rows["input_ids"]
        if self.separate_labels:
            labels = rows["labels"]
            q_bounds, q_longest = _bounds(labels)
            k_bounds, k_longest = _bounds(ids)
            extra = {}
        else:
            labels = [[IGNORE_INDEX] + list(y[1:]) for y in rows["labels"]]
            q_bounds, q_longest = k_bounds, k_longest = _bounds(ids)
            extra = {"position_ids": torch.cat([torch.arange(len(x)) for x in ids]).unsqueeze(0)}
        total = int(k_bounds[-1]) + (int(q_bounds[-1]) if self.separate_labels else 0)
        return {
            "input_ids": torch.tensor([t for x in ids for t in x]).unsqueeze(0),
            "labels": torch.tensor([t for y in labels for t in y]).unsqueeze(0), **extra,
            "cu_seq_lens_q": q_bounds, "cu_seq_lens_k": k_bounds, "max_length_q": q_longest, "max_length_k": k_longest,
            "real_tokens": total, "padded_tokens": total,
        }


def fits(pack_limit: int | None, input_tokens: int, label_tokens: int) -> bool:
    """Whether a micro-batch of this many input and label tokens is packed under the family's ``pack_limit`` (a
    longer one is padded)."""
    return pack_limit is None or max(input_tokens, label_tokens) <= pack_limit


def _bounds(seqs) -> tuple[torch.Tensor, int]:
    """Where each sequence starts in the row, and where the last ends (int32, flash-attn's cu_seq_lens); the
    longest length."""
    lengths = torch.tensor([len(x) for x in seqs])
    bounds = torch.zeros(len(seqs) + 1, dtype=torch.int32)
    bounds[1:] = lengths.cumsum(0)
    return bounds, int(lengths.max())
