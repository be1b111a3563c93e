"""Stage `analyze` of generate.py: the paper's data analysis (§3.3) of a dataset in the record format.

    python generate.py stage=analyze analysis.input=<d_all.jsonl | folder | MBZUAI/LaMini-instruction>

Writes to <out_dir>/analysis/: Table 1 (statistics) and Table 2 (MATTR) as .md/.tex/.csv, Figure 3
(t-SNE PNGs), the Figure 4 rating sheet (CSV + HTML) and, given filled ratings, Figure 4's bar plots;
then logs them to W&B. Configuration: conf/analysis/default.yaml, typed by analysis/spec.py.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

from omegaconf import DictConfig

# heavy libraries (datasets, transformers, sentence-transformers, matplotlib, sklearn, wandb) are imported inside
# the functions of these modules that use them: stage=analyze checks its config in a second
from lamini_lm.analysis import ratings, tables
from lamini_lm.analysis.mattr import Tokenizer
from lamini_lm.analysis.reading import RELEASED, record_batches
from lamini_lm.files import write_atomic
from lamini_lm.analysis.spec import READS_RECORDS, AnalysisSpec, AnalyzeSpec
from lamini_lm.analysis.stats import DatasetStats, TokenCounter
from lamini_lm.analysis.tracking import log_outputs
from lamini_lm.analysis.tsne import PAPER_PAIRS, figure3
from lamini_lm.config import typed
from lamini_lm.errors import UserError
from lamini_lm.subsets import SUBSETS

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict:
    """Run the configured analysis (generate.py's config, checked here once); returns the summary written to
    summary.json."""
    spec = typed(cfg, AnalyzeSpec, keys=("analysis", "out_dir", "seed"))
    a = spec.analysis
    out = Path(spec.out_dir) / a.subdir
    files: list[Path] = []
    summary: dict = {"input": a.input, "outputs": a.outputs}
    if set(READS_RECORDS) & set(a.outputs):
        files += _from_records(a, spec.seed, out, summary)
    if "figure4" in a.outputs:
        files += ratings.figure4(ratings.read_ratings(_filled(a)), out)
    summary["files"] = [str(p) for p in files]
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "summary.json", json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    if a.wandb.enabled:
        flat = {
            f"{t}/{r['source']}/{k}": v
            for t in ("table1", "table2")
            for r in summary.get(t, [])
            for k, v in r.items()
            if k != "source"
        }
        summary["wandb_dir"] = log_outputs(a.wandb, out, dataclasses.asdict(a), files,
                                           {"rows": summary.get("rows"), **flat})
    log.info("analysis written to %s", out)
    return summary


def _filled(a: AnalysisSpec) -> Path | None:
    return Path(a.rating.filled).expanduser().resolve() if a.rating.filled else None


def _read(a: AnalysisSpec, seed: int):
    """One streaming pass over the input: what the outputs need (counts, MATTR streams, seeded samples)."""
    samples = {}
    if "figure3" in a.outputs:
        pairs = a.figure3.pairs if a.figure3.pairs is not None else PAPER_PAIRS
        samples["figure3"] = (a.figure3.sample_size, [s for p in pairs for s in p])
    if "rating_sheet" in a.outputs:
        samples["rating"] = (a.rating.per_subset, a.subsets or list(SUBSETS))
    batches = record_batches(a.input, a.split, a.batch_size, a.limit)  # a bad input fails before any loading
    stats = DatasetStats(
        counter=TokenCounter(a.table1.tokenizer, a.table1.piece_cache) if "table1" in a.outputs else None,
        word_tokenizer=Tokenizer(a.table2.token_pattern, a.table2.lowercase) if "table2" in a.outputs else None,
        window=a.table2.window,
        subsets=a.subsets,
        samples=samples,
        seed=seed,
    )
    stats.consume(batches)
    if not stats.samples.sum():
        among = f" of {', '.join(a.subsets)}" if a.subsets else ""
        raise UserError(f"analysis.input: {a.input} has no records{among}")
    if a.subsets:
        stats.require(a.subsets, "analysis.subsets")
    return stats


def _from_records(a: AnalysisSpec, seed: int, out: Path, summary: dict) -> list[Path]:
    """Tables 1 and 2, Figure 3 and the rating sheet, from one pass over the input."""
    stats = _read(a, seed)
    shown = a.subsets or stats.present()
    summary.update(rows=int(stats.samples.sum()), rows_skipped=stats.rows_skipped, subsets=shown)
    compare = a.input == RELEASED if a.compare_paper == "auto" else a.compare_paper
    paper = tables.paper_numbers() if compare else None
    files = []
    if "table1" in a.outputs:
        rows = tables.table1(stats, shown)
        caption = f"Table 1: data statistics; tokens counted with {stats.counter.name}."
        files += tables.write(rows, tables.TABLE1, out / "table1", caption, paper)
        summary["table1"] = rows
    if "table2" in a.outputs:
        rows = tables.table2(stats, shown)
        caption = (
            f"Table 2: MATTR (x100), window {a.table2.window}, over each subset's concatenated stream of "
            "lowercased word tokens."
        )
        files += tables.write(rows, tables.TABLE2, out / "table2", caption, paper)
        summary["table2"] = rows
    for name in ("table1", "table2"):
        if name in a.outputs:
            log.info("%s\n%s", name, (out / f"{name}.md").read_text(encoding="utf-8"))
    if "figure3" in a.outputs:
        picked = {s: [r["instruction"] for r in box.items] for s, box in stats.reservoirs["figure3"].items()}
        files += figure3(picked, _pairs(a, shown, stats), a.figure3, out, seed)
    if "rating_sheet" in a.outputs:
        filled = _filled(a)
        if filled is not None and filled == (out / "rating_sheet.csv").resolve():
            log.info("rating sheet: keeping %s, the filled sheet being ingested", filled)
        else:
            picked = {s: box.items for s, box in stats.reservoirs["rating"].items() if box.items}
            files += ratings.write_sheet(ratings.sheet_rows(picked, seed), out, a.rating.blind)
    return files


def _pairs(a: AnalysisSpec, shown: list[str], stats) -> list[tuple[str, str]]:
    if a.figure3.pairs is None:
        pairs = [p for p in PAPER_PAIRS if set(p) <= set(shown)]
        skipped = [p for p in PAPER_PAIRS if p not in pairs]
        if skipped:
            what = " and ".join(" vs ".join(p) for p in skipped)
            log.warning("figure 3: skipping the paper's %s: subsets not in the input", what)
        return pairs
    pairs = [tuple(p) for p in a.figure3.pairs]
    stats.require(sorted({s for p in pairs for s in p}), "analysis.figure3.pairs")
    return pairs
