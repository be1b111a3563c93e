"""Chat messages for the three request kinds: example-guided (Figure 2), topic-guided (Figure 7)
and responses with the concise system message (Appendix B). Templates are files under conf/prompts/.
"""

from __future__ import annotations

import functools
from pathlib import Path

from lamini_lm.errors import UserError


@functools.lru_cache(maxsize=8)
def _template(path: str) -> str:
    p = Path(path)
    if not p.exists():
        raise UserError(f"prompt template {p} does not exist (prompts.* in the config names it)")
    text = p.read_text(encoding="utf-8")
    return text[:-1] if text.endswith("\n") else text


def _examples(pcfg, examples: list[str]) -> str:
    return "\n".join(pcfg.example_line.format(instruction=e) for e in examples)


def example_guided(pcfg, examples: list[str], n: int) -> str:
    return _template(pcfg.example_guided).format(examples=_examples(pcfg, examples), n=n)


def topic_guided(pcfg, examples: list[str], topics: list[str], n: int) -> str:
    return _template(pcfg.topic_guided).format(
        examples=_examples(pcfg, examples), n=n, topics=pcfg.topic_separator.join(topics)
    )


def instruction_messages(prompt: str) -> list[dict]:
    return [{"role": "user", "content": prompt}]


def response_messages(pcfg, instruction: str) -> list[dict]:
    return [
        {"role": "system", "content": pcfg.system_message},
        {"role": "user", "content": instruction},
    ]
