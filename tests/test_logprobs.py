"""The teacher's top-k log-probs: a reply's compact JSON and D_ALL's sidecar give back what went in."""

import numpy as np
import pytest

from lamini_lm.errors import UserError
from lamini_lm.logprobs import Sidecar, TokenLogprobs, write_sidecar


def _reply():
    # " w\xc3" + "\xa9": a character split across two byte-level tokens; a short list of alternatives (-inf)
    return TokenLogprobs([b" Hel", b"lo", b" w\xc3", b"\xa9", b"\n"],
                         [[b" Hel", b"x"], [b"lo"], [b" w\xc3", b"a"], [b"\xa9", b"q"], [b"\n", b"."]],
                         [[-0.1, -2], [-0.01, -np.inf], [-1, -1.5], [0, -9], [-0.5, -1]])


def _same(a: TokenLogprobs, b: TokenLogprobs) -> None:
    assert a.tokens == b.tokens and a.top_tokens == b.top_tokens and a.start == b.start
    assert np.array_equal(np.isinf(a.top_logprobs), np.isinf(b.top_logprobs))
    finite = np.isfinite(a.top_logprobs)
    np.testing.assert_allclose(a.top_logprobs[finite], b.top_logprobs[finite], atol=5e-3)  # float16


def test_trimmed_to_the_stripped_response():
    t = _reply().trimmed("Hello w\u00e9")
    assert t.tokens == [b" Hel", b"lo", b" w\xc3", b"\xa9"] and t.start == 1
    assert t.byte_spans() == [(-1, 3), (3, 5), (5, 8), (8, 9)]
    with pytest.raises(ValueError):
        _reply().trimmed("Hello world")


def test_store_json_and_sidecar_round_trip(tmp_path):
    t = _reply()
    _same(TokenLogprobs.from_json(t.to_json()), t)
    path = tmp_path / "d_all.logprobs.parquet"
    size = write_sidecar(path, [("a", t.trimmed("Hello w\u00e9")), ("b", t)], teacher="smol")
    assert size["response_tokens"] == 9 and size["k"] == 2
    back = Sidecar(path)
    assert len(back) == 2 and back.teacher == "smol" and "c" not in back
    _same(back["a"], t.trimmed("Hello w\u00e9"))
    _same(back["b"], t)


def test_a_file_that_is_no_sidecar_is_one_line(tmp_path):
    with pytest.raises(UserError, match="no teacher log-probs"):
        Sidecar(tmp_path / "missing.parquet")


def test_sidecar_streams_row_groups_from_a_generator(tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    from lamini_lm import logprobs

    monkeypatch.setattr(logprobs, "ROW_GROUP", 2)  # three groups for five records; the token table spans them all
    t = _reply()
    items = [(f"r{i}", t if i % 2 else t.trimmed("Hello w\u00e9")) for i in range(5)]
    size = write_sidecar(tmp_path / "s.parquet", (x for x in items), teacher="smol")
    assert size["records"] == 5 and size["response_tokens"] == 3 * 4 + 2 * 5
    assert pq.ParquetFile(tmp_path / "s.parquet").metadata.num_row_groups == 3
    back = Sidecar(tmp_path / "s.parquet")
    for rid, want in items:
        _same(back[rid], want)
    wider = TokenLogprobs([b"a"], [[b"a", b"b", b"c"]], [[-0.1, -2, -3]])
    with pytest.raises(ValueError, match="3 alternatives per token, the sidecar's first records 2"):
        write_sidecar(tmp_path / "w.parquet", [*items, ("x", wider)], teacher="smol")
    assert not (tmp_path / "w.parquet").exists()  # whole or not at all
    empty = write_sidecar(tmp_path / "e.parquet", [], teacher="smol")
    assert empty["records"] == 0 and len(Sidecar(tmp_path / "e.parquet")) == 0


def test_a_sidecar_is_read_a_row_group_at_a_time(tmp_path, monkeypatch):
    """D_ALL's sidecar at 2.58M responses is ~30 GB decompressed: reading it back holds the ids and one row group,
    whatever the order records are asked for in."""
    import pyarrow as pa

    from lamini_lm import logprobs

    monkeypatch.setattr(logprobs, "ROW_GROUP", 20)
    rng = np.random.default_rng(0)
    vocab = [bytes([97 + i % 26]) * (1 + i // 26) for i in range(300)]

    def record(n):
        top = [[vocab[j] for j in rng.choice(300, 20, replace=False)] for _ in range(n)]
        return TokenLogprobs([row[0] for row in top], top, np.sort(rng.uniform(-9, 0, (n, 20)), -1)[:, ::-1])

    items = [(f"r{i}", record(100)) for i in range(400)]  # 20 row groups, 40k tokens: ~5 MB of columns in memory
    write_sidecar(tmp_path / "s.parquet", items, teacher="smol")
    before = pa.total_allocated_bytes()
    back = Sidecar(tmp_path / "s.parquet")
    whole = 400 * 100 * (4 + 20 * (4 + 2))
    for i in [*range(0, 400, 7), *range(399, -1, -13)]:  # forward, then backward: every group read, some twice
        rid, want = items[i]
        _same(back[rid], want)
        sampled, top, lp, start = back.indices(rid)
        assert len(sampled) == 100 and top.shape == lp.shape == (100, 20) and start == 0
        assert pa.total_allocated_bytes() - before < whole / 4  # one group (1/20 of the columns) and the ids


def test_a_store_line_of_the_first_format_is_still_read():
    """Stores written before the compressed field keep their replies' log-probs: separate base64 fields, int32."""
    import base64

    from lamini_lm.logprobs import _indices, _vocab

    t = _reply()
    vocab, index = _vocab([t.tokens, *t.top_tokens])
    ids, top = _indices(t, index)
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    first = {"k": 2, "start": 0, "vocab": [b64(v) for v in vocab], "tokens": b64(ids.tobytes()),
             "top": b64(top.tobytes()), "logprobs": b64(t.top_logprobs.astype(np.float16).tobytes())}
    _same(TokenLogprobs.from_json(first), t)
    assert "zlib" in t.to_json() and len(str(t.to_json())) < len(str(first))


def test_a_reply_naming_more_tokens_than_int16_indexes_round_trips():
    rng = np.random.default_rng(0)
    n, k = 2000, 20  # 42,000 distinct tokens: int32 indices
    names = [f"t{i}".encode() for i in range(n * (k + 1))]
    top = [names[n + i * k: n + (i + 1) * k] for i in range(n)]
    t = TokenLogprobs(names[:n], top, np.sort(rng.uniform(-9, 0, (n, k)), -1)[:, ::-1])
    stored = t.to_json()
    assert stored["index"] == "int32" and stored["vocab"] == n * (k + 1)
    _same(TokenLogprobs.from_json(stored), t)
    assert _reply().to_json()["index"] == "int16"
