"""The paper's numbers (Table 4, Tables 9-13) as data, and the way it averages them."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from lamini_lm.errors import UserError
from lamini_lm.evaluation.suite import PAPER_TASKS
from lamini_lm.models.size import parse_size

AVERAGE = "Average"
DEFAULT_CSV = Path(__file__).with_name("paper_results.csv")
TABLE_TITLES = {
    4: "Table 4: the largest model of each group, LLaMA-7B and Alpaca-7B",
    9: "Table 9: LaMini-T5 and T5", 10: "Table 10: LaMini-Flan-T5 and Flan-T5", 11: "Table 11: LaMini-Neo and GPT-Neo",
    12: "Table 12: LaMini-Cerebras and Cerebras-GPT", 13: "Table 13: LaMini-GPT and GPT-2",
}


@dataclass(frozen=True)
class PaperModel:
    name: str
    params: str  # as printed: 61M, 1.3B, 7B
    scores: dict  # paper task -> value (percent), plus "Average"

    @property
    def n_params(self) -> float:
        return parse_size(self.params)[0]


def load(path: str | Path = DEFAULT_CSV) -> dict[int, list[PaperModel]]:
    """Table number -> its models in the paper's column order."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"paper results file {path} does not exist (report.paper_results)")
    tables: dict[int, dict[str, PaperModel]] = {}
    with open(path, newline="") as f:
        for lineno, row in enumerate(csv.DictReader(f), 2):
            try:
                table, model, value = int(row["table"]), row["model"], float(row["value"])
            except (KeyError, TypeError, ValueError):
                raise UserError(f"{path}:{lineno}: expected columns table,model,params,task,value") from None
            if row["task"] not in PAPER_TASKS and row["task"] != AVERAGE:
                raise UserError(f"{path}:{lineno}: unknown task '{row['task']}'")
            m = tables.setdefault(table, {}).setdefault(model, PaperModel(model, row["params"], {}))
            m.scores[row["task"]] = value
    return {t: list(ms.values()) for t, ms in tables.items()}


def micro_average(scores: dict, tasks=PAPER_TASKS) -> float | None:
    """The paper's "micro-average of the individual task results": the plain mean of the task scores.

    Checked against results.csv: the mean of the 15 printed scores, rounded to one decimal, gives the
    printed Average for 39 of the paper's 40 columns; flan-t5-base (Table 10) prints 59.7 where its
    printed scores average 59.647 (the paper averaged unrounded scores). Example-weighted averaging
    matches none, so "micro" here is not weighted by the number of examples.
    """
    vals = [scores[t] for t in tasks if scores.get(t) is not None]
    return sum(vals) / len(vals) if vals else None


def all_models(tables: dict[int, list[PaperModel]]) -> dict[str, PaperModel]:
    return {m.name: m for ms in tables.values() for m in ms}


def match(name: str, known: dict[str, PaperModel]) -> str | None:
    """The paper model a result's name denotes, case-insensitively (hub ids: the part after the org)."""
    lower = {k.lower(): k for k in known}
    for cand in (name, name.rsplit("/", 1)[-1]):
        if cand.lower() in lower:
            return lower[cand.lower()]
    return None
