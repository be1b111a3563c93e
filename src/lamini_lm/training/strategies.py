"""Helpers that let distributed-strategy configs name classes as strings."""

from __future__ import annotations

from hydra.utils import get_class


def module_classes(names: list[str], enabled: bool = True) -> set[type] | None:
    """{GPT2Block, ...} from dotted names: FSDP's auto-wrap and activation-checkpointing policies; None (no policy)
    when not ``enabled``."""
    return {get_class(n) for n in names} if enabled else None
