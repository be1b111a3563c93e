"""Named, configurable instruction filters; each returns True to keep. Drops are counted by name."""

from __future__ import annotations

import inspect
import re
import string

from lamini_lm.config import BadValue


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


def check(filters: dict) -> None:
    """The filters node (conf/filters/: {name: its settings, or null for off}) names known filters and settings;
    else a BadValue naming filters.<name>[.<setting>]."""
    for name, params in filters.items():
        if params is None:
            continue
        if name not in FILTERS:
            raise BadValue(f"filters.{name}", f"not a known filter; known: {', '.join(FILTERS)}")
        settings = list(inspect.signature(FILTERS[name]).parameters)[1:]  # after the text
        for key in params:
            if key not in settings:
                raise BadValue(f"filters.{name}.{key}",
                               f"not a setting of the {name} filter; its settings: {', '.join(settings) or 'none'}")


class Filters:
    def __init__(self, filters: dict):
        """``filters``: the checked filters node (``check``), applied in its order."""
        self.active = [(name, FILTERS[name], dict(params)) for name, params in filters.items() if params is not None]

    def reason(self, text: str) -> str | None:
        """The name of the first filter that drops `text`, or None to keep it."""
        for name, fn, params in self.active:
            if not fn(text, **params):
                return name
        return None
