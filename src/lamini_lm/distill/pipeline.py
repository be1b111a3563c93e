"""Dispatch generate.py's stages."""

from __future__ import annotations

from omegaconf import DictConfig

from lamini_lm.errors import UserError


def run(cfg: DictConfig) -> None:
    if cfg.stage == "analyze":
        from lamini_lm.analysis import run as analyze

        analyze(cfg)
        return
    raise UserError(f"unknown stage '{cfg.stage}'")
