"""Prompt styles: the one place the wrapper strings live.

Training, inference, evaluation and the human-evaluation sheets all read the style from here, and
every checkpoint and export carries its style in ``prompt_style.json`` so that inference wraps an
instruction exactly the way training did.

LaMini-LM (like Stanford Alpaca) wraps decoder-only inputs in Alpaca's *no-input* prompt, with no
newline after ``### Response:`` (LitGPT's Alpaca style adds one, which changes the tokens), and gives
encoder-decoder models the raw instruction. A chat model distilled today (Qwen, Llama, SmolLM instruct) keeps
the turn format it was tuned on: ``chat`` renders its tokenizer's chat template once into a template.
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


CHAT = "chat"  # the tokenizer's own chat template (see chat)


def get(name: str, tokenizer=None) -> PromptStyle:
    """A style by name; ``chat`` needs the tokenizer whose template it renders."""
    if name == CHAT:
        if tokenizer is None:
            raise UserError("prompt style 'chat' renders a tokenizer's chat template: it needs the model's tokenizer")
        return chat(tokenizer)
    if name not in STYLES:
        raise UserError(f"unknown prompt style '{name}'; known: {', '.join([*STYLES, CHAT])}")
    return STYLES[name]


def chat(tokenizer) -> PromptStyle:
    """One user turn of the tokenizer's chat template, up to the assistant's reply, as a fixed template. The
    rendered text (with its default system message, if the template adds one) is saved like any style, so
    inference and evaluation wrap exactly as training did, without the template engine."""
    if not getattr(tokenizer, "chat_template", None):
        raise UserError(f"model.prompt_style=chat: the tokenizer {tokenizer.name_or_path} has no chat template; "
                        f"choose one of {', '.join(STYLES)}")
    mark = "\x00instruction\x00"
    text = tokenizer.apply_chat_template([{"role": "user", "content": mark}], tokenize=False,
                                         add_generation_prompt=True)
    if text.count(mark) != 1:
        raise UserError(f"model.prompt_style=chat: the chat template of {tokenizer.name_or_path} does not place the "
                        f"user message once; choose one of {', '.join(STYLES)}")
    before, after = (part.replace("{", "{{").replace("}", "}}") for part in text.split(mark))
    return PromptStyle(CHAT, before + "{instruction}" + after)


def load(folder: str | Path) -> PromptStyle:
    """The style saved with a checkpoint or export folder."""
    path = Path(folder) / PROMPT_STYLE_FILE
    if not path.exists():
        raise UserError(f"{folder} has no {PROMPT_STYLE_FILE}: not an export written by train.py")
    d = json.loads(path.read_text())
    return PromptStyle(d["name"], d["template"])
