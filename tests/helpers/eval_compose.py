"""Shared by the tests/test_eval_*.py files: compose conf/evaluate.yaml, share tiny exports per session."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# the project's shared data, beside the clone (CI) or beside the worktrees folder; tests that need it use it
# when present and fall back to the small committed fixtures otherwise
SHARED = next((p for p in (ROOT.parent / "shared", ROOT.parent.parent / "shared") if p.is_dir()), ROOT.parent / "shared")


def compose(out_dir: Path, *overrides: str):
    """The real evaluate config with ``overrides``, typed as evaluate.py types it (EvaluateSpec); run outputs
    go to ``out_dir``."""
    from lamini_lm import config
    from lamini_lm.evaluation.spec import EvaluateSpec

    return config.typed(config.compose("evaluate", [f"paths.output_dir={out_dir}", "wandb.enabled=false", *overrides]),
                        EvaluateSpec)


def tiny_root(tmp_path_factory) -> Path:
    """A folder laid out like a training multirun (gpt2/hf, t5/hf), written once per test session."""
    from lamini_lm.evaluation import tiny

    root = tmp_path_factory.getbasetemp() / "tiny_exports"
    for kind in ("gpt2", "t5"):
        tiny.ensure_export(root, kind)
    return root
