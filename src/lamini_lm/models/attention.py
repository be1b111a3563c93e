"""``sdpa_varlen``: attention over packed rows (examples concatenated, data.packing=padding_free) that computes
each example's attention on its own, registered in transformers' AttentionInterface.

transformers' own ``sdpa`` and ``eager`` build a block mask from the restarting position ids instead, but compute
the whole row x row product (for 8 LaMini examples, ~900 tokens, ~8x the attention FLOPs that count) and missed
the per-example loss by up to 4e-4 relative in our float64 test; so only a varlen attention packs (``packs``).
``flash_attention_2`` (GPU, flash-attn installed) is varlen already and reads the same ``cu_seq_lens_*`` the
collator sends. Rows that are not packed (validation generations, padded batches) go to transformers' ``sdpa``.

Each example is handed to transformers' ``sdpa_attention_forward``, which keeps what the model asks of it: causal
or not (the module's ``is_causal``), grouped-query heads, and T5's relative position bias (``position_bias``,
computed by T5 over the whole row: an example's block of it is the bias it has alone, since it depends on the
distance between two positions only; a self-attention takes every example's block from the row bias's top-left
corner).
"""

from __future__ import annotations

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

NAME = "sdpa_varlen"
VARLEN = (NAME, "flash_attention_2", "flash_attention_3")  # attentions that take a packed row per example


def packs(model) -> bool:
    """Whether ``model``'s attention keeps the examples of a packed row apart exactly."""
    return getattr(model.config, "_attn_implementation", None) in VARLEN


def _bounds(module, cu_seq_lens_q, cu_seq_lens_k):
    """(query bounds, key bounds) of this attention. A packed row of an encoder-decoder carries the decoder's bounds
    as ``cu_seq_lens_q`` and the encoder's as ``cu_seq_lens_k`` (a cross-attention's queries and keys, flash-attn's
    convention); a self-attention uses its own sequence's for both. Decoder-only rows carry one set twice."""
    if getattr(module, "is_decoder", True) is False:  # T5's encoder
        return cu_seq_lens_k, cu_seq_lens_k
    if not getattr(module, "is_causal", True):  # a decoder's cross-attention
        return cu_seq_lens_q, cu_seq_lens_k
    return cu_seq_lens_q, cu_seq_lens_q


def sdpa_varlen(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None,
                cu_seq_lens_q=None, cu_seq_lens_k=None, position_bias=None, **kwargs):
    if cu_seq_lens_q is None or query.shape[0] != 1:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      position_bias=position_bias, **kwargs)
    q_bounds, k_bounds = (b.tolist() for b in _bounds(module, cu_seq_lens_q, cu_seq_lens_k))
    q_spans, k_spans = list(zip(q_bounds, q_bounds[1:])), list(zip(k_bounds, k_bounds[1:]))
    # split, not slices: its backward is one concatenation, not a zero-filled full-size gradient per example
    qs = query.split([b - a for a, b in q_spans], dim=2)
    ks, vs = (t.split([b - a for a, b in k_spans], dim=2) for t in (key, value))
    if position_bias is not None and q_spans == k_spans:
        # A self-attention's bias depends on distances only, so every example's block is the same top-left corner.
        # Sliced from one corner, the backward builds one row x row gradient, not one per example (n x heads x row^2
        # floats written and summed: a quarter of a packed t5-base micro-batch's time on the CPU, bench/README.md).
        longest = max(b - a for a, b in q_spans)
        position_bias = position_bias[..., :longest, :longest]
        q_spans = k_spans = [(0, b - a) for a, b in q_spans]
    outs = []
    for q, k, v, (qa, qb), (ka, kb) in zip(qs, ks, vs, q_spans, k_spans):
        bias = None if position_bias is None else position_bias[..., qa:qb, ka:kb]
        outs.append(sdpa_attention_forward(module, q, k, v, None, dropout=dropout, scaling=scaling,
                                           position_bias=bias)[0])
    return torch.cat(outs, dim=1), None


def register() -> None:
    """Make ``sdpa_varlen`` an attn_implementation transformers knows (before a model is built with it)."""
    AttentionInterface.register(NAME, sdpa_varlen)
    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)  # transformers' sdpa masks: the unpacked fallback's
