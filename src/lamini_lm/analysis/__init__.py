"""Stage `analyze` of generate.py: the paper's data analysis (§3.3) of a dataset in the record format.

    python generate.py stage=analyze analysis.input=<d_all.jsonl | folder | MBZUAI/LaMini-instruction>

Writes to <out_dir>/analysis/: Table 1 (statistics) and Table 2 (MATTR) as .md/.tex/.csv, Figure 3
(t-SNE PNGs), the Figure 4 rating sheet (CSV + HTML) and, given filled ratings, Figure 4's bar plots;
then logs them to W&B. Configuration: conf/analysis/default.yaml.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from lamini_lm.errors import UserError

log = logging.getLogger(__name__)
OUTPUTS = ("table1", "table2", "figure3", "rating_sheet", "figure4")


def _pairs(a, shown: list[str], stats) -> list[tuple[str, str]]:
    from lamini_lm.analysis.tsne import PAPER_PAIRS
    from lamini_lm.subsets import resolve

    if a.figure3.pairs is None:
        pairs = [p for p in PAPER_PAIRS if set(p) <= set(shown)]
        skipped = [p for p in PAPER_PAIRS if p not in pairs]
        if skipped:
            what = " and ".join(" vs ".join(p) for p in skipped)
            log.warning("figure 3: skipping the paper's %s: subsets not in the input", what)
        return pairs
    pairs = []
    for p in a.figure3.pairs:
        if len(p) != 2:
            raise UserError(f"analysis.figure3.pairs: {list(p)} is not a pair of subsets")
        pairs.append(tuple(resolve(p, "analysis.figure3.pairs")))
    stats.require(sorted({s for p in pairs for s in p}), "analysis.figure3.pairs")
    return pairs


def run(cfg: DictConfig) -> dict:
    """Run the configured analysis; returns the summary written to summary.json."""
    from lamini_lm.analysis import ratings, tables
    from lamini_lm.analysis.mattr import Tokenizer
    from lamini_lm.analysis.reading import RELEASED, record_batches
    from lamini_lm.analysis.stats import DatasetStats, TokenCounter
    from lamini_lm.analysis.tsne import PAPER_PAIRS, figure3
    from lamini_lm.subsets import SUBSETS, ordered, resolve

    a = cfg.analysis
    out = Path(cfg.out_dir) / a.subdir
    outputs = list(a.outputs or [])
    for o in outputs:
        if o not in OUTPUTS:
            raise UserError(f"analysis.outputs: unknown output '{o}'; choose from {', '.join(OUTPUTS)}")
    filled = Path(a.rating.filled).expanduser().resolve() if a.rating.filled else None
    if filled and "figure4" not in outputs:
        outputs.append("figure4")
    if "figure4" in outputs and filled is None:
        raise UserError("analysis.outputs has figure4 but no ratings: set analysis.rating.filled=<filled sheet .csv>")
    if a.table2.window < 1:
        raise UserError(f"analysis.table2.window must be at least 1, got {a.table2.window}")
    subsets = ordered(resolve(a.subsets, "analysis.subsets")) if a.subsets is not None else None
    files: list[Path] = []
    summary: dict = {"input": str(a.input), "outputs": outputs}

    if {"table1", "table2", "figure3", "rating_sheet"} & set(outputs):
        if "figure3" in outputs and a.figure3.pairs is not None:
            tsne_from = [s for p in a.figure3.pairs for s in resolve(p, "analysis.figure3.pairs")]
        else:
            tsne_from = [s for p in PAPER_PAIRS for s in p]
        samples = {}
        if "figure3" in outputs:
            samples["figure3"] = (a.figure3.sample_size, tsne_from)
        if "rating_sheet" in outputs:
            samples["rating"] = (a.rating.per_subset, subsets or list(SUBSETS))
        batches = record_batches(a.input, a.split, a.batch_size, a.limit)  # a bad input fails before any loading
        stats = DatasetStats(
            counter=TokenCounter(a.table1.tokenizer, a.table1.piece_cache) if "table1" in outputs else None,
            word_tokenizer=Tokenizer(a.table2.token_pattern, a.table2.lowercase) if "table2" in outputs else None,
            window=a.table2.window,
            subsets=subsets,
            samples=samples,
            seed=cfg.seed,
        )
        stats.consume(batches)
        if not stats.samples.sum():
            among = f" of {', '.join(subsets)}" if subsets else ""
            raise UserError(f"analysis.input: {a.input} has no records{among}")
        if subsets:
            stats.require(subsets, "analysis.subsets")
        shown = subsets or stats.present()
        summary.update(rows=int(stats.samples.sum()), rows_skipped=stats.rows_skipped, subsets=shown)
        compare = str(a.input) == RELEASED if a.compare_paper == "auto" else bool(a.compare_paper)
        paper = tables.paper_numbers() if compare else None

        if "table1" in outputs:
            rows = tables.table1(stats, shown)
            caption = f"Table 1: data statistics; tokens counted with {stats.counter.name}."
            files += tables.write(rows, tables.TABLE1, out / "table1", caption, paper)
            summary["table1"] = rows
        if "table2" in outputs:
            rows = tables.table2(stats, shown)
            caption = (
                f"Table 2: MATTR (x100), window {a.table2.window}, over each subset's concatenated stream of "
                "lowercased word tokens."
            )
            files += tables.write(rows, tables.TABLE2, out / "table2", caption, paper)
            summary["table2"] = rows
        for name in ("table1", "table2"):
            if name in outputs:
                log.info("%s\n%s", name, (out / f"{name}.md").read_text(encoding="utf-8"))
        if "figure3" in outputs:
            pairs = _pairs(a, shown, stats)
            picked = {s: [r["instruction"] for r in box.items] for s, box in stats.reservoirs["figure3"].items()}
            files += figure3(picked, pairs, a.figure3, out, cfg.seed)
        if "rating_sheet" in outputs:
            if filled is not None and filled == (out / "rating_sheet.csv").resolve():
                log.info("rating sheet: keeping %s, the filled sheet being ingested", filled)
            else:
                picked = {s: box.items for s, box in stats.reservoirs["rating"].items() if box.items}
                files += ratings.write_sheet(ratings.sheet_rows(picked, cfg.seed), out, a.rating.blind)

    if "figure4" in outputs:
        files += ratings.figure4(ratings.read_ratings(filled), out)

    summary["files"] = [str(p) for p in files]
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if a.wandb.enabled:
        flat = {
            f"{t}/{r['source']}/{k}": v
            for t in ("table1", "table2")
            for r in summary.get(t, [])
            for k, v in r.items()
            if k != "source"
        }
        from lamini_lm.analysis.tracking import log_outputs

        summary["wandb_dir"] = log_outputs(
            a.wandb, out, OmegaConf.to_container(a, resolve=True), files, {"rows": summary.get("rows"), **flat}
        )
    log.info("analysis written to %s", out)
    return summary
