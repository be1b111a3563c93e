"""Tiny randomly initialised exports (real GPT-2 / T5 tokenizers) for tests, benchmarks and smoke runs.

The models are conf/model/tiny_{gpt2,t5}.yaml with random weights, written by the training stage's own
exporter (lamini_lm.training.export.write_export), so the evaluation treats them like any trained student.

    python -m lamini_lm.evaluation.tiny out/tiny      # writes out/tiny/{gpt2,t5}/hf
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from lamini_lm import config, prompts
from lamini_lm.models.backbone import build_family, load_model, load_tokenizer
from lamini_lm.models.spec import ModelSpec
from lamini_lm.training.export import write_export


def make_export(folder: str | Path, kind: str = "gpt2", seed: int = 0) -> Path:
    """Write a tiny ``kind`` ('gpt2' decoder-only or 't5' encoder-decoder) export to ``folder``: the model
    config model=tiny_<kind>, random weights, written by the training stage's exporter."""
    if kind not in ("gpt2", "t5"):
        raise ValueError(f"unknown tiny model kind {kind!r}")
    model_cfg = config.typed(config.compose("train", [f"model=tiny_{kind}"]).model, ModelSpec, "model")
    family = build_family(model_cfg)
    torch.manual_seed(seed)
    return write_export(load_model(model_cfg, family), load_tokenizer(model_cfg), family,
                        family.style(model_cfg.prompt_style), folder, model_cfg=model_cfg, metrics={})


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
