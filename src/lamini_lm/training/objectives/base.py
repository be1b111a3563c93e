"""The training objective's contract: what an objective gets, what it returns, what it may add to the data.

An objective turns a micro-batch into its loss, summed over the micro-batch's target tokens. The tuner
(models/tuner.py) divides that sum by the global batch's target tokens, so every target token of a global batch
weighs the same whatever the micro-batch split, the devices or the packing: an objective whose loss is a sum of
per-token terms inherits accumulation and packing equivalence.

Adding an objective is one module and one config:

1. A subclass of ``Objective`` in its own module. Its constructor's keyword arguments are its settings; check them
   there, raising ``UserError`` naming ``objective.<key>`` and what to do.
2. ``loss(family, model, batch)``: start from ``family.target_logits(model, batch)``, the student's logits at the
   target tokens ([N, V], float32 or wider) and those tokens ([N]) in the batch's target order; return
   ``Loss(total, logs)``: the summed loss, and per-micro-batch means to log as ``train/<name>``. A divergence to a
   teacher's distribution is ``training/objectives/divergence.py``, written once for every objective and family.
3. Optionally, what the objective needs beside the text:
   - ``check(data_path)`` refuses the run before the model loads (a missing file);
   - ``columns(records, tokenizer, family, data_path)`` returns a picklable ``Columns``: a function called with
     each tokenised batch that adds per-example columns, cached with the tokenised set (its fields enter the
     datasets fingerprint), and their ``widths``: the collate carries each as a [N, width] tensor of the batch,
     one row per target token in the target order (``Family.target_positions`` says which label positions
     those are); a width of 0 is a sequence of any length per example (a teacher's own token ids), carried as
     a list of 1-D tensors in the batch's example order;
   - ``extra_memory(micro_batch, tokens, targets, compute)``: bytes per device beyond the sequence objective's that
     the planner should count (a teacher's weights and activations).
   A teacher model run beside the student stays out of the LightningModule's parameters (neither optimised nor
   checkpointed): keep it on the objective and move it to the student's device in ``loss``.
4. ``conf/objective/<name>.yaml``: ``_target_`` and the settings, each with a comment (why, and ``reconstruction:``
   or "our choice" where a paper is silent). ``python train.py objective=<name>`` selects it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:  # an objective's module stays light: train.py checks its settings before torch loads
    import torch


class Loss(NamedTuple):
    total: torch.Tensor  # summed over the micro-batch's target tokens
    logs: dict[str, torch.Tensor]  # per-micro-batch means, logged as train/<name>


class Columns:
    """Per-example data an objective adds when the records are tokenised: ``__call__(records, encoded)`` gets a
    batch of records (instruction, response, id, ...) and the family's encoding of them (input_ids, labels, ...)
    and returns the extra columns; ``widths`` names those the collate carries, with their values per target
    token."""

    widths: dict[str, int] = {}

    def __call__(self, records: dict, encoded: dict) -> dict:
        raise NotImplementedError


class Objective:
    """See the module's docstring."""

    def loss(self, family, model, batch: dict) -> Loss:
        raise NotImplementedError

    def check(self, data_path: Path | None) -> None:
        """Refuse a run that cannot start (before the model loads); ``data_path``: data.path's file, if any."""

    def columns(self, records, tokenizer, family, data_path: Path | None) -> Columns | None:
        """The data this objective adds to each example at tokenisation time, or None."""
        return None

    def extra_memory(self, micro_batch: int, tokens: int, targets: int, compute: int) -> float:
        """Bytes per device beyond the sequence objective's, for the planner: ``micro_batch`` examples of ``tokens``
        tokens each (prompt and response together), ``targets`` of them in the loss, ``compute`` bytes per element
        of the dtype the model computes in."""
        return 0.0
