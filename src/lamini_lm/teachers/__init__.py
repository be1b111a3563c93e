"""Teachers, shared by generate.py and evaluate.py's LLM judge: chat models that answer requests into a
resumable request store, with progress, rate limits, token counts and cost.

    base.py          the Teacher contract (check, run) and request_body
    store.py         Request, Reply, RequestStore: the append-only store a rerun resumes from
    progress.py      Stats (what a run did) and the progress bar
    limits.py        RPM/TPM budgets, rate-limit headers, backoff, request slots
    tokens.py        cl100k_base token counts and the cost of tokens
    openai_api.py    what the two OpenAI-API teachers share (key, client, reply format, run)
    openai.py        teacher=openai: Chat Completions under limits
    openai_batch.py  teacher=openai_batch: the Batch API
    hf_local.py      teacher=hf_local: a transformers chat model in process
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from lamini_lm import targets
from lamini_lm.teachers.base import Teacher


def build(tcfg, prices=None, progress: bool = True, state_dir: str | Path = ".") -> Teacher:
    """The teacher that `tcfg._target_` names, with tcfg's settings and these run-time objects.

    state_dir: the run's folder, where a teacher may keep its own state (the Batch API's batch ids).
    """
    if isinstance(prices, DictConfig):
        prices = OmegaConf.to_container(prices, resolve=True)
    return targets.build(tcfg, "teacher", base=Teacher, prices=prices, progress=progress, state_dir=state_dir)
