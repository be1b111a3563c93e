"""Tiny randomly initialised exports (real GPT-2 / T5 tokenizers) for tests, benchmarks and smoke runs.

They have the exact layout train.py's export writes (save_pretrained model + tokenizer and
prompt_style.json), so the evaluation treats them like any trained student.

    python -m lamini_lm.evaluation.tiny out/tiny      # writes out/tiny/{gpt2,t5}/hf
"""

from __future__ import annotations

import sys
from pathlib import Path

from lamini_lm import assets, prompts


def make_export(folder: str | Path, kind: str = "gpt2", seed: int = 0) -> Path:
    """Write a tiny ``kind`` ('gpt2' decoder-only or 't5' encoder-decoder) export to ``folder``."""
    import torch
    from transformers import (AutoTokenizer, GPT2Config, GPT2LMHeadModel, T5Config,
                              T5ForConditionalGeneration)

    folder = Path(folder)
    torch.manual_seed(seed)
    if kind == "gpt2":
        tok = AutoTokenizer.from_pretrained(assets.path("gpt2_tokenizer"))
        model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_head=2, n_embd=64, n_positions=512))
        style = prompts.get("alpaca")
    elif kind == "t5":
        tok = AutoTokenizer.from_pretrained(assets.path("t5_tokenizer"))
        model = T5ForConditionalGeneration(T5Config(vocab_size=32128, d_model=64, d_ff=128, d_kv=16, num_layers=2,
                                                    num_heads=2, decoder_start_token_id=0))
        style = prompts.get("raw")
    else:
        raise ValueError(f"unknown tiny model kind {kind!r}")
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    style.save(folder)
    (folder / "README.md").write_text(f"# tiny-random-{kind}\n\nRandom weights, for tests only.\n")
    return folder


def ensure_export(root: str | Path, kind: str = "gpt2") -> Path:
    """``<root>/<kind>/hf``, written once and reused (tests share one export per session)."""
    folder = Path(root) / kind / "hf"
    if not (folder / prompts.PROMPT_STYLE_FILE).exists():
        make_export(folder, kind)
    return folder


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "tiny_models")
    for k in ("gpt2", "t5"):
        print(ensure_export(out, k))
