"""Human evaluation on self-instruct's user-oriented instructions (Section 4.2, Figure 6).

    python evaluate.py mode=human_select                                # the subset -> human.ids_file
    python evaluate.py mode=human_generate model=[<export>,<export>]    # responses/<model>.jsonl
    python evaluate.py mode=human_sheets human.responses=<run>/responses   # blinded rater_<k>.csv + key.csv
    python evaluate.py mode=human_ingest human.sheets=<run>/sheets      # Rate-A..D counts + Figure 6
"""

from __future__ import annotations

import csv
import json
import random
import re
import urllib.request
from collections import Counter, defaultdict
from pathlib import Path

from lamini_lm import rating
from lamini_lm.errors import UserError
from lamini_lm.evaluation.figures import figure6
from lamini_lm.evaluation.spec import HumanSpec
from lamini_lm.files import open_atomic, replacing, write_atomic

# model loading and lm-eval (inference, harness) are imported by `generate` only: the sheets and the
# ingestion of ratings start without torch
from lamini_lm.jsonl import iter_jsonl

EXPORTS_FILE = "exports.json"  # in the sheets folder: model -> export folder
SHEET_FIELDS = ("item_id", "instruction_id", "instruction", "input", "response", "rating", "comment")
KEY_FIELDS = ("item_id", "instruction_id", "rater", "model")


# ---------------------------------------------------------------- the instructions and the subset
def _read_instructions(path: Path) -> list[dict]:
    rows = []
    for where, r in iter_jsonl(path):
        for k in ("id", "motivation_app", "instruction", "instances"):
            if not isinstance(r, dict) or k not in r:
                raise UserError(f"{where}: missing field '{k}' (a user-oriented instruction has id, "
                                "motivation_app, instruction, instances)")
        rows.append(r)
    return rows


def load_instructions(h) -> list[dict]:
    """The 252 instructions: ``human.path`` if given, else the cached download of ``human.url``."""
    if h.path:
        path = Path(h.path)
        if not path.exists():
            raise UserError(f"human.path={path} does not exist")
        return _read_instructions(path)
    cache = Path(h.cache)
    if not cache.exists():
        try:
            with urllib.request.urlopen(h.url, timeout=30) as resp:
                data = resp.read()
        except OSError as e:
            raise UserError(f"cannot download {h.url} ({e}); put a copy of user_oriented_instructions.jsonl "
                            "somewhere and pass human.path=<that file>") from None
        cache.parent.mkdir(parents=True, exist_ok=True)
        with replacing(cache) as tmp:  # a killed download never leaves half a file as the cache
            tmp.write_bytes(data)
    return _read_instructions(cache)


def choose(rows: list[dict], patterns, max_per_app: int) -> list[str]:
    """The documented subset rule: no NLP-task duplicates, then the first ``max_per_app`` per app."""
    try:
        regexes = [re.compile(p, re.IGNORECASE) for p in patterns]
    except re.error as e:
        raise UserError(f"human.nlp_task_patterns: bad regular expression ({e})") from None
    per_app: Counter = Counter()
    ids = []
    for r in rows:
        if any(rx.search(r["instruction"]) for rx in regexes) or per_app[r["motivation_app"]] >= max_per_app:
            continue
        per_app[r["motivation_app"]] += 1
        ids.append(r["id"])
    return ids


def model_input(row: dict, separator: str) -> tuple[str, str]:
    """(the text the model is asked, the instance input); the instruction and its input, joined."""
    inp = (row["instances"][0].get("input") or "").strip() if row["instances"] else ""
    return (row["instruction"] + separator + inp if inp else row["instruction"]), inp


def selected(h) -> list[dict]:
    ids_file = Path(h.ids_file)
    if not ids_file.exists():
        raise UserError(f"{ids_file} does not exist: run `python evaluate.py mode=human_select` first")
    ids = [x.strip() for x in ids_file.read_text().splitlines() if x.strip() and not x.startswith("#")]
    by_id = {r["id"]: r for r in load_instructions(h)}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise UserError(f"{ids_file}: id(s) {', '.join(missing[:5])} are not in the instruction file")
    return [by_id[i] for i in ids]


def select(h: HumanSpec) -> Path:
    rows = load_instructions(h)
    ids = choose(rows, h.nlp_task_patterns, h.max_per_app)
    out = Path(h.ids_file)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, f"# {len(ids)} of {len(rows)} user-oriented instructions: <= {h.max_per_app} per app, none matching "
                   "human.nlp_task_patterns (python evaluate.py mode=human_select)\n" + "\n".join(ids) + "\n")
    print(f"{len(ids)} instructions from {len({r['motivation_app'] for r in rows})} apps -> {out}")
    return out


# ---------------------------------------------------------------- responses
def generate(h: HumanSpec, refs: list) -> Path:
    """Every model's (lamini_lm.evaluation.model_refs.ModelRef) response to every selected instruction,
    batched, in the model's own prompt style."""
    from lamini_lm import inference
    from lamini_lm.evaluation.harness import safe_name

    rows = selected(h)
    out = Path(h.responses)
    out.mkdir(parents=True, exist_ok=True)
    for ref in refs:
        model, tok, family, style = inference.load(ref.location, ref.revision)
        texts = [model_input(r, h.input_separator) for r in rows]
        responses = inference.generate(model, tok, family, style, [t for t, _ in texts],
                                       batch_size=h.generation.batch_size,
                                       max_new_tokens=h.generation.max_new_tokens)
        path = out / f"{safe_name(ref.name)}.jsonl"
        with open_atomic(path) as f:  # a model's responses appear whole, or not at all
            for r, (_, inp), resp in zip(rows, texts, responses):
                f.write(json.dumps({"id": r["id"], "motivation_app": r["motivation_app"], "instruction": r["instruction"],
                                    "input": inp, "model": ref.name, "prompt_style": style.name, "response": resp,
                                    "export": ref.location if ref.local else None}, ensure_ascii=False) + "\n")
        print(f"{ref.name}: {len(responses)} responses -> {path}")
    return out


# ---------------------------------------------------------------- blinded sheets and ratings
def read_responses(folder: Path) -> dict[str, dict[str, dict]]:
    """model -> instruction id -> response record, from every <model>.jsonl in ``folder``."""
    files = sorted(folder.glob("*.jsonl")) if folder.is_dir() else []
    if not files:
        raise UserError(f"{folder} holds no <model>.jsonl responses: run mode=human_generate first")
    out: dict[str, dict[str, dict]] = {}
    for f in files:
        for where, r in iter_jsonl(f):
            if not isinstance(r, dict) or not {"model", "id", "instruction", "response"} <= r.keys():
                raise UserError(f"{where}: not a response record (needs model, id, instruction, response)")
            out.setdefault(r["model"], {})[r["id"]] = r
    ids = {m: set(rs) for m, rs in out.items()}
    first = next(iter(ids.values()))
    for m, s in ids.items():
        if s != first:
            raise UserError(f"model {m} answered a different set of instructions than the others "
                            f"({len(s ^ first)} differ); regenerate the responses for all models together")
    return out


def assign(instruction_ids: list[str], models: list[str], raters: int, seed: int) -> list[dict]:
    """Blinded items: each instruction (with all its models' responses, in random order) goes to one
    rater; instructions are dealt round-robin after a shuffle, so rater loads differ by at most one."""
    if raters < 1:
        raise UserError(f"human.raters must be at least 1, got {raters}")
    rng = random.Random(seed)
    order = list(instruction_ids)
    rng.shuffle(order)
    items, used = [], set()
    for i, iid in enumerate(order):
        ms = list(models)
        rng.shuffle(ms)
        for m in ms:
            code = f"{rng.getrandbits(40):010x}"
            while code in used:
                code = f"{rng.getrandbits(40):010x}"
            used.add(code)
            items.append({"item_id": code, "instruction_id": iid, "rater": i % raters + 1, "model": m})
    return items


def sheets(h: HumanSpec, seed: int) -> Path:
    responses = read_responses(Path(h.responses))
    models = sorted(responses)
    any_model = responses[models[0]]
    items = assign(sorted(any_model), models, h.raters, seed)
    out = Path(h.sheets)
    out.mkdir(parents=True, exist_ok=True)
    by_rater = defaultdict(list)
    for it in items:
        by_rater[it["rater"]].append(it)
    for rater, its in sorted(by_rater.items()):
        with open_atomic(out / f"rater_{rater}.csv") as f:
            w = csv.DictWriter(f, fieldnames=SHEET_FIELDS)
            w.writeheader()
            for it in its:
                r = responses[it["model"]][it["instruction_id"]]
                w.writerow({"item_id": it["item_id"], "instruction_id": it["instruction_id"],
                            "instruction": r["instruction"], "input": r["input"], "response": r["response"],
                            "rating": "", "comment": ""})
    with open_atomic(out / "key.csv") as f:
        w = csv.DictWriter(f, fieldnames=KEY_FIELDS)
        w.writeheader()
        w.writerows(items)
    # which export each model is, so the ratings can reach its model card (human_ingest)
    write_atomic(out / EXPORTS_FILE, json.dumps(exports(responses), indent=2) + "\n")
    write_atomic(out / "GUIDE.txt", rating.RUBRIC + "\n\nFill the 'rating' column of your rater_<k>.csv with A, B, C or D.\n"
                                   "key.csv maps items to models: keep it away from the raters.\n")
    n = len(any_model)
    print(f"{n} instructions x {len(models)} models -> {len(by_rater)} rater sheets in {out} "
          f"({min(len(v) for v in by_rater.values()) // len(models)}-{max(len(v) for v in by_rater.values()) // len(models)} "
          "instructions each); key.csv is the unblinding key")
    return out


def exports(responses: dict[str, dict[str, dict]]) -> dict[str, str]:
    """model -> its export folder, for the models of ``responses`` (read_responses) that are local exports."""
    return {m: next(iter(rs.values()))["export"] for m, rs in responses.items() if next(iter(rs.values())).get("export")}


def to_cards(counts: dict[str, dict[str, int]], folders: dict[str, str], rater: str) -> None:
    """Each model's Rate-A..D shares into its export's model card (model-index), where the export is at hand."""
    from lamini_lm.evaluation import card

    for model, c in counts.items():
        folder = folders.get(model)
        if folder and Path(folder).is_dir() and card.add_ratings(Path(folder), model, c, rater):
            print(f"{model}: ratings by {rater} -> {Path(folder) / 'README.md'} (model-index)")


def read_ratings(folder: Path) -> dict[str, str]:
    """item id -> rating from every filled rater_<k>.csv; a missing or invalid rating names its cell."""
    files = sorted(folder.glob("rater_*.csv"))
    if not files:
        raise UserError(f"{folder} holds no rater_<k>.csv sheets: run mode=human_sheets first")
    ratings = {}
    for f in files:
        with open(f, newline="", encoding="utf-8") as fh:
            for lineno, row in enumerate(csv.DictReader(fh), 2):
                try:
                    value = rating.parse(row.get("rating"))
                except ValueError:
                    value = ""
                if not value:
                    raise UserError(f"{f}:{lineno}: rating {row.get('rating')!r} for item {row.get('item_id')} "
                                    "must be A, B, C or D")
                ratings[row["item_id"]] = value
    return ratings


def rated_items(sheets_dir: Path) -> list[dict]:
    """Every rated item, unblinded with key.csv: {model, instruction_id, rating}; sheets must be complete."""
    key_file = sheets_dir / "key.csv"
    if not key_file.exists():
        raise UserError(f"{key_file} does not exist: the sheets folder must hold the key written by mode=human_sheets")
    ratings = read_ratings(sheets_dir)
    with open(key_file, newline="", encoding="utf-8") as f:
        key = list(csv.DictReader(f))
    missing = [k["item_id"] for k in key if k["item_id"] not in ratings]
    if missing:
        raise UserError(f"{len(missing)} item(s) have no rating (e.g. {missing[0]}); every sheet must be complete")
    return [{"model": k["model"], "instruction_id": k["instruction_id"], "rating": ratings[k["item_id"]]} for k in key]


def count(items: list[dict]) -> dict[str, dict[str, int]]:
    """Rate-A..D counts per model."""
    counts: dict[str, dict[str, int]] = {}
    for it in items:
        counts.setdefault(it["model"], dict.fromkeys(rating.LEVELS, 0))[it["rating"]] += 1
    return counts


def write_counts(counts: dict[str, dict[str, int]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open_atomic(path) as f:
        w = csv.writer(f)
        w.writerow(["model", *(f"Rate-{r}" for r in rating.LEVELS), "n"])
        for m, c in counts.items():
            w.writerow([m, *(c[r] for r in rating.LEVELS), sum(c.values())])


def ingest(h: HumanSpec, out: Path) -> dict[str, dict[str, int]]:
    """Join the ratings with the key: Rate-A..D counts per model (CSV) and Figure 6."""
    counts = count(rated_items(Path(h.sheets)))
    write_counts(counts, out / "human_eval.csv")
    figure6(counts, out / "figure6.png")
    folders = Path(h.sheets) / EXPORTS_FILE
    to_cards(counts, json.loads(folders.read_text()) if folders.exists() else {}, "human raters")
    print(f"{out / 'human_eval.csv'}\n{out / 'figure6.png'}")
    return counts
