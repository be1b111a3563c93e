"""Offline assets: verified before use, and a missing one says how to get it."""

import dataclasses

import pytest

from lamini_lm import assets
from lamini_lm.errors import UserError


def test_a_missing_asset_names_the_fetch_command(tmp_path, monkeypatch):
    monkeypatch.setenv("LAMINI_LM_CACHE", str(tmp_path))
    with pytest.raises(UserError, match=r"python -m lamini_lm.assets fetch gpt2_tokenizer"):
        assets.path("gpt2_tokenizer")


def test_the_real_tokenizers_are_the_published_ones():
    from transformers import AutoTokenizer

    gpt2 = AutoTokenizer.from_pretrained(assets.path("gpt2_tokenizer"))
    assert len(gpt2) == 50257 and gpt2("Hello world").input_ids == [15496, 995] and gpt2.eos_token_id == 50256
    t5 = AutoTokenizer.from_pretrained(assets.path("t5_tokenizer"))
    assert len(t5) == 32100 and t5.eos_token_id == 1 and t5.pad_token_id == 0


def test_an_archive_with_the_wrong_hash_is_refused_and_nothing_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("LAMINI_LM_CACHE", str(tmp_path))
    bad = dataclasses.replace(assets.ASSETS["gpt2_tokenizer"], sha256="0" * 64)
    monkeypatch.setitem(assets.ASSETS, "gpt2_tokenizer", bad)
    with pytest.raises(UserError, match="expected 0000"):
        assets.fetch("gpt2_tokenizer")
    assert not (tmp_path / "assets" / "gpt2_tokenizer").exists()
