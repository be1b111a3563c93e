"""Teachers, one interface chosen by the `teacher` config group.

A teacher turns Chat Completions request bodies into replies and appends each finished one to a
RequestStore. `run()` gets all of a stage's requests and sends only those the store lacks (a local
model needs the whole list to batch a rerun exactly as the first run). `check()` raises before any
work when it cannot run (e.g. no API key).
"""

from __future__ import annotations

from lamini_lm.errors import UserError


def build(tcfg, prices, progress: bool = True, state_dir="."):
    """The teacher of config group `teacher`; the Batch API keeps its batch ids under state_dir/batches."""
    kind = tcfg.kind
    if kind == "openai":
        from lamini_lm.distill.teachers.openai import OpenAITeacher

        return OpenAITeacher(tcfg, prices, progress)
    if kind == "openai_batch":
        from lamini_lm.distill.teachers.openai_batch import BatchTeacher

        return BatchTeacher(tcfg, prices, progress, state_dir=state_dir)
    if kind == "hf_local":
        from lamini_lm.distill.teachers.hf_local import HFLocalTeacher

        return HFLocalTeacher(tcfg, prices, progress)
    raise UserError(f"teacher.kind '{kind}' is unknown; choose teacher=openai, openai_batch or hf_local")


class Teacher:
    """What every teacher keeps: its config, the price table (cost so far on the progress bar), the bar switch."""

    def __init__(self, tcfg, prices, progress: bool = True):
        self.cfg = tcfg
        self.prices = prices
        self.progress = progress
        self.model = tcfg.model


def request_body(tcfg, messages: list[dict], max_tokens: int, params: dict | None = None) -> dict:
    """The Chat Completions body for a request; everything in it is hashed into the request id.

    `params` override teacher.params (e.g. the judge's greedy decoding).
    """
    body = {"model": tcfg.model, "messages": messages, "max_tokens": int(max_tokens)}
    body.update({k: v for k, v in {**(tcfg.params or {}), **(params or {})}.items() if v is not None})
    return body
