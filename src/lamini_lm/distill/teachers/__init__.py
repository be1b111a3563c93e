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


def request_body(tcfg, messages: list[dict], purpose: str) -> dict:
    """The Chat Completions body for a request; everything in it is hashed into the request id."""
    body = {"model": tcfg.model, "messages": messages, "max_tokens": int(tcfg.max_tokens[purpose])}
    body.update({k: v for k, v in (tcfg.params or {}).items() if v is not None})
    return body
