"""Named, configurable instruction filters; each returns True to keep. Drops are counted by name."""

from __future__ import annotations

import re
import string

from lamini_lm.errors import UserError


def length(text: str, min_words: int = 4, max_words: int = 150) -> bool:
    return min_words <= len(text.split()) <= max_words


def blacklist(text: str, words: list[str] = ()) -> bool:
    low = text.lower()
    return not any(re.search(rf"\b{re.escape(w.lower())}\b", low) for w in words)


def punctuation_start(text: str) -> bool:
    return bool(text) and text[0] not in string.punctuation


def non_ascii_start(text: str) -> bool:
    return bool(text) and text[0].isascii()


FILTERS = {f.__name__: f for f in (length, blacklist, punctuation_start, non_ascii_start)}


class Filters:
    def __init__(self, fcfg):
        self.active = []
        for name, params in (fcfg or {}).items():
            if params is None:
                continue
            if name not in FILTERS:
                raise UserError(f"filters.{name} is not a known filter; known: {', '.join(FILTERS)}")
            self.active.append((name, FILTERS[name], dict(params)))

    def reason(self, text: str) -> str | None:
        """The name of the first filter that drops `text`, or None to keep it."""
        for name, fn, params in self.active:
            if not fn(text, **params):
                return name
        return None
