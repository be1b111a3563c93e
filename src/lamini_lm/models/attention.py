"""``sdpa_varlen``: attention over packed rows (examples concatenated, data.packing=padding_free) that computes
each example's causal attention on its own, registered in transformers' AttentionInterface.

transformers' own ``sdpa`` and ``eager`` build a block mask from the restarting position ids instead, but compute
the whole row x row product (for 8 LaMini examples, ~900 tokens, ~8x the attention FLOPs that count) and missed
the per-example loss by up to 4e-4 relative in our float64 test; so only a varlen attention packs (``packs``).
``flash_attention_2`` (GPU, flash-attn installed) is varlen already and reads the same ``cu_seq_lens_*`` the
collator sends. Rows that are not packed (validation generations, padded batches) go to transformers' ``sdpa``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

NAME = "sdpa_varlen"
VARLEN = (NAME, "flash_attention_2", "flash_attention_3")  # attentions that take a packed row per example


def packs(model) -> bool:
    """Whether ``model``'s attention keeps the examples of a packed row apart exactly."""
    return getattr(model.config, "_attn_implementation", None) in VARLEN


def sdpa_varlen(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None,
                cu_seq_lens_q=None, cu_seq_lens_k=None, **kwargs):
    if cu_seq_lens_q is None or query.shape[0] != 1 or query.shape[2] != key.shape[2]:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    # split, not slices: its backward is one concatenation, not a zero-filled full-size gradient per example
    lengths = cu_seq_lens_q.diff().tolist()
    out = torch.cat([F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, scale=scaling, is_causal=True,
                                                    enable_gqa=query.shape[1] != key.shape[1])
                     for q, k, v in zip(*(t.split(lengths, dim=2) for t in (query, key, value)))], dim=2)
    return out.transpose(1, 2).contiguous(), None


def register() -> None:
    """Make ``sdpa_varlen`` an attn_implementation transformers knows (before a model is built with it)."""
    AttentionInterface.register(NAME, sdpa_varlen)
    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)  # transformers' sdpa masks: the unpacked fallback's
