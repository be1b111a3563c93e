"""Executed FLOPs of a training micro-batch and the roof they are measured against.

Executed means what the kernels were asked to compute, padding included: 6 x matmul weights per computed token
(forward + backward; the token and position embeddings are look-ups), 6 x the output layer per row it projects
(ours: target rows only, families._nll_at; transformers' own loss: every row), and 12 x the attention width per
layer per (query, key) pair computed, counted as the full square of each row the attention runs over (a padded
row's width, a packed row under a block mask, or each example alone under a varlen attention). lightning's
``measure_flops`` counts the same on a meta-device model but cannot follow our data-dependent output rows, and
its ``get_available_flops`` knows GPUs only: a CPU's roof is measured (``matmul_roof``) or given.
"""

from __future__ import annotations

import time

import torch

from lamini_lm.models.families import IGNORE_INDEX
from lamini_lm.models.size import PlannerFields, PlannerSpec, evaluate, planner_spec

# an architecture with no planner description: a decoder-only model by transformers' common config names
UNDESCRIBED = PlannerSpec(PlannerFields(hidden="hidden_size", ffn=None, heads="num_attention_heads",
                                        attention_width="hidden_size", kv_width="hidden_size",
                                        layers="num_hidden_layers", activation=None))


class FlopCoefficients:
    """Per-token and per-pair FLOP counts of one transformers model (decoder-only or encoder-decoder), by its
    architecture's planner description (``planner``: a model config's, typed or not; None: the base config named
    after its model_type, models/size.py planner_spec): the attention's width and depth, and which of the decoder's
    weights project the encoder's tokens (cross_kv). An architecture with no description is read as a decoder-only
    model by transformers' common config names."""

    def __init__(self, model, planner=None):
        cfg = model.config
        planner = planner_spec(planner, cfg.model_type) or UNDESCRIBED
        read = lambda name: evaluate(getattr(planner.fields, name), cfg, f"model.planner.fields.{name}")  # noqa: E731
        head = model.get_output_embeddings()
        encoder = model.get_encoder() if cfg.is_encoder_decoder else None
        in_encoder = {id(m) for m in encoder.modules()} if encoder is not None else set()
        cross_kv = tuple(planner.cross_kv)
        self.head = head.weight.numel()
        self.encoder = self.decoder = self.cross_kv = 0
        for name, module in model.named_modules():
            weight = getattr(module, "weight", None)
            if module is head or weight is None or weight.dim() != 2 or isinstance(module, torch.nn.Embedding):
                continue
            if id(module) in in_encoder:
                self.encoder += weight.numel()
            elif cross_kv and name.endswith(cross_kv):
                self.cross_kv += weight.numel()
            else:
                self.decoder += weight.numel()
        self.width = read("attention_width")  # the queries' and keys' width: heads x head width
        self.encoder_layers = read("layers") if encoder is not None else 0
        self.decoder_layers = (read("decoder_layers") or read("layers")) if encoder is not None else read("layers")

    def of_batch(self, batch: dict, head_rows: int | None = None) -> float:
        """Executed FLOPs of one forward + backward of ``batch`` (as lamini_lm.data.collate.Collate builds it, or
        any padded batch with input_ids/attention_mask/labels); ``head_rows``: rows the output layer projects
        (default: ours, the target tokens)."""
        ids, labels = batch["input_ids"], batch["labels"]
        if head_rows is None:  # the rows whose next (decoder-only) or own (encoder-decoder) label is a target
            head_rows = int((labels[:, 0 if self.encoder_layers else 1:] != IGNORE_INDEX).sum())
        flops = 6 * self.head * head_rows
        if self.encoder_layers:  # encoder over input_ids, decoder over the labels' width, cross between them
            flops += 6 * ((self.encoder + self.cross_kv) * ids.numel() + self.decoder * labels.numel())
            if "cu_seq_lens_q" in batch:  # packed rows: every example alone (decoder bounds q, encoder bounds k)
                enc, dec = (batch[k].diff().long() for k in ("cu_seq_lens_k", "cu_seq_lens_q"))
            else:  # every row its padded width
                enc, dec = (torch.full((ids.shape[0],), w) for w in (ids.shape[1], labels.shape[1]))
            return flops + 12 * self.width * int(self.encoder_layers * (enc ** 2).sum()
                                                 + self.decoder_layers * (dec ** 2 + dec * enc).sum())
        if "cu_seq_lens_q" in batch:  # a packed row, each example attending to itself
            pairs = int((batch["cu_seq_lens_q"].diff().long() ** 2).sum())
        else:
            pairs = ids.shape[0] * ids.shape[1] ** 2
        return 6 * self.decoder * ids.numel() + flops + 12 * self.width * self.decoder_layers * pairs


def matmul_roof(n: int = 2048, reps: int = 4) -> float:
    """This CPU's fp32 matmul speed in FLOP/s: the best of a few timed n x n products (~1 s on 2 cores)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best


def roof(device: torch.device, dtype: torch.dtype, given: float | None = None) -> float | None:
    """FLOP/s to divide by: ``given``, else lightning's table for a GPU, else a CPU's measured matmul speed."""
    if given:
        return float(given)
    if device.type == "cpu":
        return matmul_roof()
    from lightning.fabric.utilities.throughput import get_available_flops

    return get_available_flops(device, dtype)
