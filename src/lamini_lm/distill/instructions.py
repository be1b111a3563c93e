"""stage=instructions: example- and topic-guided generation (Section 3.1) and the original subsets.

Determinism across kill and resume: request i of a subset samples its examples and topics from
random.Random(f"{seed}:{subset}:{i}"), never from a global RNG consumed in completion order; the
number of requests grows in rounds planned only from what is already stored; survivors are taken in
(subset, request index, item) order. So the same stored replies always give the same instructions.
"""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from lamini_lm.config import BadValue
from lamini_lm.distill import prompt_builders as pb
from lamini_lm.distill.dedup import Deduper, DedupSpec, normalise
from lamini_lm.distill.filters import Filters
from lamini_lm.distill.parsing import parse_examples
from lamini_lm.distill.prompt_builders import PromptsSpec
from lamini_lm.errors import UserError
from lamini_lm.files import write_atomic
from lamini_lm.jsonl import iter_jsonl
from lamini_lm.subsets import GENERATED, ORIGINAL, SUBSETS, per_subset
from lamini_lm.teachers.base import Teacher, request_body
from lamini_lm.teachers.store import REJECTED, Request


# instructions asked for per request, per generated subset (Section 3.1: 20 for self-instruct, 10 for P3/FLAN)
PerCall = per_subset("PerCall", GENERATED, int, check=lambda n: None if n >= 1 else "must be at least 1")


@dataclass
class InstructionsSpec:
    """How instructions are asked for (generate.yaml `instructions`)."""

    per_call: PerCall
    n_examples: int = 3  # Figure 2: three random examples per request
    n_topics: int = 3  # Appendix A: three random topics per topic-guided request
    # reconstruction: requests for size * overgenerate candidates, then rounds planned from what survived
    overgenerate: float = 1.5
    max_rounds: int = 4

    def __post_init__(self):
        for key in ("n_examples", "n_topics", "max_rounds"):
            if getattr(self, key) < 1:
                raise BadValue(key, f"{getattr(self, key)} must be at least 1")
        if self.overgenerate < 1:
            raise BadValue("overgenerate", f"{self.overgenerate} must be at least 1 (candidates per instruction)")

    def calls(self, subset: str, wanted: int) -> int:
        """Requests that ask for `wanted` instructions of `subset`, overgenerated."""
        return math.ceil(wanted * self.overgenerate / self.per_call[subset])


class Planner:
    """Builds request i of a generated subset from the seed pools and the topic list."""

    def __init__(self, spec: InstructionsSpec, prompts: PromptsSpec, seed: int, teacher: Teacher, pools: dict,
                 topics: list[str] | None):
        self.spec = spec
        self.prompts = prompts
        self.seed = seed
        self.teacher = teacher
        self.pools = pools
        self.topics = topics
        n = spec.n_examples
        self.groups = {}  # P3 and FLAN examples come from one sub-task: the pools' tasks of at least n examples
        for name in ("p3", "flan"):
            if name in pools:
                g = {t: items for t, items in pools[name].by_task().items() if len(items) >= n}
                # a pool with no sub-task of n examples samples from the whole pool instead
                self.groups[name] = g or {name: pools[name].items}

    def request(self, subset: str, index: int) -> tuple[Request, dict]:
        rng = random.Random(f"{self.seed}:{subset}:{index}")
        n_ex, per_call = self.spec.n_examples, self.spec.per_call[subset]
        pool = SUBSETS[subset].pool
        if pool in self.groups:
            groups = self.groups[pool]
            task = rng.choice(sorted(groups))
            examples = rng.sample(groups[task], min(n_ex, len(groups[task])))
        else:
            items = self.pools[pool].items
            examples = rng.sample(items, min(n_ex, len(items)))
        texts = [e["instruction"] for e in examples]
        topics = []
        if SUBSETS[subset].topic_guided:
            topics = rng.sample(self.topics, min(self.spec.n_topics, len(self.topics)))
            prompt = pb.topic_guided(self.prompts, texts, topics, per_call)
        else:
            prompt = pb.example_guided(self.prompts, texts, per_call)
        messages = pb.instruction_messages(prompt)
        req = Request(request_body(self.teacher, messages, self.teacher.max_tokens["instructions"]))
        return req, {"seed_ids": [e["id"] for e in examples], "examples": texts, "topics": topics}


def select(planner: Planner, planned: dict, sizes, store, decon, filters: dict, dedup: DedupSpec) -> tuple[dict, dict]:
    """Survivors per generated subset (at most its size) and the drop counts by reason, replaying every stored reply
    of the `planned` requests through the `filters`, copies of the examples, `decon` and `dedup`, in order."""
    screen = Filters(filters)
    deduper = Deduper(dedup)
    kept: dict[str, list] = {s: [] for s in planned}
    drops: dict[str, Counter] = {s: Counter() for s in planned}
    for s in GENERATED:
        if s not in planned:
            continue
        size = sizes[s]
        for i in range(planned[s]):
            req, meta = planner.request(s, i)
            reply = store.get(req.id)
            if reply is None:
                drops[s]["request_unfinished"] += 1
                continue
            if reply.finish_reason == REJECTED:
                drops[s]["request_rejected"] += 1
                continue
            items, truncated = parse_examples(reply.content, reply.finish_reason)
            if truncated:
                drops[s]["truncated"] += truncated
            if not items and not truncated:
                drops[s]["reply_without_examples"] += 1
            echoes = {normalise(e) for e in meta["examples"]}
            for text in items:
                if len(kept[s]) >= size:
                    drops[s]["surplus"] += 1
                    continue
                reason = screen.reason(text)
                if reason is None and normalise(text) in echoes:
                    reason = "copies_example"
                if reason is None and decon.contaminated(text):
                    reason = "contaminated"
                if reason is None:
                    reason = deduper.check(text)
                if reason:
                    drops[s][reason] += 1
                    continue
                kept[s].append(
                    {
                        "subset": s,
                        "instruction": text,
                        "seed_ids": meta["seed_ids"],
                        "topics": meta["topics"],
                        "instruction_request_id": req.id,
                        "teacher_model": reply.model,
                    }
                )
    return kept, drops


def originals(sizes, seed: int, pools: dict, decon) -> tuple[dict, dict]:
    """The original subsets (X_A, X_P3, X_FLAN): a seeded random sample of each pool."""
    kept, drops = {}, {}
    for s in ORIGINAL:
        size = sizes[s]
        if not size:
            continue
        pool = pools[SUBSETS[s].pool]
        order = list(range(len(pool.items)))
        random.Random(f"{seed}:{s}").shuffle(order)
        seen: set[str] = set()
        kept[s], drops[s] = [], Counter(pool.skipped)
        for j in order:
            if len(kept[s]) >= size:
                break
            item = pool.items[j]
            key = normalise(item["instruction"])
            if key in seen:
                drops[s]["duplicate"] += 1
                continue
            seen.add(key)
            if decon.contaminated(item["instruction"]):
                drops[s]["contaminated"] += 1
                continue
            kept[s].append(
                {
                    "subset": s,
                    "instruction": item["instruction"],
                    "seed_ids": [item["id"]],
                    "topics": [],
                    "instruction_request_id": None,
                    "teacher_model": None,
                }
            )
    return kept, drops


def write_instructions(path: Path, kept: dict) -> int:
    lines = [json.dumps(it, ensure_ascii=False) for s in SUBSETS for it in kept.get(s, [])]
    write_atomic(path, "".join(line + "\n" for line in lines))
    return len(lines)


def read_instructions(path: Path) -> list[dict]:
    if not path.exists():
        raise UserError(f"{path} does not exist: run `python generate.py stage=instructions` with the same out_dir first")
    try:
        return [item for _, item in iter_jsonl(path)]
    except UserError as e:  # a broken line names the file and line
        raise UserError(f"{e}; rerun stage=instructions to rebuild it") from None
