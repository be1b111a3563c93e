"""A user's own records as ours (`data.fields`): which of their fields hold the instruction, its input, the
response and the subset, or a chat ``messages`` list (lamini_lm.data.chat).

A record becomes {instruction, response, instruction_source, id} (id: None when it has none). A record with the
mapped instruction or response field needs both; one with neither needs a messages list. An input (Alpaca's) is
joined after the instruction with a blank line when it is not empty. A record without an instruction_source is of the subset ``unspecified``
(train.py's data.subsets may select it); one with an instruction_source names one of the seven LaMini subsets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from lamini_lm.config import BadValue
from lamini_lm.data import chat
from lamini_lm.data.records import check_source
from lamini_lm.errors import UserError
from lamini_lm.subsets import SUBSETS

UNSPECIFIED = "unspecified"  # not a LaMini subset: generate.py and the analysis know only the seven
TRAINING_SUBSETS = (*SUBSETS, UNSPECIFIED)  # what data.subsets may name


@dataclass
class Fields:
    """conf/data/base/records.yaml `fields`: the record's field name for each of ours (null: none)."""

    instruction: str = "instruction"
    response: str = "response"
    input: Optional[str] = "input"
    instruction_source: Optional[str] = "instruction_source"
    messages: str = "messages"
    id: Optional[str] = "id"  # the record's id (D_ALL's), which objective=token_kd finds its teacher log-probs by

    def __post_init__(self):
        seen: dict[str, str] = {}  # field name -> our key
        for key, name in vars(self).items():
            if name is None:
                continue
            if not name:
                raise BadValue(key, "is empty: give the name of one of the data's fields")
            if name in seen:
                raise BadValue(key, f"names the field '{name}', as data.fields.{seen[name]} does: give each its own")
            seen[name] = key


def to_record(row: object, where: str, fields: Fields) -> dict:
    """``row`` (the data file's line ``where``) as a training record; a UserError naming ``where`` if it is not one.
    A field that is absent or null (a Parquet or hub dataset's row lacking it) is missing."""
    if not isinstance(row, dict):
        raise UserError(f"{where}: expected a JSON object, got {type(row).__name__}")
    f = fields
    if row.get(f.instruction) is not None or row.get(f.response) is not None:
        instruction = _text(row, where, "instruction", f.instruction)
        response = _text(row, where, "response", f.response)
        given = _text(row, where, "input", f.input) if f.input and row.get(f.input) is not None else ""
        if given.strip():
            instruction = f"{instruction}\n\n{given}"
    elif row.get(f.messages) is not None:
        instruction, response = chat.split(row[f.messages], where, f.messages)
    else:
        raise UserError(
            f"{where}: no '{f.instruction}' and '{f.response}' fields and no '{f.messages}' list (the record has "
            f"{', '.join(map(str, row)) or 'no fields'}): name the fields that hold the instruction and the response "
            f"(data.fields.instruction=<field> data.fields.response=<field>), or give chat messages "
            f"(data.fields.messages=<field>)"
        )
    source = row.get(f.instruction_source) if f.instruction_source else None
    if source is None:
        source = UNSPECIFIED
    else:
        fix = f"leave it out, or set data.fields.instruction_source=null, to train on it as '{UNSPECIFIED}'"
        check_source(_text(row, where, "instruction_source", f.instruction_source), where, f.instruction_source, fix)
    rid = row.get(f.id) if f.id else None
    return {"instruction": instruction, "response": response, "instruction_source": source,
            "id": None if rid is None else str(rid)}


def _text(row: dict, where: str, key: str, name: str) -> str:
    value = row.get(name)
    if value is None:
        raise UserError(f"{where}: missing field '{name}' (data.fields.{key}={name})")
    if not isinstance(value, str):
        raise UserError(
            f"{where}: field '{name}' must be a string, got {type(value).__name__} (data.fields.{key}={name})")
    return value
