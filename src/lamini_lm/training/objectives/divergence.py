"""The divergence between the teacher's and the student's next-token distributions, per target token: the one
place every objective and both model families take it from.

With P the teacher's distribution and Q the student's, both at temperature T, as GKD defines them (Agarwal et al.
2024, "On-Policy Distillation of Language Models: Learning from Self-Generated Mistakes", arXiv:2306.13649, Eq. 1;
TRL's GKDTrainer.generalized_jsd_loss computes the same):

    forward_kl   KL(P || Q) = sum P log(P / Q)
    reverse_kl   KL(Q || P)
    jsd          beta KL(P || M) + (1 - beta) KL(Q || M),  M = beta P + (1 - beta) Q;
                 beta = 0 is forward KL and beta = 1 reverse KL, as TRL reads them (the formula is 0 at both ends)

The teacher's distribution comes whole (logits over the student's vocabulary, a teacher model run beside the
student: ``full``) or as its stored top-k (``top_k``, ``uld``). A top-k distribution is completed by one "rest"
bucket on each side: the teacher's 1 - sum of its k probabilities, the student's 1 - sum of its probabilities at
the same tokens, so that the divergence is between two proper distributions over k + 1 outcomes, never
undefined, and becomes the full one as k grows to the vocabulary (the rest then 0). The temperature divides the
k + 1 bucket log-probabilities on both sides (then renormalised): the only tempering the stored teacher allows
(its mass outside the top-k is known only as a sum), applied to the student the same way so that a student equal
to the teacher is at divergence 0 at every T. A rest is floored at REST_FLOOR: the stored log-probs are float16,
so a top-k's sum can pass 1 by rounding.

Across tokenizers the two vocabularies have no common outcomes; ``uld`` is the Universal Logit Distillation
loss (Boizard et al. 2024, "Towards Cross-Tokenizer Distillation: the Universal Logit Distillation Loss for
LLMs", arXiv:2402.12030): the L1 distance between the two distributions' probabilities sorted in decreasing order
(the closed form of their Wasserstein distance). From a top-k teacher: its k sorted probabilities against the
student's k largest, plus the difference of the two rests (a lower bound of the unknown tail's part, exact as k
grows to the vocabulary).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

DIVERGENCES = ("forward_kl", "reverse_kl", "jsd")
REST_FLOOR = 1e-6


def between(teacher: torch.Tensor, student: torch.Tensor, kind: str, beta: float = 0.5,
            mask: torch.Tensor | None = None) -> torch.Tensor:
    """``kind`` between two distributions given as log-probabilities over the same outcomes, [N, M] -> [N];
    ``mask`` [N, M]: the outcomes that exist (others are left out on both sides, whatever their values)."""
    if mask is not None:  # the left-out outcomes hold -inf: made finite first, so no gradient meets a NaN
        teacher, student = torch.where(mask, teacher, 0.0), torch.where(mask, student, 0.0)
    if kind == "forward_kl" or (kind == "jsd" and beta == 0):
        terms = _kl_terms(teacher, student)
    elif kind == "reverse_kl" or (kind == "jsd" and beta == 1):
        terms = _kl_terms(student, teacher)
    elif kind == "jsd":
        mixture = torch.logaddexp(teacher + math.log(beta), student + math.log1p(-beta))
        terms = beta * _kl_terms(teacher, mixture) + (1 - beta) * _kl_terms(student, mixture)
    else:
        raise ValueError(f"divergence {kind!r} is not one of {', '.join(DIVERGENCES)}")
    return (terms if mask is None else terms * mask).sum(-1)


def _kl_terms(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """KL(p || q)'s terms, p log(p / q), from log-probabilities."""
    return p.exp() * (p - q)


def full(teacher_logits: torch.Tensor, student_logits: torch.Tensor, kind: str, temperature: float = 1.0,
         beta: float = 0.5) -> torch.Tensor:
    """``kind`` between two distributions over one vocabulary given as logits, [N, V] -> [N]."""
    return between(F.log_softmax(teacher_logits / temperature, -1), F.log_softmax(student_logits / temperature, -1),
                   kind, beta)


def top_k(student_logprobs: torch.Tensor, ids: torch.Tensor, teacher_logprobs: torch.Tensor, kind: str,
          temperature: float = 1.0, beta: float = 0.5) -> torch.Tensor:
    """``kind`` between the teacher's top-k and the student, each with its rest bucket, [N] (see the module).

    student_logprobs [N, V]: the student's log-softmax; ids [N, k]: the teacher's top-k as student token ids, -1
    for none; teacher_logprobs [N, k]: their natural-log probabilities, -inf for none."""
    teacher = teacher_logprobs.masked_fill(ids < 0, -math.inf)
    return at_top_k(student_logprobs.gather(-1, ids.clamp(min=0)), teacher, kind, temperature, beta)


def at_top_k(student: torch.Tensor, teacher: torch.Tensor, kind: str, temperature: float = 1.0,
             beta: float = 0.5) -> torch.Tensor:
    """``top_k`` from the student's log-probabilities at the teacher's k tokens, student [N, k] (gathered by the
    caller, who may gather its targets' in the same pass); teacher [N, k], -inf where it has no token."""
    valid = teacher > -math.inf
    teacher, student, mask = _with_rest(teacher, student, valid)
    return between(_tempered(teacher, mask, temperature), _tempered(student, mask, temperature), kind, beta, mask)


def uld(student_logprobs: torch.Tensor, teacher_logprobs: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Universal Logit Distillation's distance from a top-k teacher of another vocabulary, [N] (see the module).

    student_logprobs [N, V]: the student's log-softmax; teacher_logprobs [N, k]: the teacher's k largest
    log-probabilities (any order; -inf for none): compared with as many of the student's largest."""
    return uld_sorted(student_logprobs.topk(teacher_logprobs.shape[-1], -1).values, teacher_logprobs, temperature)


def uld_sorted(student: torch.Tensor, teacher: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """``uld`` from the student's k largest log-probabilities, student [N, k] in decreasing order (gathered by the
    caller); teacher [N, k] in any order, -inf for none."""
    teacher = teacher.sort(-1, descending=True).values
    valid = teacher > -math.inf  # the first ones of each row, after sorting
    teacher, student, mask = _with_rest(teacher, student, valid)
    # a bucket left out is -inf, probability 0, on both sides
    return (_tempered(teacher, mask, temperature).exp() - _tempered(student, mask, temperature).exp()).abs().sum(-1)


def _with_rest(teacher: torch.Tensor, student: torch.Tensor, valid: torch.Tensor):
    """Both sides' k log-probabilities (those not ``valid`` left out) with a last bucket each for the rest of their
    mass: [N, k + 1] twice, and the mask of the buckets that exist."""
    def rest(logprobs):
        mass = torch.where(valid, logprobs, -math.inf).exp().sum(-1, keepdim=True)
        return (1 - mass).clamp(min=REST_FLOOR).log()

    mask = F.pad(valid, (0, 1), value=True)
    return (torch.cat([teacher.to(student.dtype), rest(teacher.to(student.dtype))], -1),
            torch.cat([student, rest(student)], -1), mask)


def _tempered(logprobs: torch.Tensor, mask: torch.Tensor, temperature: float) -> torch.Tensor:
    """Bucket log-probabilities at ``temperature``, renormalised over the buckets that exist (-inf elsewhere)."""
    return F.log_softmax(torch.where(mask, logprobs, -math.inf) / temperature, -1)
