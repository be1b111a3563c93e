"""Token-level distillation from the teacher's distribution stored with D_ALL (generate.py teacher.logprobs=k):
the text's cross-entropy mixed with a divergence to the teacher's top-k at every target token where it is known.

Per target token:  (1 - alpha) CE + alpha T^2 D(P_T || Q_T)  where the teacher's distribution is known there,
                   CE alone where it is not (the EOS, a token the two tokenizations cut differently);
summed over the micro-batch's target tokens and divided, like the sequence loss, by the global batch's. D and the
rest buckets: divergence.py; which positions have a teacher distribution: alignment.py. The T^2 keeps the
divergence's gradient on the cross-entropy's scale as the temperature changes (Hinton et al. 2015, "Distilling
the Knowledge in a Neural Network", arXiv:1503.02531).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

from lamini_lm.errors import UserError
from lamini_lm.training.objectives.base import Loss, Objective

log = logging.getLogger(__name__)

MATCHES = ("auto", "exact", "uld")
AUTO_RECORDS = 1000  # match=auto reads this many records' teacher tokens


class TokenKD(Objective):
    def __init__(self, alpha: float = 0.5, temperature: float = 1.0, divergence: str = "forward_kl",
                 beta: float = 0.5, match: str = "auto", logprobs: str | None = None):
        from lamini_lm.training.objectives.divergence import DIVERGENCES

        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
            raise UserError(f"objective.alpha={alpha}: give the divergence's weight in [0, 1] (0: the text's "
                            "cross-entropy alone, as objective=sequence)")
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
            raise UserError(f"objective.temperature={temperature}: give a positive number (1: the distributions "
                            "as they are)")
        if divergence not in DIVERGENCES:
            raise UserError(f"objective.divergence={divergence} is not one of {', '.join(DIVERGENCES)}")
        if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not 0 <= beta <= 1:
            raise UserError(f"objective.beta={beta}: give generalized JSD's beta in [0, 1]")
        if match not in MATCHES:
            raise UserError(f"objective.match={match} is not one of {', '.join(MATCHES)}")
        self.alpha, self.temperature, self.divergence, self.beta = float(alpha), float(temperature), divergence, beta
        self.match, self.logprobs = match, logprobs
        self.exact: bool | None = None  # decided with the data (columns)

    # -- the data ---------------------------------------------------------------------------------
    def _sidecar(self, data_path: Path | None) -> Path:
        from lamini_lm.logprobs import SIDECAR

        if self.logprobs:
            return Path(self.logprobs).expanduser().resolve()
        if data_path is None:
            raise UserError("objective.logprobs: give the teacher log-probs file (d_all.logprobs.parquet); a hub "
                            "dataset has no folder to look beside")
        return Path(data_path).parent / SIDECAR

    def check(self, data_path):
        path = self._sidecar(data_path)
        if not path.is_file():
            where = "objective.logprobs" if self.logprobs else "objective.logprobs=null: beside data.path"
            raise UserError(f"objective=token_kd: no teacher log-probs at {path} ({where}): generate D_ALL with "
                            "teacher.logprobs=<k>, or point objective.logprobs at its d_all.logprobs.parquet")

    def columns(self, records, tokenizer, family, data_path):
        from lamini_lm.logprobs import Sidecar
        from lamini_lm.training.objectives.alignment import TopKColumns

        path = self._sidecar(data_path)
        sidecar = Sidecar(path)
        if not getattr(tokenizer, "is_fast", False):
            raise UserError(f"objective=token_kd needs a fast tokenizer (its character offsets align the tokens); "
                            f"{type(tokenizer).__name__} is not one: give model.tokenizer a folder with a "
                            "tokenizer.json")
        ids = list(records["id"]) if "id" in records.column_names else [None] * len(records)
        no_id = sum(i is None for i in ids)
        if no_id:
            raise UserError(f"objective=token_kd: {no_id} of the {len(ids)} records have no id, so their teacher "
                            f"log-probs cannot be found in {path}: train on generate.py's d_all.jsonl (its records "
                            "carry the ids the log-probs are keyed by)")
        missing = [i for i in ids if i not in sidecar]
        if missing:
            raise UserError(f"objective=token_kd: {len(missing)} of the {len(ids)} records have no teacher log-probs "
                            f"in {path} (the first: id {missing[0]!r}): train on the records generated with "
                            "teacher.logprobs=<k> (data.path), or point objective.logprobs at their file")
        self.exact = self.match == "exact" or (self.match == "auto" and _shares_tokens(sidecar, ids, tokenizer))
        if self.match == "auto":
            log.info("objective.match=auto: %s", "the teacher's tokens are the student's: exact top-k divergence"
                     if self.exact else "the teacher's tokenizer is another: ULD's sorted-probability distance")
        return TopKColumns(path, tokenizer, family, self.exact, sidecar.k)

    # -- the loss ---------------------------------------------------------------------------------
    def loss(self, family, model, batch):
        import torch
        import torch.nn.functional as F

        from lamini_lm.training.objectives import divergence

        logits, targets = family.target_logits(model, batch)
        logprobs = F.log_softmax(logits, -1)
        teacher = batch["kd_logprobs"].to(logprobs.dtype)
        if teacher.shape[0] != len(targets):
            raise RuntimeError(f"{teacher.shape[0]} rows of teacher log-probs for {len(targets)} target tokens")
        if self.exact:  # the student's log-probs at the teacher's tokens
            ids = batch["kd_ids"].long()
            teacher, ids = teacher.masked_fill(ids < 0, -math.inf), ids.clamp(min=0)
        else:  # the student's k largest (their gradient is the gather's)
            with torch.no_grad():
                ids = logprobs.topk(teacher.shape[-1], -1).indices
        # one gather for the targets and the k tokens: its backward is one pass over [N, V], as cross-entropy's is
        picked = logprobs.gather(-1, torch.cat([targets[:, None], ids], -1))
        ce, student = -picked[:, 0], picked[:, 1:]
        if self.exact:
            d = divergence.at_top_k(student, teacher, self.divergence, self.temperature, self.beta)
        else:
            d = divergence.uld_sorted(student, teacher, self.temperature)
        known = (teacher > -math.inf).any(-1)
        mixed = (1 - self.alpha) * ce + self.alpha * self.temperature ** 2 * d
        total = torch.where(known, mixed, ce).sum()
        n, aligned = max(len(targets), 1), known.sum()
        return Loss(total, {"nll": ce.detach().sum() / n, "kd_loss": (d.detach() * known).sum() / aligned.clamp(min=1),
                            "kd_aligned": aligned / n})


def _shares_tokens(sidecar, ids: list[str], tokenizer) -> bool:
    """Whether every token of the first AUTO_RECORDS records' teacher distributions (sampled and alternatives) is one
    of the student's tokens, by its bytes: the teacher's tokenizer is then taken to be the student's."""
    from lamini_lm.token_bytes import token_bytes

    used: set[int] = set()
    for rid in ids[:AUTO_RECORDS]:
        sampled, top, _, _ = sidecar.indices(rid)
        used.update(sampled.tolist(), top[top >= 0].tolist())
    own = set(token_bytes(tokenizer))
    return all(not sidecar.tokens[i] or sidecar.tokens[i] in own for i in used)
