"""MATTR (Table 2): hand-computed values, the short-stream rule, and streaming = one pass over everything."""

import random

import numpy as np
import pytest

from lamini_lm.analysis.mattr import MattrStream, Tokenizer, mattr
from lamini_lm.analysis.stats import DatasetStats


def brute_force(tokens, w):
    if len(tokens) < w:
        return len(set(tokens)) / len(tokens)
    return sum(len(set(tokens[i : i + w])) for i in range(len(tokens) - w + 1)) / (w * (len(tokens) - w + 1))


def test_hand_computed_values():
    # windows (a b a)=2 types, (b a c)=3 types -> (2/3 + 3/3) / 2
    assert mattr("a b a c".split(), 3) == pytest.approx(5 / 6)
    # (a a)=1, (a a)=1 -> 1/2
    assert mattr("a a a".split(), 2) == pytest.approx(0.5)
    # one window exactly: plain TTR
    assert mattr("x y x y".split(), 4) == pytest.approx(0.5)
    # every window all-distinct
    assert mattr(list("abcdefgh"), 3) == pytest.approx(1.0)


def test_stream_shorter_than_window_is_plain_ttr():
    assert mattr("the cat the".split(), 50) == pytest.approx(2 / 3)
    s = MattrStream(50)
    assert s.result() is None  # empty stream: no value
    s.update(np.array([7, 7, 8, 7]))
    assert s.result() == pytest.approx(0.5) and s.windows == 0


def test_tokenisation():
    tok = Tokenizer()
    assert tok.words("Don't stop, 2 cats!") == ["don't", "stop", "cats"]
    assert tok.words("State-of-the-art AI_model: café") == ["state", "of", "the", "art", "ai", "model", "café"]
    ids, counts = tok.ids(["Go, go, go!", "", "Go home."])
    assert counts.tolist() == [3, 0, 2]
    assert ids[0] == ids[1] == ids[2] == ids[3] != ids[4]


@pytest.mark.parametrize("seed", range(5))
def test_streaming_in_any_chunks_equals_brute_force(seed):
    rng = random.Random(seed)
    for _ in range(200):
        w = rng.randint(1, 9)
        tokens = [rng.randint(0, rng.randint(1, 12)) for _ in range(rng.randint(1, 80))]
        s, i = MattrStream(w), 0
        while i < len(tokens):
            k = rng.randint(0, 9)
            s.update(np.array(tokens[i : i + k], dtype=np.int64))
            i += k
        assert s.result() == pytest.approx(brute_force(tokens, w), abs=1e-12)


def test_window_50_over_a_long_stream():
    rng = np.random.default_rng(0)
    tokens = rng.zipf(1.3, size=6000) % 5000
    one = MattrStream(50)
    one.update(tokens)
    chunked = MattrStream(50)
    for part in np.array_split(tokens, 37):
        chunked.update(part)
    assert chunked.result() == pytest.approx(one.result(), abs=1e-12)
    assert one.result() == pytest.approx(brute_force(tokens.tolist(), 50), abs=1e-12)


def test_windows_cross_text_boundaries_per_subset():
    """Texts are concatenated per subset (and for D_ALL) in input order; short texts are not averaged alone."""
    recs = [
        ("alpaca", "Go, go, go!", "Yes, yes."),
        ("original_p3", "Is it cold? It is.", "Don't stop, 2 cats!"),
        ("alpaca", "Go home.", "No."),
    ]
    batch = [{"instruction_source": s, "instruction": i, "response": r} for s, i, r in recs]
    stats = DatasetStats(counter=None, word_tokenizer=Tokenizer(), window=3)
    stats.add(batch[:2])
    stats.add(batch[2:])
    ins, res = stats.streams["instruction"], stats.streams["response"]
    # alpaca: go go go go home -> (1 + 1 + 2) / 9
    assert ins["alpaca"].result() == pytest.approx(4 / 9)
    # is it cold it is -> (3 + 2 + 3) / 9
    assert ins["original_p3"].result() == pytest.approx(8 / 9)
    # D_ALL: go go go is it cold it is go home -> (1+2+3+3+2+3+3+3) / 24
    assert ins["all"].result() == pytest.approx(20 / 24)
    # yes yes no -> one window, 2 types
    assert res["alpaca"].result() == pytest.approx(2 / 3)
    # yes yes don't stop cats no -> (2 + 3 + 3 + 3) / 12
    assert res["all"].result() == pytest.approx(11 / 12)
    assert stats.words["instruction"].sum() == 10
