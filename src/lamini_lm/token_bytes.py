"""The exact bytes each token of a tokenizer stands for in decoded text: how a teacher names the tokens of its
stored log-probs (lamini_lm.logprobs keeps tokens as bytes), and how a student of another tokenizer can find
them again by their bytes.

Byte-level BPE (GPT-2, SmolLM2, Llama 3, Qwen): a piece is GPT-2's byte-to-unicode table applied to the bytes,
so the table inverted gives them back. SentencePiece (T5, Llama 2): "▁" is a space and <0xNN> pieces (byte
fallback) are the byte NN. Any other tokenizer: the token decoded alone (exact for whole characters only).
Added and special tokens are their own text.
"""

from __future__ import annotations

import functools
import json
import re

_BYTE_PIECE = re.compile(r"<0x([0-9A-Fa-f]{2})>")


@functools.lru_cache(maxsize=1)
def _unicode_to_byte() -> dict[str, int]:
    """GPT-2's bytes_to_unicode table inverted (as transformers.convert_slow_tokenizer.bytes_to_unicode): printable
    Latin-1 bytes stand for themselves, the other 68 bytes for the code points from 256 up."""
    kept = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = {}, 0
    for b in range(256):
        if b in kept:
            chars[chr(b)] = b
        else:
            chars[chr(256 + extra)] = b
            extra += 1
    return chars


def _decoder_kinds(tokenizer) -> set[str]:
    """The types of the fast tokenizer's decoder (a Sequence's parts included); empty for a slow tokenizer."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return set()
    decoder = json.loads(backend.to_str()).get("decoder") or {}
    parts = decoder.get("decoders") or [decoder]
    kinds = {p.get("type") for p in parts}
    if any(p.get("type") == "Replace" and "▁" in json.dumps(p.get("pattern"), ensure_ascii=False) for p in parts):
        kinds.add("Metaspace")
    return kinds


def token_bytes(tokenizer, size: int | None = None) -> list[bytes]:
    """Each token id's bytes, indexed by id, for ``size`` ids (default: the tokenizer's length; a model's output
    layer may have more rows than the tokenizer has tokens: those are b"")."""
    n = len(tokenizer)
    pieces = tokenizer.convert_ids_to_tokens(list(range(n)))
    added = {i: t.content for i, t in getattr(tokenizer, "added_tokens_decoder", {}).items()}
    kinds = _decoder_kinds(tokenizer)
    if "ByteLevel" in kinds:
        table = _unicode_to_byte()

        def one(i: int, piece: str) -> bytes:
            if all(c in table for c in piece):
                return bytes(table[c] for c in piece)
            return piece.encode("utf-8")
    elif "Metaspace" in kinds:

        def one(i: int, piece: str) -> bytes:
            m = _BYTE_PIECE.fullmatch(piece)
            return bytes([int(m.group(1), 16)]) if m else piece.replace("▁", " ").encode("utf-8")
    else:

        def one(i: int, piece: str) -> bytes:
            return tokenizer.decode([i]).encode("utf-8")

    out = [added[i].encode("utf-8") if i in added else one(i, p or "") for i, p in enumerate(pieces)]
    return out + [b""] * max(0, (size or n) - n)
