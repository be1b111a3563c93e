"""Records -> token ids and labels, as the model's family encodes them (lamini_lm.models.families).

The instruction is wrapped in the prompt style first; the family then decides what is input and what
is target (decoder-only: one sequence, the prompt masked from the loss unless mask_prompt=false;
encoder-decoder: the prompt into the encoder, the response as labels).
"""

from __future__ import annotations

from lamini_lm.models.families import Family
from lamini_lm.prompts import PromptStyle


class Tokenize:
    """A picklable batched `datasets.map` function; its fields enter the datasets cache fingerprint."""

    def __init__(self, tokenizer, style: PromptStyle, family: Family, max_source_length: int,
                 max_target_length: int, mask_prompt: bool = True, context: int | None = None, columns=None):
        self.tokenizer = tokenizer
        self.style = style
        self.family = family
        self.max_source_length = max_source_length
        self.max_target_length = max_target_length
        self.mask_prompt = mask_prompt
        self.context = context  # the model's positions (Family.context): no example is longer
        # what the training objective adds to each example (training/objectives/base.py Columns), or None
        self.columns = columns

    def __call__(self, batch: dict) -> dict:
        prompts = [self.style.apply(x) for x in batch["instruction"]]
        out = self.family.encode(self.tokenizer, prompts, batch["response"], self.max_source_length,
                                 self.max_target_length, self.mask_prompt, context=self.context)
        if self.columns is not None:
            out.update(self.columns(batch, out))
        return out
