"""Human evaluation: the documented subset, generation with each model's style, blinded balanced sheets, ratings."""

import csv
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from tests.helpers.eval_compose import SHARED as SHARED_DIR
from tests.helpers.eval_compose import compose, tiny_root

SHARED = SHARED_DIR / "data" / "self-instruct" / "user_oriented_instructions.jsonl"
FIXTURE = Path(__file__).with_name("data") / "user_oriented_sample.jsonl"


def test_committed_subset_follows_the_documented_rule(tmp_path):
    from lamini_lm.evaluation import human

    cfg = compose(tmp_path, f"human.path={SHARED if SHARED.exists() else FIXTURE}")
    committed = [x for x in Path(cfg.human.ids_file).read_text().splitlines() if x and not x.startswith("#")]
    rows = {r["id"]: r for r in human.load_instructions(cfg.human)}
    chosen = [rows[i] for i in committed if i in rows]
    assert max(Counter(r["motivation_app"] for r in chosen).values()) <= 2
    for r in chosen:
        assert not any(re.search(p, r["instruction"], re.I) for p in cfg.human.nlp_task_patterns), r["id"]
    if SHARED.exists():  # the full 252: the committed ids are exactly what the rule selects
        assert len(rows) == 252
        assert human.choose(list(rows.values()), cfg.human.nlp_task_patterns, 2) == committed
        assert 100 <= len(committed) <= 142  # the paper kept 114 of 71 apps x 2


def test_sentiment_and_summaries_are_dropped_and_apps_capped():
    from lamini_lm.evaluation import human

    rows = [{"id": str(i), "motivation_app": app, "instruction": text, "instances": []} for i, (app, text) in enumerate([
        ("Twitter", "Assess the sentiment of the given tweet."), ("Twitter", "Write a tweet about cats."),
        ("Wiki", "Summarize the article."), ("Wiki", "Give a brief summary of the plot."), ("Wiki", "Make a quiz."),
        ("Twitter", "Suggest a hashtag."), ("Twitter", "Reply to the tweet.")])]
    assert human.choose(rows, compose(Path("/tmp")).human.nlp_task_patterns, 2) == ["1", "4", "5"]


def test_download_falls_back_to_a_clear_error(tmp_path):
    from lamini_lm.errors import UserError
    from lamini_lm.evaluation import human

    cfg = compose(tmp_path, "human.url=http://127.0.0.1:9/none.jsonl", f"human.cache={tmp_path / 'c.jsonl'}")
    with pytest.raises(UserError, match="human.path"):
        human.load_instructions(cfg.human)


def _responses(folder: Path, models, ids, exports=None):
    folder.mkdir(parents=True)
    for m in models:
        with open(folder / f"{m}.jsonl", "w") as f:
            for i in ids:
                f.write(json.dumps({"id": i, "model": m, "instruction": f"do {i}", "input": "", "response": f"reply {len(m)}-{i}",
                                    "export": (exports or {}).get(m)}) + "\n")


def test_sheets_are_blinded_balanced_and_one_rater_per_instruction(tmp_path):
    from lamini_lm.evaluation import human

    models, ids = ["LaMini-GPT-124M", "LaMini-T5-61M", "alpaca-7b"], [f"user_oriented_task_{i}" for i in range(117)]
    _responses(tmp_path / "responses", models, ids)
    cfg = compose(tmp_path, f"human.responses={tmp_path / 'responses'}", f"human.sheets={tmp_path / 'sheets'}")
    human.sheets(cfg.human, cfg.seed)
    sheets = sorted((tmp_path / "sheets").glob("rater_*.csv"))
    assert len(sheets) == 8
    rater_of, loads = {}, []
    for k, sheet in enumerate(sheets):
        text = sheet.read_text()
        assert not any(m in text for m in models)
        rows = list(csv.DictReader(open(sheet)))
        assert set(rows[0]) == set(human.SHEET_FIELDS)  # no model column
        per_instr = Counter(r["instruction_id"] for r in rows)
        assert set(per_instr.values()) == {3}  # every model's response to it, on the same sheet
        for i in per_instr:
            assert rater_of.setdefault(i, k) == k
        loads.append(len(per_instr))
    assert len(rater_of) == 117 and max(loads) - min(loads) <= 1  # 8 raters x ~15 instructions
    key = list(csv.DictReader(open(tmp_path / "sheets" / "key.csv")))
    assert len(key) == 351 and len({k["item_id"] for k in key}) == 351
    # blinded order: the model order is shuffled within instructions
    firsts = Counter(next(k["model"] for k in key if k["instruction_id"] == i) for i in ids)
    assert len(firsts) == 3


def test_ratings_are_ingested_per_model_with_figure6(tmp_path):
    from lamini_lm.errors import UserError
    from lamini_lm.evaluation import human

    models, ids = ["m1", "m2"], [f"t{i}" for i in range(10)]
    export = tmp_path / "m1_export"  # m1 is a local export with a model card; m2 a hub id
    export.mkdir()
    (export / "README.md").write_text("---\nlicense: apache-2.0\n---\n# m1\n\nTrained by train.py.\n")
    _responses(tmp_path / "responses", models, ids, {"m1": str(export)})
    cfg = compose(tmp_path / "out", f"human.responses={tmp_path / 'responses'}", f"human.sheets={tmp_path / 'sheets'}",
                  "human.raters=3")
    human.sheets(cfg.human, cfg.seed)
    key = {k["item_id"]: k["model"] for k in csv.DictReader(open(tmp_path / "sheets" / "key.csv"))}
    for sheet in (tmp_path / "sheets").glob("rater_*.csv"):
        rows = list(csv.DictReader(open(sheet)))
        for r in rows:
            r["rating"] = "A" if key[r["item_id"]] == "m1" else "rate-c"
        with open(sheet, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=human.SHEET_FIELDS)
            w.writeheader()
            w.writerows(rows)
    counts = human.ingest(cfg.human, tmp_path / "out")
    assert counts == {"m1": {"A": 10, "B": 0, "C": 0, "D": 0}, "m2": {"A": 0, "B": 0, "C": 10, "D": 0}} or \
        counts == {"m2": {"A": 0, "B": 0, "C": 10, "D": 0}, "m1": {"A": 10, "B": 0, "C": 0, "D": 0}}
    assert (tmp_path / "out" / "figure6.png").exists() and (tmp_path / "out" / "human_eval.csv").exists()
    # the summary reaches m1's card as model-index metadata, read back with huggingface_hub's own parser
    from huggingface_hub import ModelCard

    card = ModelCard.load(export / "README.md")
    shares = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert shares == {"rate-a": 100.0, "rate-b": 0.0, "rate-c": 0.0, "rate-d": 0.0}
    assert card.data.license == "apache-2.0" and "Trained by train.py." in card.text
    human.ingest(cfg.human, tmp_path / "out")  # again: replaced, not appended
    assert len(ModelCard.load(export / "README.md").data.eval_results) == 4
    sheet = next((tmp_path / "sheets").glob("rater_*.csv"))
    sheet.write_text(sheet.read_text().replace(",A,", ",E,", 1).replace(",rate-c,", ",E,", 1))
    with pytest.raises(UserError, match=r"rater_\d\.csv:\d+: rating 'E'"):
        human.ingest(cfg.human, tmp_path / "out")


@pytest.mark.slow
def test_generate_uses_each_models_prompt_style(tmp_path_factory, tmp_path):
    from lamini_lm.evaluation import human
    from lamini_lm.evaluation.model_refs import resolve_all

    root = tiny_root(tmp_path_factory)
    ids = tmp_path / "ids.txt"
    ids.write_text("user_oriented_task_0\nuser_oriented_task_3\n")
    cfg = compose(tmp_path, f"models={root}", f"human.path={FIXTURE}", f"human.ids_file={ids}",
                  "human.generation.max_new_tokens=4", f"human.responses={tmp_path / 'responses'}")
    human.generate(cfg.human, resolve_all(cfg.models, cfg.revision))
    files = sorted((tmp_path / "responses").glob("*.jsonl"))
    assert [f.name for f in files] == ["tiny_exports__gpt2.jsonl", "tiny_exports__t5.jsonl"]
    styles = [json.loads(f.read_text().splitlines()[0])["prompt_style"] for f in files]
    assert styles == ["alpaca", "raw"]
    recs = [json.loads(x) for x in files[0].read_text().splitlines()]
    assert [r["id"] for r in recs] == ["user_oriented_task_0", "user_oriented_task_3"] and recs[0]["input"]
