"""mode=human_judge: Table 7's rubric through the teacher interface, counts, resume, agreement with people."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
from tests.helpers.eval_compose import compose
from tests.helpers.generate_kit import assert_no_key
from tests.helpers.openai_server import FakeOpenAI

from lamini_lm.errors import UserError

MODELS, IDS = ["LaMini-GPT-124M", "LaMini-T5-61M"], [f"user_oriented_task_{i}" for i in range(6)]
# what each response deserves, written into the response text so the fake judge can "read" it
QUALITY = {("LaMini-GPT-124M", i): "AABBCD"[n] for n, i in enumerate(IDS)} | {("LaMini-T5-61M", i): "BCCDDA"[n]
                                                                              for n, i in enumerate(IDS)}


def _responses(folder: Path) -> None:
    folder.mkdir(parents=True)
    for m in MODELS:
        with open(folder / f"{m}.jsonl", "w") as f:
            for i in IDS:
                f.write(json.dumps({"id": i, "model": m, "instruction": f"Plan a trip ({i}).", "input": "",
                                    "response": f"An answer of quality <{QUALITY[(m, i)]}>."}) + "\n")


def _judge_reply(body: dict) -> tuple[str, str]:
    prompt = body["messages"][-1]["content"]
    grade = re.search(r"quality <([ABCD])>", prompt).group(1)
    if "task_5" in prompt and "<D>" in prompt:
        return "I cannot rate this.", "stop"  # no rating in the reply: counted as unparsed
    return ("**Rating: " + grade + "**") if grade != "B" else "B", "stop"


@pytest.fixture
def judge_server():
    srv = FakeOpenAI(responder=_judge_reply)
    srv.start()
    yield srv
    srv.stop()


def _fill_sheets(sheets: Path, disagree_on: str) -> None:
    """People give each response its QUALITY, except one item."""
    from lamini_lm.evaluation import human

    key = {k["item_id"]: k for k in csv.DictReader(open(sheets / "key.csv"))}
    for sheet in sheets.glob("rater_*.csv"):
        rows = list(csv.DictReader(open(sheet)))
        for r in rows:
            k = key[r["item_id"]]
            r["rating"] = QUALITY[(k["model"], k["instruction_id"])]
            if (k["model"], k["instruction_id"]) == ("LaMini-GPT-124M", disagree_on):
                r["rating"] = "D"
        with open(sheet, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=human.SHEET_FIELDS)
            w.writeheader()
            w.writerows(rows)


def test_judge_rates_counts_resumes_and_reports_agreement(judge_server, api_key, tmp_path):
    from lamini_lm.evaluation import human, run

    _responses(tmp_path / "responses")
    cfg = compose(tmp_path / "out", "mode=human_judge", f"human.responses={tmp_path / 'responses'}",
                  f"human.sheets={tmp_path / 'sheets'}", "human.raters=2", f"teacher.base_url={judge_server.base_url}",
                  "teacher.model=gpt-4o", "judge.progress=false")
    human.sheets(cfg.human, cfg.seed)
    _fill_sheets(tmp_path / "sheets", disagree_on="user_oriented_task_0")
    run.run(cfg)

    out = tmp_path / "judge"  # default: beside the responses folder
    counts = {r["model"]: {k: int(v) for k, v in r.items() if k.startswith("Rate-")}
              for r in csv.DictReader(open(out / "judge_eval.csv"))}
    assert counts == {"LaMini-GPT-124M": {"Rate-A": 2, "Rate-B": 2, "Rate-C": 1, "Rate-D": 0},  # its D: unparsed
                      "LaMini-T5-61M": {"Rate-A": 1, "Rate-B": 1, "Rate-C": 2, "Rate-D": 2}}
    ratings = list(csv.DictReader(open(out / "judge_ratings.csv")))
    assert sum(r["rating"] == "" for r in ratings) == 1 and (out / "figure6_judge.png").exists()
    # the judge saw one response at a time, never a model's name
    prompts = [b["messages"][-1]["content"] for b in judge_server.bodies]
    assert len(prompts) == 12 and not any(m in p for p in prompts for m in MODELS)
    assert all("A: valid, acceptable and satisfying response" in p for p in prompts)
    assert {b["model"] for b in judge_server.bodies} == {"gpt-4o"} and {b["temperature"] for b in judge_server.bodies} == {0}

    agree = json.loads((out / "agreement.json").read_text())
    assert agree["n"] == 11  # 12 responses, one without a judge rating
    assert agree["exact_agreement"] == pytest.approx(10 / 11)
    # by hand: p_o = 10/11; marginals people A2 B3 C3 D3, judge A3 B3 C3 D2 -> p_e = 30/121, kappa = 0.879;
    # linear weights |i-j|/3: observed 1/11, expected 147/363 -> 1 - 0.2245 = 0.776 (the one miss is A vs D)
    assert (agree["cohen_kappa"], agree["cohen_kappa_linear"]) == (0.879, 0.776)
    confusion = list(csv.reader(open(out / "agreement_confusion.csv")))
    assert confusion[4] == ["D", "1", "0", "0", "2"]  # people said D where the judge said A once

    run.run(cfg)  # a rerun sends nothing: every reply is in the judge's store
    assert len(judge_server.bodies) == 12
    assert_no_key(tmp_path)


def test_judge_needs_a_key_before_any_work(judge_server, monkeypatch, tmp_path):
    from lamini_lm.evaluation import run

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    _responses(tmp_path / "responses")
    cfg = compose(tmp_path / "out", "mode=human_judge", f"human.responses={tmp_path / 'responses'}",
                  f"teacher.base_url={judge_server.base_url}")
    with pytest.raises(UserError, match="OPENAI_API_KEY is not set"):
        run.run(cfg)
    assert not judge_server.bodies


def test_parse_rating():
    from lamini_lm.evaluation.judge import parse_rating

    assert [parse_rating(x) for x in ("Rating: B", "**Rating: c**", "rating = Rate-D", "A", " Rate-b.", "**A**")] == \
        ["B", "C", "D", "A", "B", "A"]
    assert [parse_rating(x) for x in ("A good answer.", "I'd say B or C", "", "Rating: E")] == [None] * 4


def test_a_response_the_judge_refuses_is_left_unrated_and_asked_again_on_rerun(judge_server, api_key, tmp_path):
    from lamini_lm.evaluation import run

    _responses(tmp_path / "responses")
    flagged = "user_oriented_task_2"
    judge_server.script = lambda body, attempt: "400" if f"({flagged})" in body["messages"][-1]["content"] else None
    cfg = compose(tmp_path / "out", "mode=human_judge", f"human.responses={tmp_path / 'responses'}",
                  f"teacher.base_url={judge_server.base_url}", "judge.progress=false")
    run.run(cfg)
    ratings = list(csv.DictReader(open(tmp_path / "judge" / "judge_ratings.csv")))
    refused = [r for r in ratings if r["instruction_id"] == flagged]
    assert len(ratings) == 12 and [r["rating"] for r in refused] == ["", ""]
    assert all(r["reply"] == "(refused: HTTP 400: The prompt was flagged by the content filter.)" for r in refused)
    counts = {r["model"]: sum(int(v) for k, v in r.items() if k.startswith("Rate-"))
              for r in csv.DictReader(open(tmp_path / "judge" / "judge_eval.csv"))}
    assert counts == {"LaMini-GPT-124M": 4, "LaMini-T5-61M": 5}  # less the two refused and the one unparsed
    judge_server.script = None
    run.run(cfg)  # the refusals were not stored: a rerun asks only for them
    assert len(judge_server.bodies) == 12 + 2
    assert all(r["rating"] for r in csv.DictReader(open(tmp_path / "judge" / "judge_ratings.csv"))
               if r["instruction_id"] == flagged)
