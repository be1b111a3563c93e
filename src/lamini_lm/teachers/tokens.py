"""Teacher-token counting with cl100k_base (gpt-3.5-turbo's tokenizer), offline, and cost."""

from __future__ import annotations

import functools

from lamini_lm import assets
from lamini_lm.errors import UserError

# tiktoken is imported when the first count is asked for: a run with no budget to check never loads it


@functools.lru_cache(maxsize=1)
def cl100k():
    """tiktoken's cl100k_base built from the offline asset's rank file (sha256 checked by tiktoken)."""
    import tiktoken
    import tiktoken_ext.openai_public as public
    from tiktoken.load import load_tiktoken_bpe

    ranks_file = assets.path("cl100k_base") / "cl100k_base.tiktoken"
    original = public.load_tiktoken_bpe
    # the constructor's pattern and special tokens stay tiktoken's own; only the download is replaced
    public.load_tiktoken_bpe = lambda _url, expected_hash=None: load_tiktoken_bpe(
        str(ranks_file), expected_hash=expected_hash
    )
    try:
        params = public.cl100k_base()
    finally:
        public.load_tiktoken_bpe = original
    return tiktoken.Encoding(**params)


def count_text(text: str) -> int:
    return len(cl100k().encode(text, disallowed_special=()))


def count_messages(messages: list[dict]) -> int:
    """Prompt tokens of a chat request as OpenAI counts them for gpt-3.5/4 (3 per message + 3)."""
    return sum(3 + count_text(m["content"]) for m in messages) + 3


def price_of(prices, model: str) -> dict | None:
    """The price row for a model: exact name, else the longest configured prefix (dated snapshots)."""
    if prices is None:
        return None
    names = sorted((k for k in prices if model.startswith(k)), key=len, reverse=True)
    return dict(prices[names[0]]) if names else None


def cost(prices, model: str, prompt_tokens: int, completion_tokens: int, batch: bool = False) -> float | None:
    row = price_of(prices, model)
    if row is None:
        return None
    try:
        i, o = (row["batch_input"], row["batch_output"]) if batch else (row["input"], row["output"])
    except KeyError as e:
        raise UserError(f"prices.{model} has no '{e.args[0]}' (USD per 1M tokens)") from None
    return (prompt_tokens * i + completion_tokens * o) / 1e6
