"""Parse the <example> items of an instruction-generation reply.

Survives what teachers really send: chatter around the items, numbering inside or outside the
tags, a missing closing tag, fewer items than asked, an empty reply, and a reply that forgot the
tags but numbered its items (read line by line, chatter lines ignored). When the reply was cut
off (finish_reason == "length") its last item is dropped as truncated (as Alpaca does).
"""

from __future__ import annotations

import re

# an item runs from <example> to </example>, the next <example>, or the end of the reply
_ITEM = re.compile(r"<example>(.*?)(?:</example>|(?=<example>)|\Z)", re.DOTALL | re.IGNORECASE)
_NUMBERING = re.compile(r"^\s*(?:\(?\d{1,3}[.):]|[-*•])\s+")
_LABEL = re.compile(r"^\s*(?:instruction|example)\s*\d*\s*:\s*", re.IGNORECASE)
_NUMBERED_LINE = re.compile(r"^\s*\(?\d{1,3}[.)]\s+(.+?)\s*$", re.MULTILINE)


def parse_examples(text: str, finish_reason: str = "stop") -> tuple[list[str], int]:
    """(clean items, number dropped as truncated)."""
    text = text or ""
    if "<example>" in text.lower():
        raw = [m.group(1).replace("</example>", "") for m in _ITEM.finditer(text)]
    else:
        numbered = _NUMBERED_LINE.findall(text)
        raw = numbered if len(numbered) >= 2 else []
    items = []
    for item in raw:
        item = _LABEL.sub("", _NUMBERING.sub("", item.strip())).strip()
        if item:
            items.append(item)
    truncated = 0
    if finish_reason == "length" and items:
        items.pop()
        truncated = 1
    return items, truncated
