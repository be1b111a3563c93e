"""A filter of one's own (tests): named in conf/filters/ by `_target_`, the instruction first, then its settings."""


def min_letters(text: str, n: int = 10) -> bool:
    return sum(c.isalpha() for c in text) >= n
