"""Prompt styles: the one place the wrapper strings live.

Training, inference, evaluation and the human-evaluation sheets all read the style from here, and
every checkpoint and export carries its style in ``prompt_style.json`` so that inference wraps an
instruction exactly the way training did.

LaMini-LM (like Stanford Alpaca) wraps decoder-only inputs in Alpaca's *no-input* prompt, with no
newline after ``### Response:`` (LitGPT's Alpaca style adds one, which changes the tokens), and gives
encoder-decoder models the raw instruction.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from lamini_lm.errors import UserError

PROMPT_STYLE_FILE = "prompt_style.json"


@dataclass(frozen=True)
class PromptStyle:
    name: str
    template: str  # a str.format template with one field, {instruction}

    def apply(self, instruction: str) -> str:
        return self.template.format(instruction=instruction)

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / PROMPT_STYLE_FILE
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")
        return path


STYLES: dict[str, PromptStyle] = {
    s.name: s
    for s in [
        PromptStyle(
            "alpaca",
            "Below is an instruction that describes a task. "
            "Write a response that appropriately completes the request.\n\n"
            "### Instruction:\n{instruction}\n\n### Response:",
        ),
        PromptStyle("raw", "{instruction}"),
    ]
}


def get(name: str) -> PromptStyle:
    if name not in STYLES:
        raise UserError(f"unknown prompt style '{name}'; known: {', '.join(STYLES)}")
    return STYLES[name]


def load(folder: str | Path) -> PromptStyle:
    """The style saved with a checkpoint or export folder."""
    path = Path(folder) / PROMPT_STYLE_FILE
    if not path.exists():
        raise UserError(f"{folder} has no {PROMPT_STYLE_FILE}: not an export written by train.py")
    d = json.loads(path.read_text())
    return PromptStyle(d["name"], d["template"])
