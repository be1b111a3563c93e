"""Table 4 and Tables 9-13 rebuilt: the paper's number, ours and the difference, as Markdown, LaTeX, CSV.

    python evaluate.py mode=report report.results=[outputs/evaluate/<time>,multirun/evaluate/<time>]

Each of our results (a ``summary.json`` written by evaluate.py) sits beside the paper model it
reproduces (``paper_model``, or ``report.labels``, or a name match); results matching no paper model
get a table of their own. Scores are percentages with one decimal, as in the paper. Tasks the paper does
not report (a suite of one's own) follow the paper's rows, with no paper number; the averages are the
paper's, over its 15 tasks, so that they stay comparable with its own.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from lamini_lm import table_render
from lamini_lm.errors import UserError
from lamini_lm.evaluation import figures, paper
from lamini_lm.evaluation.spec import ReportSpec
from lamini_lm.evaluation.suite import PAPER_TASKS
from lamini_lm.files import open_atomic, write_atomic

OURS_AVG = "Average (tasks we ran)"


@dataclass
class Result:
    name: str
    paper_model: str | None
    wrapper: str
    suite: str
    params: int | None
    architecture: str | None  # decoder-only, encoder-decoder (the model family's)
    scores: dict  # task row (the paper's name where it has one) -> percent; unavailable tasks absent
    path: Path  # its summary.json

    @property
    def label(self) -> str:
        return f"{self.name} [{self.wrapper}]"


def find_results(paths) -> list[Result]:
    """Every evaluate.py summary under ``paths`` (folders are searched recursively)."""
    if not paths:
        raise UserError("no results given: pass report.results=[<evaluate.py run folder>, ...]")
    files = []
    for p in map(Path, paths):
        if p.is_file():
            files.append(p)
        elif p.is_dir():
            found = sorted(p.rglob("summary.json"))
            if not found:
                raise UserError(f"{p} holds no evaluate.py results (no summary.json below it)")
            files += found
        else:
            raise UserError(f"results path {p} does not exist")
    return [_read(f) for f in files]


def _read(f: Path) -> Result:
    try:
        s = json.loads(f.read_text())
        model = s["model"]
        scores = {r.get("name") or r["paper"]: 100 * r["value"] for r in s["tasks"] if r["status"] == "ok"}
        return Result(model["name"], s.get("paper_model"), s["wrapper"], s["suite"], model.get("params"),
                      model.get("architecture"), scores, f)
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise UserError(f"{f} is not an evaluate.py summary.json ({type(e).__name__}: {e})") from None


def _task_rows(results) -> tuple[str, ...]:
    """The paper's tasks, then any other task the results hold, in the order first seen."""
    extra = {t: None for r in results for t in r.scores if t not in PAPER_TASKS}
    return (*PAPER_TASKS, *extra)


def _all_paper_tasks(r: Result) -> bool:
    return all(t in r.scores for t in PAPER_TASKS)


def _diff(ours, ref):
    return None if ours is None or ref is None else ours - ref


def _fmt(v) -> str:
    return "" if v is None else f"{v:.1f}"


def table_rows(models: list[paper.PaperModel], results: dict[str, list[Result]]) -> tuple[list[str], list[list]]:
    """Header and rows of one table: per paper model its paper column, then ours and Δ for each result."""
    header, cols = ["Task"], []
    for m in models:
        header.append(f"{m.name} ({m.params}) paper")
        cols.append(lambda t, m=m: m.scores.get(t))
        for r in results.get(m.name, []):
            header += [f"{m.name} ours {r.label}", f"{m.name} Δ {r.label}"]
            cols.append(lambda t, r=r: r.scores.get(t))
            cols.append(lambda t, r=r, m=m: _diff(r.scores.get(t), m.scores.get(t)))
    ran = [r for m in models for r in results.get(m.name, [])]
    rows = [[t] + [c(t) for c in cols] for t in (*_task_rows(ran), paper.AVERAGE)]
    # the paper's Average is re-rendered as printed; ours is the same micro-average when all 15 ran
    avg, i = rows[-1], 1  # i: index of the current paper model's column
    for m in models:
        i += 1
        for r in results.get(m.name, []):
            ours = paper.micro_average(r.scores) if _all_paper_tasks(r) else None
            avg[i], avg[i + 1] = ours, _diff(ours, m.scores[paper.AVERAGE])
            i += 2
    if any(results.get(m.name) for m in models):
        rows.append(_partial_average_row(models, results))
    return header, rows


def _partial_average_row(models, results) -> list:
    """Paper and ours averaged over exactly the tasks we ran (comparable when some are unavailable)."""
    row = [OURS_AVG]
    for m in models:
        rs = results.get(m.name, [])
        tasks = sorted({t for r in rs for t in r.scores}) if rs else None
        row.append(paper.micro_average(m.scores, tasks) if rs else None)
        for r in rs:
            ours, ref = paper.micro_average(r.scores), paper.micro_average(m.scores, list(r.scores))
            row += [ours, _diff(ours, ref)]
    return row


def _extra_rows(results: list[Result]) -> tuple[list[str], list[list]]:
    header = ["Task"] + [r.label for r in results]
    rows = [[t] + [r.scores.get(t) for r in results] for t in _task_rows(results)]
    rows.append([OURS_AVG] + [paper.micro_average(r.scores) for r in results])
    return header, rows


def _markdown(title, header, rows) -> str:
    return table_render.markdown(f"### {title}", header, [[row[0], *map(_fmt, row[1:])] for row in rows])


def _latex(title, header, rows) -> str:
    esc = lambda s: str(s).replace("_", r"\_").replace("&", r"\&").replace("%", r"\%").replace("Δ", r"$\Delta$")  # noqa: E731
    return table_render.latex(esc(title), [esc(h) for h in header], [[esc(row[0]), *map(_fmt, row[1:])] for row in rows],
                        {i for i, row in enumerate(rows) if row[0] == paper.AVERAGE})


def _long_rows(table: int | str, models, results) -> list[dict]:
    out = []
    tasks = _task_rows([r for m in models for r in results.get(m.name, [])])
    for m in models:
        for t in (*tasks, paper.AVERAGE):
            base = {"table": table, "paper_model": m.name, "params": m.params, "task": t, "paper": m.scores.get(t)}
            rs = results.get(m.name, [])
            if not rs:
                out.append(base | {"result": "", "wrapper": "", "ours": None, "diff": None})
            for r in rs:
                ours = r.scores.get(t) if t != paper.AVERAGE else (
                    paper.micro_average(r.scores) if _all_paper_tasks(r) else None)
                out.append(base | {"result": r.name, "wrapper": r.wrapper, "ours": ours,
                                   "diff": _diff(ours, m.scores.get(t))})
    return out


def build(tables: dict[int, list[paper.PaperModel]], results: list[Result], which, labels=None) -> dict:
    """Every requested table as (title, header, rows), long CSV rows, and the results no table holds."""
    known = paper.all_models(tables)
    labels = dict(labels or {})
    seen: dict[str, int] = {}
    for r in results:  # two runs of one model under one wrapper: tell their columns apart
        seen[r.label] = seen.get(r.label, 0) + 1
        if seen[r.label] > 1:
            r.name = f"{r.name}#{seen[r.label]}"
    by_model: dict[str, list[Result]] = {}
    unmatched = []
    for r in results:
        target = labels.get(r.name) or r.paper_model or paper.match(r.name, known)
        if target is not None and target not in known:
            raise UserError(f"result {r.name} ({r.path}) is labelled '{target}', which is not in the paper's tables")
        (by_model.setdefault(target, []) if target else unmatched).append(r)
    built, long = [], []
    for t in which:
        if t not in tables:
            raise UserError(f"report.tables: the paper has no Table {t} of NLP results; choose from {sorted(tables)}")
        header, rows = table_rows(tables[t], by_model)
        built.append((t, paper.TABLE_TITLES.get(t, f"Table {t}"), header, rows))
        long += _long_rows(t, tables[t], by_model)
    if unmatched:
        header, rows = _extra_rows(unmatched)
        built.append(("ours", "Our models with no counterpart in the paper", header, rows))
        for r in unmatched:
            long += [{"table": "ours", "paper_model": "", "params": r.params, "task": t, "paper": None,
                      "result": r.name, "wrapper": r.wrapper, "ours": r.scores.get(t), "diff": None}
                     for t in _task_rows(unmatched)]
    return {"tables": built, "long": long, "by_model": by_model, "unmatched": unmatched}


def write(built: dict, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    md, tex = [], []
    for _, title, header, rows in built["tables"]:
        md.append(_markdown(title, header, rows))
        tex.append(_latex(title, header, rows))
    files = [out_dir / "tables.md", out_dir / "tables.tex", out_dir / "tables.csv"]
    write_atomic(files[0], "\n".join(md))
    write_atomic(files[1], "% needs \\usepackage{booktabs}\n" + "\n".join(tex))
    with open_atomic(files[2]) as f:
        w = csv.DictWriter(f, fieldnames=["table", "paper_model", "params", "task", "paper", "result", "wrapper",
                                          "ours", "diff"])
        w.writeheader()
        for row in built["long"]:
            w.writerow({k: (round(v, 2) if isinstance(v, float) else v) for k, v in row.items()})
    return files


def run(cfg: ReportSpec) -> None:
    tables = paper.load(cfg.paper_results)
    results = find_results(cfg.results)
    built = build(tables, results, list(cfg.tables), cfg.labels)
    out = Path(cfg.out_dir)
    files = write(built, out) + figures.figure5(tables, results, built["by_model"], out / "figure5.png")
    for f in files:
        print(f)
