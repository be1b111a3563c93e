"""Chat messages as one instruction and its response: how train.py reads a record's ``messages`` list.

The OpenAI / Hugging Face chat format: ``[{"role": "system" | "user" | "assistant", "content": "..."}, ...]``. A
conversation must end with an assistant turn: that turn is the response, the turns before it the prompt, which
must end with a user turn. Our choice (the paper trains on single instruction/response pairs): a single user turn,
after any system turns, is the instruction as it is, each system turn's content before it, separated by a blank
line; more turns become a transcript, one paragraph per turn ("User: ..." / "Assistant: ...", a system turn's
content as it is), ending with the last user turn. Either way the instruction is then wrapped in the model's prompt
style like any other.
"""

from __future__ import annotations

from lamini_lm.errors import UserError

LABELS = {"system": None, "user": "User", "assistant": "Assistant"}  # a transcript's paragraph label per role
FORMAT = 'a list of {"role": "system"|"user"|"assistant", "content": "<text>"} turns ending with an assistant turn'


def split(messages: object, where: str, field: str) -> tuple[str, str]:
    """(instruction, response) of the conversation in the record's ``field``; ``where`` is 'file:line' for errors."""
    if not isinstance(messages, list) or not messages:
        raise UserError(f"{where}: field '{field}' must be {FORMAT}, got {_shown(messages)}")
    for i, turn in enumerate(messages, 1):
        if not isinstance(turn, dict) or turn.get("role") is None or "content" not in turn:
            raise UserError(f"{where}: turn {i} of '{field}' needs a 'role' and a 'content' ({FORMAT})")
        if not isinstance(turn["role"], str) or turn["role"] not in LABELS:
            raise UserError(
                f"{where}: turn {i} of '{field}' has the role '{turn['role']}': use system, user or assistant")
        if not isinstance(turn["content"], str):
            what = type(turn["content"]).__name__
            raise UserError(f"{where}: turn {i} of '{field}' has a 'content' of type {what}: give its text as a string")
    roles = [t["role"] for t in messages]
    if "assistant" not in roles:
        raise UserError(f"{where}: '{field}' has no assistant turn: its last turn must be the assistant's response")
    if roles[-1] != "assistant":
        raise UserError(f"{where}: '{field}' ends with a {roles[-1]} turn: a conversation must end with the "
                        "assistant's response (drop the turns after it)")
    *prompt, response = messages
    if not prompt or prompt[-1]["role"] != "user":
        raise UserError(f"{where}: the last turn of '{field}' answers no user turn: put the user's turn before it")
    transcript = sum(t["role"] != "system" for t in prompt) > 1
    paragraphs = [f"{LABELS[t['role']]}: {t['content']}" if transcript and LABELS[t["role"]] else t["content"]
                  for t in prompt]
    return "\n\n".join(paragraphs), response["content"]


def _shown(value: object) -> str:
    return "an empty list" if value == [] else type(value).__name__
