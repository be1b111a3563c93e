"""An LLM judge for the user-oriented evaluation: Table 7's rubric sent through generate.py's teachers.

    python evaluate.py mode=human_judge human.responses=<run>/responses [teacher.model=gpt-4o]

Every (model, instruction) response is rated A-D on its own: the judge sees neither the model's name
nor the other models' responses. Replies are stored like generate.py's (judge.out_dir/requests.jsonl,
one id per request content), so a rerun sends only what is missing; a response whose request the judge
refuses as invalid (e.g. a content filter) is left unrated and not stored, so a rerun asks again.
Writes judge_ratings.csv, judge_eval.csv (Rate-A..D per model, the human_eval.csv format) and
figure6_judge.png; when human.sheets holds complete human ratings, also agreement.json and
agreement_confusion.csv.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import re
from pathlib import Path

from lamini_lm import rating
from lamini_lm.errors import UserError
from lamini_lm.evaluation import human
from lamini_lm.evaluation.figures import figure6
from lamini_lm.evaluation.spec import HumanSpec, JudgeSpec
from lamini_lm.files import open_atomic, write_atomic
from lamini_lm.run_lock import RunLock
from lamini_lm.teachers import Teacher, build
from lamini_lm.teachers.base import request_body
from lamini_lm.teachers.store import Request, RequestStore

# scikit-learn is imported by the agreement step only (it costs a second and is needed only with ratings)

log = logging.getLogger(__name__)

_LEVEL = f"([{''.join(rating.LEVELS)}])"
_RATING = re.compile(r"rating\s*[:=]?\s*(?:rate-)?\**" + _LEVEL + r"\b", re.IGNORECASE)
_BARE = re.compile(r"^\W*(?:rate-)?" + _LEVEL + r"\W*$", re.IGNORECASE)


def parse_rating(reply: str) -> str | None:
    """'Rating: B' (or a reply that is only the letter, 'Rate-B', '**B**') -> 'B'; anything else -> None."""
    m = _RATING.search(reply) or _BARE.match(reply.strip())
    return m.group(1).upper() if m else None


def out_dir(j: JudgeSpec, h: HumanSpec) -> Path:
    return Path(j.out_dir) if j.out_dir else Path(h.responses).parent / "judge"


def requests(j: JudgeSpec, teacher: Teacher, responses: dict[str, dict[str, dict]]) -> list[tuple[str, str, Request]]:
    """(model, instruction id, Request) for every response; the request holds no model name."""
    template = j.template
    out = []
    for model in sorted(responses):
        for iid, r in sorted(responses[model].items()):
            prompt = template.format(rubric=rating.RUBRIC, instruction=r["instruction"],
                                     input=r.get("input") or "(none)", response=r["response"])
            body = request_body(teacher, [{"role": "user", "content": prompt}], j.max_tokens, j.params)
            out.append((model, iid, Request(body)))
    return out


def judge(j: JudgeSpec, h: HumanSpec, teacher_cfg, prices) -> dict[str, dict[str, int]]:
    """Rate every response of ``h.responses`` with the teacher that ``teacher_cfg`` names (generate.py's teacher
    group), and compare with the human ratings in ``h.sheets`` when they are complete."""
    out = out_dir(j, h)
    with RunLock(out, "judge.out_dir"):  # two judges on one store would pay for every request twice
        return _judge(j, h, build(teacher_cfg, prices, j.progress, out), out)


def _judge(j: JudgeSpec, h: HumanSpec, teacher: Teacher, out: Path) -> dict[str, dict[str, int]]:
    teacher.check()  # e.g. a missing API key, before any work
    responses = human.read_responses(Path(h.responses))
    todo = requests(j, teacher, responses)
    store = RequestStore(out / "requests.jsonl")
    try:
        store.hold_reserve()  # room for the replies in flight when the disk fills
        stats = teacher.run([req for _, _, req in todo], store, "judge")
    except UserError:
        if not store.full:
            raise
    finally:
        store.close()  # every reply on disk before any counts
    if store.full:  # the teacher stopped because the disk did
        left = len(store.missing([req for _, _, req in todo]))
        raise store.disk_full(left * max(store.line_bytes, 1 << 10) + store.RESERVE)
    if stats.failures:
        raise UserError(f"{len(stats.failures)} judge requests failed ({stats.failures[0]['error']}); every finished one "
                        f"is saved in {store.path}; run the same command again to send only the missing ones")
    # refused as invalid (e.g. a content filter): left unrated, not stored, so a rerun asks again
    refused = {req.id: why for req, why in stats.rejected}
    if refused:
        log.warning("the judge refused %d requests (%s); they are left unrated", len(refused), next(iter(refused.values())))
    rows = []
    for model, iid, req in todo:
        reply = store.get(req.id).content if req.id in store else f"(refused: {refused[req.id]})"
        rows.append({"model": model, "instruction_id": iid, "rating": parse_rating(reply) or "", "reply": reply})
    with open_atomic(out / "judge_ratings.csv") as f:
        w = csv.DictWriter(f, fieldnames=("model", "instruction_id", "rating", "reply"))
        w.writeheader()
        w.writerows(rows)
    rated = [r for r in rows if r["rating"]]
    if len(rated) < len(rows):
        log.warning("%d of %d judge replies hold no A-D rating (judge_ratings.csv, empty 'rating'); they are left "
                    "out of the counts", len(rows) - len(rated), len(rows))
    counts = human.count(rated)
    human.write_counts(counts, out / "judge_eval.csv")
    figure6(counts, out / "figure6_judge.png", rater=f"LLM judge ({teacher.model})")
    human.to_cards(counts, human.exports(responses), f"LLM judge {teacher.model}")
    print(f"{len(rated)} of {len(rows)} responses rated by {teacher.model} -> {out / 'judge_eval.csv'}, "
          f"{out / 'figure6_judge.png'}")
    sheets = Path(h.sheets)
    if (sheets / "key.csv").exists():
        try:
            agreement(human.rated_items(sheets), rated, out)
        except UserError as e:
            log.warning("no agreement with the human ratings: %s", e)
    return counts


def agreement(people: list[dict], judged: list[dict], out: Path) -> dict:
    """Judge vs human ratings of the same (model, instruction): exact agreement, Cohen's kappa (plain and
    linearly weighted, A > B > C > D), per-model counts side by side and the confusion matrix."""
    from sklearn.metrics import confusion_matrix

    by_judge = {(r["model"], r["instruction_id"]): r["rating"] for r in judged}
    pairs = [(p["rating"], by_judge[(p["model"], p["instruction_id"])]) for p in people
             if (p["model"], p["instruction_id"]) in by_judge]
    if not pairs:
        raise UserError("the human sheets and the judged responses share no (model, instruction)")
    h, j = [a for a, _ in pairs], [b for _, b in pairs]
    labels = list(rating.LEVELS)
    result = {
        "n": len(pairs),
        "exact_agreement": sum(a == b for a, b in pairs) / len(pairs),
        "cohen_kappa": _kappa(h, j, labels, None),
        "cohen_kappa_linear": _kappa(h, j, labels, "linear"),
        "per_model": {m: {"human": c, "judge": human.count([r for r in judged if r["model"] == m]).get(m, {})}
                      for m, c in human.count(people).items()},
    }
    write_atomic(out / "agreement.json", json.dumps(result, indent=2) + "\n")
    with open_atomic(out / "agreement_confusion.csv") as f:
        w = csv.writer(f)
        w.writerow(["human \\ judge", *labels])
        for rate, row in zip(labels, confusion_matrix(h, j, labels=labels).tolist()):
            w.writerow([rate, *row])
    print(f"agreement with the human ratings on {result['n']} responses: {100 * result['exact_agreement']:.1f}% exact, "
          f"Cohen's kappa {result['cohen_kappa']} (linear {result['cohen_kappa_linear']}) -> {out / 'agreement.json'}")
    return result


def _kappa(h: list[str], j: list[str], labels: list[str], weights) -> float | None:
    """Cohen's kappa rounded to 3 places; None when undefined (both sides gave one and the same rating)."""
    from sklearn.metrics import cohen_kappa_score

    k = float(cohen_kappa_score(h, j, labels=labels, weights=weights))
    return None if math.isnan(k) else round(k, 3)
