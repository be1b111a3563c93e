"""Records -> token ids and labels, for both model families.

Decoder-only: the Alpaca-wrapped instruction, then the response and EOS; with mask_prompt (the
default) the prompt's tokens are masked from the loss (-100). The two parts are tokenised separately
so the mask boundary is exact.
Encoder-decoder: the (raw) instruction is the encoder input, the response (+ EOS) the labels.
"""

from __future__ import annotations

from lamini_lm.prompts import PromptStyle

IGNORE_INDEX = -100


class Tokenize:
    """A picklable batched `datasets.map` function; its fields enter the datasets cache fingerprint."""

    def __init__(self, tokenizer, style: PromptStyle, family: str, max_source_length: int, max_target_length: int,
                 mask_prompt: bool = True):
        self.tokenizer = tokenizer
        self.mask_prompt = mask_prompt
        self.style = style
        self.family = family
        self.max_source_length = max_source_length
        self.max_target_length = max_target_length

    def __call__(self, batch: dict) -> dict:
        tok = self.tokenizer
        prompts = [self.style.apply(x) for x in batch["instruction"]]
        if self.family == "encoder_decoder":
            src = tok(prompts, truncation=True, max_length=self.max_source_length)["input_ids"]
            tgt = tok(batch["response"], truncation=True, max_length=self.max_target_length)["input_ids"]
            return {"input_ids": src, "labels": tgt, "source_length": [len(s) for s in src],
                    "target_length": [len(t) for t in tgt]}
        src = tok(prompts, add_special_tokens=False, truncation=True, max_length=self.max_source_length)["input_ids"]
        tgt = tok(batch["response"], add_special_tokens=False, truncation=True,
                  max_length=self.max_target_length - 1)["input_ids"]
        input_ids, labels = [], []
        for s, t in zip(src, tgt):
            t = t + [tok.eos_token_id]
            input_ids.append(s + t)
            labels.append(([IGNORE_INDEX] * len(s) if self.mask_prompt else s) + t)
        return {"input_ids": input_ids, "labels": labels, "source_length": [len(x) for x in input_ids],
                "target_length": [sum(1 for v in lab if v != IGNORE_INDEX) for lab in labels]}
