"""Stage analyze through the real config: Table 1 / Table 2 files, paper numbers, W&B, bad input."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from lamini_lm import config
from lamini_lm.analysis import run
from lamini_lm.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
RECORDS = [
    ("alpaca", "Go, go, go!", "Yes, yes."),
    ("original_p3", "Is it cold? It is.", "Don't stop, 2 cats!"),
    ("alpaca", "Go home.", "No."),
]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def records(rows=RECORDS):
    return [{"instruction": i, "response": r, "instruction_source": s} for s, i, r in rows]


def cfg_for(tmp_path, *overrides):
    return config.compose("generate", ["stage=analyze", f"out_dir={tmp_path / 'out'}",
                                       f"analysis.figure3.cache_dir={tmp_path / 'emb'}", *overrides])


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_tables_hand_computed(tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", records())
    cfg = cfg_for(tmp_path, f"analysis.input={data}", "analysis.outputs=[table1,table2]", "analysis.table2.window=3")
    summary = run(cfg)
    out = tmp_path / "out" / "analysis"
    # GPT-2 BPE: Go|,|Ġgo|,|Ġgo|! = 6, Go|Ġhome|. = 3, Is|Ġit|Ġcold|?|ĠIt|Ġis|. = 7,
    # Yes|,|Ġyes|. = 4, No|. = 2, Don|'t|Ġstop|,|Ġ2|Ġcats|! = 7
    t1 = {r["source"]: r for r in read_csv(out / "table1.csv")}
    assert list(t1) == ["alpaca", "original_p3", "all"]
    assert [t1["alpaca"][k] for k in ("dataset", "samples", "ins_tokens", "res_tokens")] == ["D̂_A", "2", "9", "6"]
    assert float(t1["alpaca"]["avg_ins_len"]) == pytest.approx(4.5)
    assert [t1["original_p3"][k] for k in ("dataset", "samples", "ins_tokens", "res_tokens")] == ["D_P3", "1", "7", "7"]
    assert [t1["all"][k] for k in ("dataset", "samples", "ins_tokens", "res_tokens")] == ["D_ALL", "3", "16", "13"]
    assert float(t1["all"]["avg_res_len"]) == pytest.approx(13 / 3)
    # window 3 over concatenated lowercased word streams (see test_analysis_mattr for the windows)
    t2 = {r["source"]: r for r in read_csv(out / "table2.csv")}
    assert float(t2["alpaca"]["mattr_ins"]) == pytest.approx(100 * 4 / 9)
    assert float(t2["original_p3"]["mattr_ins"]) == pytest.approx(100 * 8 / 9)
    assert float(t2["all"]["mattr_ins"]) == pytest.approx(100 * 20 / 24)
    assert float(t2["alpaca"]["mattr_res"]) == pytest.approx(100 * 2 / 3)
    assert float(t2["all"]["mattr_res"]) == pytest.approx(100 * 11 / 12)
    md = (out / "table1.md").read_text()
    assert "| D̂_A | 2 | 9 | 4.50 | 6 | 3.00 |" in md and "paper" not in md.lower().split("**")[-1]
    tex = (out / "table2.tex").read_text()
    assert r"$\widehat{D}_{\mathrm{A}}$ & 44.44 & 66.67 \\" in tex and r"\end{tabular}" in tex
    assert summary["rows"] == 3 and (out / "summary.json").exists()
    # W&B (offline in tests): one finished run in the output folder, with the tables in it
    run_dir = Path(summary["wandb_dir"]).parent
    assert run_dir.name.startswith("offline-run-") and run_dir.is_relative_to(out)
    assert list(run_dir.glob("run-*.wandb")) and list((run_dir / "files" / "media" / "table").glob("table1_*.json"))


def test_other_tokenizer_and_paper_numbers(tmp_path):
    from transformers import AutoTokenizer

    from lamini_lm import assets

    data = write_jsonl(tmp_path / "d.jsonl", records())
    cfg = cfg_for(tmp_path, f"analysis.input={data}", "analysis.outputs=[table1,table2]", "analysis.compare_paper=true",
                  "analysis.table1.tokenizer=t5_tokenizer", "analysis.wandb.enabled=false")
    run(cfg)
    out = tmp_path / "out" / "analysis"
    t5 = AutoTokenizer.from_pretrained(str(assets.path("t5_tokenizer")))
    expect = sum(len(t5(i, add_special_tokens=False).input_ids) for _, i, _ in RECORDS)
    t1 = {r["source"]: r for r in read_csv(out / "table1.csv")}
    assert int(t1["all"]["ins_tokens"]) == expect
    assert t1["alpaca"]["paper_samples_M"] == "0.05" and t1["all"]["paper_avg_ins_len"] == "50.62"
    assert "| D̂_A | 2 (0.05M) |" in (out / "table1.md").read_text()
    t2md = (out / "table2.md").read_text()
    assert "(77.00)" in t2md and "(78.59)" in t2md  # D̂_A and D_ALL instructions as printed
    assert "t5_tokenizer" in (out / "table1.tex").read_text()


def test_released_format_from_a_datasets_folder(tmp_path):
    import datasets

    rows = records()
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "ds"))
    cfg = cfg_for(tmp_path, f"analysis.input={tmp_path / 'ds'}", "analysis.outputs=[table1]", "analysis.wandb.enabled=false",
                  "analysis.subsets=['D^_A']")
    summary = run(cfg)
    assert summary["rows"] == 2 and summary["rows_skipped"] == 1 and summary["subsets"] == ["alpaca"]


@pytest.mark.parametrize(
    "rows, overrides, message",
    [
        ([{"instruction": "x", "instruction_source": "alpaca"}], [], "d.jsonl:1: missing field 'response'"),
        ([{"instruction": "x", "response": "y", "instruction_source": "sharegpt"}], [], "'sharegpt', expected one of"),
        (None, ["analysis.subsets=[alpaca,nonsense]"], "analysis.subsets: unknown subset 'nonsense'"),
        (None, ["analysis.subsets=[alpaca,original_flan]"], "subset 'original_flan' is empty"),
        (None, ["analysis.outputs=[figure3]", "analysis.figure3.pairs=[[alpaca,generated_p3]]"], "subset 'generated_p3' is empty"),
        ([], [], "has no records"),
        (None, ["analysis.outputs=[table9]"], "unknown output 'table9'"),
        (None, ["analysis.outputs=[figure4]"], "rating.filled"),
    ],
)
def test_bad_input_is_one_user_error(tmp_path, rows, overrides, message):
    data = write_jsonl(tmp_path / "d.jsonl", records() if rows is None else rows)
    cfg = cfg_for(tmp_path, f"analysis.input={data}", "analysis.wandb.enabled=false", *overrides)
    with pytest.raises(UserError, match=message.replace("[", r"\[").replace("(", r"\(")):
        run(cfg)


@pytest.mark.parametrize("overrides,message", [
    (["analysis.table2.window=0"], "analysis.table2.window: 0 must be at least 1"),
    (["analysis.figure3.pairs=[[alpaca]]"], "analysis.figure3.pairs: ['alpaca'] is not a pair of subsets"),
    (["analysis.figure3.pairs=[[alpaca,nonsense]]"], "analysis.figure3.pairs: unknown subset 'nonsense'; use one of"),
    (["analysis.subsets=nonsense"], "analysis.subsets: unknown subset 'nonsense'"),
    (["+analysis.tabel1.tokenizer=gpt2"], "analysis.tabel1: no such key (a typo? AnalysisSpec has input, table1"),
    (["analysis.table1.piece_cache=maybe"], "analysis.table1.piece_cache: Value 'maybe' is not a valid bool"),
    (["analysis.rating.filled=/nowhere/sheet.csv"], "analysis.rating.filled: /nowhere/sheet.csv does not exist"),
    (["analysis.compare_paper=maybe"], "analysis.compare_paper: 'maybe' is not one of auto, true, false"),
    (["analysis.wandb.mode=sometimes"], "analysis.wandb.mode: 'sometimes' is not one of online, offline, disabled"),
    (["analysis.limit=0"], "analysis.limit: 0 must be at least 1"),
    (["seed=abc"], "seed: Value 'abc' of type 'str' could not be converted to Integer"),
])
def test_a_wrong_analysis_config_is_one_line_naming_the_key_before_the_input_is_read(tmp_path, overrides, message):
    cfg = cfg_for(tmp_path, f"analysis.input={tmp_path / 'missing.jsonl'}", *overrides)
    with pytest.raises(UserError) as e:
        run(cfg)
    assert str(e.value).startswith(message) and "\n" not in str(e.value), str(e.value)
    assert not (tmp_path / "out").exists()


def test_subset_names_come_out_released_and_in_table_order(tmp_path):
    from lamini_lm.analysis.spec import AnalyzeSpec

    cfg = cfg_for(tmp_path, "analysis.subsets=[original_p3,'D^_A']", "analysis.figure3.pairs=[['D_P3','D^_P3']]")
    spec = config.typed(cfg, AnalyzeSpec, keys=("analysis", "out_dir", "seed"))
    assert spec.analysis.subsets == ["alpaca", "original_p3"]
    assert spec.analysis.figure3.pairs == [["original_p3", "generated_p3"]]


def test_dataset_without_the_fields(tmp_path):
    import datasets

    datasets.Dataset.from_list([{"prompt": "x", "completion": "y"}]).to_parquet(str(tmp_path / "d.parquet"))
    datasets.Dataset.from_list([{"instruction": "x", "output": "y"}]).save_to_disk(str(tmp_path / "ds"))
    for data, message in ((tmp_path / "d.parquet", "row 1: missing field 'instruction'"),
                          (tmp_path / "ds", "no field 'response', 'instruction_source'"),
                          ("MBZUAI/LaMini-instruction", "could not load hub dataset"),
                          (tmp_path / "nothing.jsonl", "does not exist")):
        with pytest.raises(UserError, match=message):
            run(cfg_for(tmp_path, f"analysis.input={data}", "analysis.wandb.enabled=false"))


@pytest.mark.slow
def test_generate_py_stage_analyze(tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", records())
    cmd = [sys.executable, str(ROOT / "generate.py"), "stage=analyze", f"analysis.input={data}", f"out_dir={tmp_path / 'out'}",
           "analysis.outputs=[table1,table2,rating_sheet]", "analysis.wandb.enabled=false", f"hydra.run.dir={tmp_path / 'hydra'}"]
    env = {**__import__("os").environ, "PYTHONPATH": str(ROOT / "src")}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    out = tmp_path / "out" / "analysis"
    assert {p.name for p in out.iterdir()} >= {"table1.md", "table1.tex", "table1.csv", "table2.md", "rating_sheet.html"}
    assert (tmp_path / "hydra" / ".hydra" / "config.yaml").exists()
    bad = subprocess.run(cmd[:3] + [f"analysis.input={tmp_path / 'missing.jsonl'}"] + cmd[4:], capture_output=True, text=True,
                         env=env, cwd=tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1].startswith("error: analysis.input:") and "missing.jsonl" in bad.stderr


def test_piece_cache_counts_equal_the_full_tokenizer():
    from lamini_lm.analysis.stats import TokenCounter

    tricky = ["Hello  world", "  leading", "trailing   ", "tabs\tand\nnew lines\n\n", "it's they'll we've I'M x'y",
              "日本語のテキスト", "emoji 🎉🎉 ok", "a <|endoftext|> inside", "numbers 12345 3.14 1,000", "", " ",
              "a\u00a0b", "ﬁ ligature Ǆ", "\r\n end", "CamelCase state-of-the-art", "  \n  x  "]
    fast, full = TokenCounter("gpt2_tokenizer"), TokenCounter("gpt2_tokenizer", piece_cache=False)
    assert fast._pieces is not None and full._pieces is None  # the cache is really in use
    assert fast.lengths(tricky).tolist() == full.lengths(tricky).tolist()
    again = [t[::-1] + " " + t for t in tricky]  # pieces partly known now
    assert fast.lengths(again).tolist() == full.lengths(again).tolist()
    assert full.lengths(["a <|endoftext|> inside"]).tolist() == [4]  # the added token counts once
    assert TokenCounter("t5_tokenizer")._pieces is None  # not byte-level BPE: always the full tokenizer
