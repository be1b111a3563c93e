"""Table 1 (statistics) and Table 2 (MATTR) as rows, written as Markdown, LaTeX and CSV.

With the paper's printed numbers (paper_tables.csv, the one place they live) each Markdown/LaTeX cell
reads "ours (paper)" and the CSV gets paper_* columns. Markdown/LaTeX print counts the paper's way
(0.27M) from 100,000 up; the CSV holds exact integers.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lamini_lm import table_render
from lamini_lm.analysis.stats import CODES, DatasetStats
from lamini_lm.files import open_atomic, write_atomic
from lamini_lm.subsets import ALL, D_ALL, SUBSETS

PAPER_CSV = Path(__file__).with_name("paper_tables.csv")


def paper_numbers() -> dict[str, dict[str, float]]:
    with open(PAPER_CSV, newline="") as f:
        return {r.pop("source"): {k: float(v) for k, v in r.items()} for r in csv.DictReader(f)}


def _count(n: float) -> str:
    return f"{n / 1e6:.2f}M" if n >= 100_000 else f"{int(n):,}"


def _fixed(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    latex: str
    fmt: Callable
    paper_key: str | None = None
    paper_fmt: Callable = _fixed


TABLE1 = [
    Column("samples", "# of samples", r"\# of samples", _count, "samples_M", lambda v: f"{v:.2f}M"),
    Column("ins_tokens", "# of ins. tokens", r"\# of ins. tokens", _count, "ins_tokens_M", lambda v: f"{v:.2f}M"),
    Column("avg_ins_len", "avg. ins. len.", "avg. ins. len.", _fixed, "avg_ins_len"),
    Column("res_tokens", "# of res. tokens", r"\# of res. tokens", _count, "res_tokens_M", lambda v: f"{v:.2f}M"),
    Column("avg_res_len", "avg. res. len.", "avg. res. len.", _fixed, "avg_res_len"),
]
TABLE2 = [
    Column("mattr_ins", "X or X̂ (instructions)", r"$X_{\{\cdot\}}$ or $\widehat{X}_{\{\cdot\}}$", _fixed,
           "mattr_ins"),
    Column("mattr_res", "Y or Ŷ (responses)", r"$Y_{\{\cdot\}}$ or $\widehat{Y}_{\{\cdot\}}$", _fixed,
           "mattr_res"),
]


def _rows(subsets: list[str]) -> list[tuple[str, int]]:
    return [(s, CODES[s]) for s in subsets] + [(ALL, -1)]


def table1(stats: DatasetStats, subsets: list[str]) -> list[dict]:
    rows = []
    for s, c in _rows(subsets):
        n = int(stats.samples.sum() if c < 0 else stats.samples[c])
        ins = int(stats.tokens["instruction"].sum() if c < 0 else stats.tokens["instruction"][c])
        res = int(stats.tokens["response"].sum() if c < 0 else stats.tokens["response"][c])
        rows.append(
            {"source": s, "samples": n, "ins_tokens": ins, "avg_ins_len": ins / n, "res_tokens": res,
             "avg_res_len": res / n}
        )
    return rows


def table2(stats: DatasetStats, subsets: list[str]) -> list[dict]:
    rows = []
    for s, c in _rows(subsets):
        row = {"source": s}
        for f, short in (("instruction", "ins"), ("response", "res")):
            stream = stats.streams[f][s]
            value = stream.result()
            row[f"mattr_{short}"] = None if value is None else 100 * value
            row[f"{short}_words"] = stream.n
            row[f"{short}_windows"] = stream.windows  # 0: shorter than the window, the value is plain TTR
        rows.append(row)
    return rows


def _subset(source: str):
    return D_ALL if source == ALL else SUBSETS[source]


def write(rows: list[dict], columns: list[Column], out: Path, caption: str, paper: dict | None) -> list[Path]:
    """``out`` without suffix; writes out.md, out.tex, out.csv (paper columns when ``paper``)."""
    out.parent.mkdir(parents=True, exist_ok=True)

    def cell(row, col):
        ours = col.fmt(row[col.key]) if row[col.key] is not None else "n/a"
        if paper and col.paper_key and row["source"] in paper:
            return f"{ours} ({col.paper_fmt(paper[row['source']][col.paper_key])})"
        return ours

    note = " Paper's printed values in parentheses." if paper else ""
    md_rows = [[_subset(r["source"]).name(), *(cell(r, c) for c in columns)] for r in rows]
    md = table_render.markdown(f"**{caption}**{note}", ["Dataset", *(c.header for c in columns)], md_rows)
    write_atomic(out.with_suffix(".md"), md)
    tex_rows = [[_subset(r["source"]).latex(), *(cell(r, c).replace("%", r"\%") for c in columns)] for r in rows]
    tex = table_render.latex(caption + note, ["Dataset", *(c.latex for c in columns)], tex_rows,
                       {i for i, r in enumerate(rows) if r["source"] == ALL})
    write_atomic(out.with_suffix(".tex"), tex)

    keys = list(rows[0])
    paper_keys = [c.paper_key for c in columns if c.paper_key] if paper else []
    with open_atomic(out.with_suffix(".csv")) as f:
        w = csv.writer(f)
        w.writerow(["dataset", *keys, *(f"paper_{k}" for k in paper_keys)])
        for r in rows:
            p = paper.get(r["source"], {}) if paper else {}
            w.writerow([_subset(r["source"]).name(), *(r[k] for k in keys), *(p.get(k, "") for k in paper_keys)])
    return [out.with_suffix(s) for s in (".md", ".tex", ".csv")]
