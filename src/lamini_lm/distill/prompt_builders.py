"""Chat messages for the three request kinds: example-guided (Figure 2), topic-guided (Figure 7)
and responses with the concise system message (Appendix B). Templates are files under conf/prompts/.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from lamini_lm.config import BadValue


@dataclass
class PromptsSpec:
    """The prompts (conf/prompts/): two template files and the pieces filled into them."""

    example_guided: str  # Figure 2's template file: {examples}, {n}
    topic_guided: str  # Figure 7's template file: {examples}, {n}, {topics}
    example_line: str  # one example in a prompt: {instruction}
    topic_separator: str
    system_message: str  # the responses' system message (Appendix B)

    def __post_init__(self):
        for key in ("example_guided", "topic_guided"):
            if not Path(getattr(self, key)).is_file():
                raise BadValue(key, f"the prompt template {getattr(self, key)} does not exist")
        if "{instruction}" not in self.example_line:
            raise BadValue("example_line", f"{self.example_line!r} has no {{instruction}} to put the example in")


@functools.lru_cache(maxsize=8)
def _template(path: str) -> str:
    text = Path(path).read_text(encoding="utf-8")
    return text[:-1] if text.endswith("\n") else text


def _examples(prompts: PromptsSpec, examples: list[str]) -> str:
    return "\n".join(prompts.example_line.format(instruction=e) for e in examples)


def example_guided(prompts: PromptsSpec, examples: list[str], n: int) -> str:
    return _template(prompts.example_guided).format(examples=_examples(prompts, examples), n=n)


def topic_guided(prompts: PromptsSpec, examples: list[str], topics: list[str], n: int) -> str:
    return _template(prompts.topic_guided).format(
        examples=_examples(prompts, examples), n=n, topics=prompts.topic_separator.join(topics)
    )


def instruction_messages(prompt: str) -> list[dict]:
    return [{"role": "user", "content": prompt}]


def response_messages(prompts: PromptsSpec, instruction: str) -> list[dict]:
    return [
        {"role": "system", "content": prompts.system_message},
        {"role": "user", "content": instruction},
    ]
