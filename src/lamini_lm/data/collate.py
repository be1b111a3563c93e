"""Padding micro-batches to their own longest example (dynamic padding)."""

from __future__ import annotations

import torch

from lamini_lm.models.families import IGNORE_INDEX


class TokenizedSet:
    """Map-style dataset over the tokenised records. ``__getitems__`` fetches a whole micro-batch in one
    Arrow read (torch's DataLoader uses it when present) and passes its step normaliser along."""

    def __init__(self, hf_dataset):
        self.ds = hf_dataset.select_columns(["input_ids", "labels"])

    def __len__(self) -> int:
        return len(self.ds)

    def __getitems__(self, indices):
        rows = self.ds[list(indices)]
        return rows, getattr(indices, "step_target_tokens", None)


class Collate:
    def __init__(self, pad_token_id: int, separate_labels: bool):
        self.pad_token_id = pad_token_id
        self.separate_labels = separate_labels  # the labels are a second (decoder) sequence: Family.separate_labels

    def __call__(self, item) -> dict:
        rows, step_target_tokens = item
        ids, labels = rows["input_ids"], rows["labels"]
        n, width, label_width = len(ids), max(map(len, ids)), max(map(len, labels))
        input_ids = torch.full((n, width), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((n, width), dtype=torch.long)
        label_t = torch.full((n, label_width), IGNORE_INDEX, dtype=torch.long)
        for i, (x, y) in enumerate(zip(ids, labels)):
            input_ids[i, : len(x)] = torch.tensor(x)
            attention_mask[i, : len(x)] = 1
            label_t[i, : len(y)] = torch.tensor(y)
        target_tokens = int((label_t != IGNORE_INDEX).sum())
        real, padded = int(attention_mask.sum()), n * width
        if self.separate_labels:
            real, padded = real + sum(map(len, labels)), padded + n * label_width
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "labels": label_t,
            "step_target_tokens": torch.tensor(step_target_tokens or target_tokens, dtype=torch.float),
            "real_tokens": real,
            "padded_tokens": padded,
        }
