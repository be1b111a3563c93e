"""Figure 4: the human evaluation of the data (Rate-A..D, §3.3.3 and Table 7).

1. ``write_sheet``: the seeded sample (20 per subset) shuffled into a rating sheet, as CSV and as a
   self-contained HTML page (no network, answers kept in the browser's localStorage) that shows the
   protocol beside the items and exports the filled sheet as CSV.
2. ``read_ratings``: a filled sheet (from the page, or the CSV filled by hand) -> counts per subset.
3. ``figure4``: stacked bars of the ratings of instructions (4a) and responses (4b) per subset.
"""

from __future__ import annotations

import csv
import hashlib
import html
import json
import random
from collections import Counter
from pathlib import Path

from lamini_lm import rating
from lamini_lm.errors import UserError
from lamini_lm.files import open_atomic, save_figure, write_atomic
from lamini_lm.subsets import SUBSETS, ordered

COLUMNS = ["item_id", "source", "dataset", "instruction", "response", "instruction_rating", "response_rating"]
RATED = {"instruction": "instruction_rating", "response": "response_rating"}
TEMPLATE = Path(__file__).with_name("rating_sheet.html")


def sheet_rows(samples: dict[str, list[dict]], seed: int) -> list[dict]:
    items = [r for s in ordered(samples) for r in samples[s]]
    random.Random(f"{seed}/rating-order").shuffle(items)  # the rater sees no subset blocks
    return [
        {
            "item_id": f"{i + 1:03d}",
            "source": r["instruction_source"],
            "dataset": SUBSETS[r["instruction_source"]].name(),
            "instruction": r["instruction"],
            "response": r["response"],
            "instruction_rating": "",
            "response_rating": "",
        }
        for i, r in enumerate(items)
    ]


def _has_ratings(path: Path) -> bool:
    with open(path, newline="", encoding="utf-8") as f:
        return any(r.get(c, "").strip() for r in csv.DictReader(f) for c in RATED.values())


def write_sheet(rows: list[dict], out_dir: Path, blind: bool) -> list[Path]:
    """rating_sheet.csv and rating_sheet.html; a sheet that already holds ratings is never overwritten."""
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, html_path = out_dir / "rating_sheet.csv", out_dir / "rating_sheet.html"
    if csv_path.exists() and _has_ratings(csv_path):
        raise UserError(
            f"{csv_path} already holds ratings: move it away, or ingest it with analysis.rating.filled={csv_path} "
            "and analysis.outputs=[] (nothing was overwritten)"
        )
    with open_atomic(csv_path) as f:
        w = csv.DictWriter(f, COLUMNS)
        w.writeheader()
        w.writerows(rows)
    payload = json.dumps(rows, ensure_ascii=False).replace("</", "<\\/")  # no early </script>
    sheet_id = hashlib.sha1(payload.encode()).hexdigest()[:12]
    page = (
        TEMPLATE.read_text(encoding="utf-8")
        .replace("__ITEMS__", payload)
        .replace("__COLUMNS__", json.dumps(COLUMNS))
        .replace("__LEVELS__", json.dumps(rating.LEVELS))
        .replace("__SHEET_ID__", sheet_id)
        .replace("__BLIND__", "true" if blind else "false")
        .replace("__TITLE__", html.escape(f"LaMini-LM data rating sheet ({len(rows)} items)"))
    )
    write_atomic(html_path, page)
    return [csv_path, html_path]


def read_ratings(path: str | Path) -> dict[str, dict[str, Counter]]:
    """{'instruction'|'response': {source: Counter(A..D, plus 'unrated')}} from a filled sheet."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"analysis.rating.filled: {path} does not exist")
    counts = {field: {} for field in RATED}
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        missing = [c for c in ("source", *RATED.values()) if c not in (reader.fieldnames or [])]
        if missing:
            raise UserError(f"{path}: no column {', '.join(missing)}; expected the rating sheet's columns {COLUMNS}")
        for row in reader:
            where = f"{path}:{reader.line_num}"
            src = row["source"]
            if src not in SUBSETS:
                known = ", ".join(SUBSETS)
                raise UserError(f"{where}: unknown subset '{src}' in column source; expected one of {known}")
            for field, col in RATED.items():
                try:
                    v = rating.parse(row[col])
                except ValueError:
                    raise UserError(f"{where}: {col} is '{row[col]}', expected one of A, B, C, D (or blank)") from None
                counts[field].setdefault(src, Counter())[v or "unrated"] += 1
    if not any(c[lv] for per in counts.values() for c in per.values() for lv in rating.LEVELS):
        raise UserError(f"{path}: no ratings filled in (columns {', '.join(RATED.values())} are all blank)")
    return counts


def figure4(counts: dict[str, dict[str, Counter]], out_dir: Path) -> list[Path]:
    """figure4a_instructions.png, figure4b_responses.png and figure4_ratings.csv."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for k, (field, letter, title) in enumerate(
        [("instruction", "X", "instructions"), ("response", "Y", "responses")]
    ):
        per = counts[field]
        subsets = ordered(per)
        fig, ax = plt.subplots(figsize=(1.1 * len(subsets) + 2.5, 4))
        bottom = [0] * len(subsets)
        for lv in rating.LEVELS:
            vals = [per[s][lv] for s in subsets]
            ax.bar(range(len(subsets)), vals, bottom=bottom, color=rating.COLOURS[lv], label=f"Rate-{lv}", width=0.6)
            bottom = [b + v for b, v in zip(bottom, vals)]
        ax.set_xticks(range(len(subsets)), [SUBSETS[s].latex(letter) for s in subsets])
        ax.set_ylabel("# of examples")
        ax.yaxis.get_major_locator().set_params(integer=True)
        ax.set_title(f"({chr(97 + k)}) Human evaluation for the {title}")
        ax.legend(loc="upper left", bbox_to_anchor=(1, 1))
        fig.tight_layout()
        path = out_dir / f"figure4{chr(97 + k)}_{title}.png"
        save_figure(fig, path, dpi=150)
        plt.close(fig)
        written.append(path)
    table = out_dir / "figure4_ratings.csv"
    with open_atomic(table) as f:
        w = csv.writer(f)
        w.writerow(["field", "dataset", "source", *rating.LEVELS, "unrated"])
        for field, letter in (("instruction", "X"), ("response", "Y")):
            for s in ordered(counts[field]):
                c = counts[field][s]
                w.writerow([field, SUBSETS[s].name(letter), s, *(c[lv] for lv in rating.LEVELS), c["unrated"]])
    return [*written, table]
