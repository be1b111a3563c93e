"""Helpers that let distributed-strategy configs name classes as strings."""

from __future__ import annotations

from hydra.utils import get_class


def module_classes(names: list[str]) -> set[type]:
    """{GPT2Block, ...} from dotted names: FSDP's auto-wrap and activation-checkpointing policies."""
    return {get_class(n) for n in names}
