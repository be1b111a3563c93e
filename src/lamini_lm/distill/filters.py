"""Named, configurable instruction filters; each returns True to keep. Drops are counted by name. A filter of
one's own is a function in one's own module, named in conf/filters/ by `_target_`."""

from __future__ import annotations

import inspect
import re
import string

from hydra.utils import get_method

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


def _resolve(name: str, params: dict):
    """(the filter function, its settings): a built-in by name, or a function of one's own named by `_target_`
    (text first, then its settings), e.g. filters.min_letters={_target_: mypkg.filters.min_letters, n: 10}."""
    params = dict(params)
    target = params.pop("_target_", None)
    if target is None:
        if name not in FILTERS:
            raise BadValue(f"filters.{name}", f"not a known filter (known: {', '.join(FILTERS)}); a filter of your "
                                              "own is a function named by filters.<name>._target_")
        return FILTERS[name], params
    try:
        return get_method(target), params
    except Exception as e:  # Hydra's import error, on one line
        raise BadValue(f"filters.{name}._target_", f"{target} cannot be imported ({' '.join(str(e).split())})") from None


def check(filters: dict) -> None:
    """The filters node (conf/filters/: {name: its settings, or null for off}) names known filters (or functions,
    by `_target_`) and their settings; else a BadValue naming filters.<name>[.<setting>]."""
    for name, params in filters.items():
        if params is None:
            continue
        fn, settings = _resolve(name, params)
        known = list(inspect.signature(fn).parameters)[1:]  # after the text
        for key in settings:
            if key not in known:
                raise BadValue(f"filters.{name}.{key}",
                               f"not a setting of the {name} filter; its settings: {', '.join(known) or 'none'}")


class Filters:
    def __init__(self, filters: dict):
        """``filters``: the checked filters node (``check``), applied in its order."""
        self.active = [(name, *_resolve(name, params)) for name, params in filters.items() if params is not None]

    def reason(self, text: str) -> str | None:
        """The name of the first filter that drops `text`, or None to keep it."""
        for name, fn, params in self.active:
            if not fn(text, **params):
                return name
        return None
