"""The paper's objective: the NLL of the teacher's responses, one target token per position (sequence-level
distillation: the student learns the sampled text and nothing of what else the teacher would have said)."""

from __future__ import annotations

from lamini_lm.training.objectives.base import Loss, Objective


class Sequence(Objective):
    def loss(self, family, model, batch):
        return Loss(family.token_nll(model, batch), {})
