"""Batched generation with a model's own prompt style: sample tables, human-eval responses, demos."""

from __future__ import annotations

from pathlib import Path

from lamini_lm import prompts
from lamini_lm.errors import UserError


def load_export(folder: str | Path):
    """(model, tokenizer, prompt style) from a folder written by train.py's export."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    folder = Path(folder)
    if not (folder / "config.json").exists():
        raise UserError(f"{folder} is not a model export (no config.json); train.py writes one to <run dir>/hf/")
    style = prompts.load(folder)
    config = AutoConfig.from_pretrained(folder)
    auto = AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForCausalLM
    return auto.from_pretrained(folder), AutoTokenizer.from_pretrained(folder), style


def generate(model, tokenizer, style: prompts.PromptStyle, instructions: list[str], *, batch_size: int = 8,
             max_new_tokens: int = 128, **generate_kwargs) -> list[str]:
    """Responses to ``instructions``, wrapped in ``style``; greedy unless generate_kwargs say otherwise."""
    import torch

    encoder_decoder = model.config.is_encoder_decoder
    tokenizer.padding_side = "right" if encoder_decoder else "left"  # decoder-only continues from the right edge
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    was_training = model.training
    model.eval()
    out: list[str] = []
    try:
        for i in range(0, len(instructions), batch_size):
            prompts_ = [style.apply(x) for x in instructions[i : i + batch_size]]
            enc = tokenizer(prompts_, return_tensors="pt", padding=True).to(model.device)
            with torch.no_grad():
                ids = model.generate(**enc, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                                     **generate_kwargs)
            if not encoder_decoder:
                ids = ids[:, enc["input_ids"].shape[1]:]
            out.extend(t.strip() for t in tokenizer.batch_decode(ids, skip_special_tokens=True))
    finally:
        model.train(was_training)
    return out
