"""The report: the paper's tables re-render exactly from results.csv; ours sit beside them with the difference."""

import csv
import json
from pathlib import Path

import pytest

from tests.helpers.eval_compose import SHARED, compose

SHARED_CSV = SHARED / "paper" / "results.csv"


def _tables():
    from lamini_lm.evaluation import paper

    return paper.load()


def test_packaged_paper_results_are_the_papers_data():
    from lamini_lm.evaluation import paper

    rows = list(csv.DictReader(open(paper.DEFAULT_CSV)))
    assert len(rows) == 640 and {r["table"] for r in rows} == {"4", "9", "10", "11", "12", "13"}
    if SHARED_CSV.exists():  # the copy in the repo must not drift from the shared data file
        assert paper.DEFAULT_CSV.read_bytes() == SHARED_CSV.read_bytes()


def test_micro_average_is_the_plain_mean_of_the_15_task_scores():
    from lamini_lm.evaluation import paper

    off = [(t, m.name) for t, ms in _tables().items() for m in ms
           if round(paper.micro_average(m.scores) + 1e-9, 1) != m.scores[paper.AVERAGE]]
    assert off == [(10, "flan-t5-base")]  # printed 59.7; its printed task scores average 59.647


def test_paper_tables_re_render_exactly(tmp_path):
    from lamini_lm.evaluation import report

    built = report.build(_tables(), [], [4, 9, 10, 11, 12, 13])
    report.write(built, tmp_path)
    md = (tmp_path / "tables.md").read_text()
    # Table 4's Average row, as printed in the paper
    assert "| Average | 52.9 | 56.8 | 66.3 | 60.8 | 49.7 | 55.4 | 53.0 | 63.0 | 58.3 | 62.3 |" in md
    assert "| MultiNLI (mis) | 35.0 | 35.2 | 35.1 | 40.3 | 35.1 | 50.8 | 35.4 | 49.2 |" in md  # Table 12
    rendered = {(r["table"], r["paper_model"], r["task"]): r["paper"] for r in csv.DictReader(open(tmp_path / "tables.csv"))}
    source = {(r["table"], r["model"], r["task"]): r["value"] for r in csv.DictReader(open(report.paper.DEFAULT_CSV))}
    assert len(rendered) == len(source) == 640
    assert all(float(rendered[k]) == float(v) for k, v in source.items())
    tex = (tmp_path / "tables.tex").read_text()
    assert tex.count(r"\begin{tabular}") == 6 and "flan-t5-base (248M) paper" in tex


def _summary(folder: Path, name: str, values: dict, wrapper="alpaca", paper_model=None, params=124_000_000):
    folder.mkdir(parents=True)
    from lamini_lm.evaluation.suite import PAPER_TASKS

    tasks = [{"paper": t, "task": t.lower(), "metric": "acc", "status": "ok", "value": values[t]} if t in values
             else {"paper": t, "task": t.lower(), "metric": "acc", "status": "unavailable"} for t in PAPER_TASKS]
    (folder / "summary.json").write_text(json.dumps({
        "model": {"name": name, "architecture": "decoder-only", "params": params}, "paper_model": paper_model,
        "wrapper": wrapper, "suite": "lamini15_local", "tasks": tasks}))


def test_report_puts_ours_beside_the_paper(tmp_path):
    from lamini_lm.evaluation import report
    from lamini_lm.evaluation.suite import PAPER_TASKS

    full = {t: 0.5 for t in PAPER_TASKS}
    _summary(tmp_path / "r" / "a", "runs/LaMini-GPT-124M", full)  # matched by name
    _summary(tmp_path / "r" / "b", "job0", {"PIQA": 0.70, "SST": 0.80}, wrapper="none",
             paper_model="LaMini-GPT-124M")
    _summary(tmp_path / "r" / "c", "something-new", {"PIQA": 0.6})
    cfg = compose(tmp_path / "out", "mode=report", f"report.results=[{tmp_path / 'r'}]", "report.tables=[13]")
    report.run(cfg.report)
    rows = {(r["result"], r["task"]): r for r in csv.DictReader(open(tmp_path / "out" / "tables.csv"))}
    assert float(rows[("job0", "PIQA")]["ours"]) == 70.0
    assert float(rows[("job0", "PIQA")]["diff"]) == pytest.approx(70.0 - 62.4)  # Table 13: LaMini-GPT-124M PIQA
    assert rows[("job0", "Average")]["ours"] == ""  # 2 of 15 tasks: no paper-comparable average
    assert float(rows[("runs/LaMini-GPT-124M", "Average")]["ours"]) == 50.0
    assert float(rows[("runs/LaMini-GPT-124M", "Average")]["diff"]) == pytest.approx(50.0 - 50.6)
    assert rows[("something-new", "PIQA")]["table"] == "ours"
    md = (tmp_path / "out" / "tables.md").read_text()
    # over the two tasks we ran: paper (62.4+84.5)/2 = 73.5 (rendered 73.5), ours 75.0
    assert "LaMini-GPT-124M ours job0 [none]" in md and "| 75.0 | 1.5 |" in md
    assert (tmp_path / "out" / "figure5.png").stat().st_size > 10_000


def test_report_errors_name_the_problem(tmp_path):
    from lamini_lm.errors import UserError
    from lamini_lm.evaluation import report

    with pytest.raises(UserError, match="does not exist"):
        report.run(compose(tmp_path, "mode=report", f"report.results=[{tmp_path / 'nope'}]").report)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no summary.json"):
        report.run(compose(tmp_path, "mode=report", f"report.results=[{tmp_path / 'empty'}]").report)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "summary.json").write_text("{}")
    with pytest.raises(UserError, match="not an evaluate.py summary"):
        report.run(compose(tmp_path, "mode=report", f"report.results=[{tmp_path / 'bad'}]").report)


def test_labels_given_on_the_command_line_place_a_result_in_the_papers_table(tmp_path):
    from lamini_lm.evaluation import report

    _summary(tmp_path / "r" / "c", "my-run", {"PIQA": 0.6})  # a name matching no paper model
    cfg = compose(tmp_path / "out", "mode=report", f"report.results=[{tmp_path / 'r'}]", "report.tables=[13]",
                  "report.labels={my-run:LaMini-GPT-124M}")
    report.run(cfg.report)
    rows = {(r["result"], r["task"]): r for r in csv.DictReader(open(tmp_path / "out" / "tables.csv"))}
    assert rows[("my-run", "PIQA")]["table"] == "13"
    assert float(rows[("my-run", "PIQA")]["diff"]) == pytest.approx(60.0 - 62.4)  # Table 13: LaMini-GPT-124M PIQA
