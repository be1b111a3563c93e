"""The three stages over one output folder: instructions, responses, assembly of D_ALL (distill/assembly.py).

<out_dir>/
  requests/instructions.jsonl   append-only store of instruction-generation replies (by request id)
  requests/responses.jsonl      append-only store of responses (by request id)
  instructions.jsonl            the kept instructions of all seven subsets, in order
  topics.txt                    the topic list used (topic-guided subset)
  d_all.jsonl, d_all.parquet, d_all/   D_ALL as JSONL, Parquet and a `datasets` folder (distill/assembly.py)
  d_all.logprobs.parquet        the teacher's top-k log-probs per response token (teacher.logprobs > 0)
  report.json                   counts, drops by reason, tokens, cost; failures.jsonl if any failed
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lamini_lm.distill import instructions as ins
from lamini_lm.distill import prompt_builders as pb
from lamini_lm.distill import report, topics
from lamini_lm.distill.decontam import Decontaminator
from lamini_lm.distill.prompt_builders import PromptsSpec
from lamini_lm.distill.seed_pools import load_pool, needed_pools
from lamini_lm.errors import UserError
from lamini_lm.files import write_atomic
from lamini_lm.logprobs import size_estimate
from lamini_lm.subsets import GENERATED, SUBSETS
from lamini_lm.teachers import Teacher, build
from lamini_lm.teachers.base import request_body
from lamini_lm.teachers.store import REJECTED, Reply, Request, RequestStore

if TYPE_CHECKING:
    from lamini_lm.distill.spec import GenerateSpec

log = logging.getLogger(__name__)


@dataclass
class ResponsesSpec:
    """generate.yaml `responses`."""

    # reconstruction: a response cut off at max_tokens is an unfinished answer: dropped (response_truncated)
    drop_truncated: bool = True


class Context:
    """What every stage shares: the typed config, output folder, teacher, pools, topics (loaded lazily)."""

    def __init__(self, spec: GenerateSpec):
        self.spec = spec
        self.out = Path(spec.out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self._teacher = None
        self._pools = None
        self._decon = None
        self._stores: dict[str, RequestStore] = {}
        self.logprobs: dict | None = None  # the log-probs sidecar's summary, once D_ALL is assembled with one

    @property
    def teacher(self) -> Teacher:
        if self._teacher is None:
            teacher = build(self.spec.teacher, self.spec.prices, self.spec.progress, self.out)
            for stage in ("instructions", "responses"):
                if stage not in teacher.max_tokens:
                    raise UserError(f"teacher.max_tokens.{stage} is missing: generate.py asks for at most that many "
                                    f"tokens per {stage} request")
            self._teacher = teacher
        return self._teacher

    @property
    def pools(self) -> dict:
        if self._pools is None:
            spec = self.spec
            self._pools = {n: load_pool(n, spec.seed_pools, spec.seed) for n in needed_pools(spec.size)}
        return self._pools

    @property
    def decon(self):
        if self._decon is None:
            self._decon = Decontaminator(self.spec.decontam)
        return self._decon

    def topics(self, always: bool = False) -> list[str] | None:
        """The topic list (written to topics.txt), when a topic-guided subset is wanted or `always`."""
        if not (always or any(n and SUBSETS[s].topic_guided for s, n in self.spec.size.items())):
            return None
        found = topics.load(self.spec.topics)
        write_atomic(self.out / "topics.txt", "".join(t + "\n" for t in found))
        return found

    def store(self, stage: str) -> RequestStore:
        """The stage's request store, opened once per run (close() closes them)."""
        if stage not in self._stores:
            reserve = None
            k = self.teacher.logprobs
            if stage == "responses" and k:  # room for 64 replies in flight, each of max_tokens with its log-probs
                reserve = RequestStore.RESERVE + 64 * size_estimate(k, self.teacher.max_tokens["responses"])["store"]
            self._stores[stage] = RequestStore(self.out / "requests" / f"{stage}.jsonl", reserve)
        return self._stores[stage]

    def close(self) -> None:
        """Every reply on disk, the stores closed."""
        while self._stores:
            self._stores.popitem()[1].close()

    def space_needed(self) -> int:
        """About what the rest of the run writes: the responses still to store (a line per record of D_ALL, as
        long as those so far, or 1 kB), D_ALL in three formats of about a line's text each, the log-probs in
        the store lines and the sidecar (response tokens from dry_run_estimates), and the store's reserve."""
        path = self.out / "requests" / "responses.jsonl"
        done = path.read_bytes().count(b"\n") if path.exists() else 0
        records = sum(n for _, n in self.spec.size.items())
        tokens = sum(n * self.spec.dry_run_estimates.response_tokens[s] for s, n in self.spec.size.items())
        logprobs = size_estimate(int(self.spec.teacher.get("logprobs") or 0), tokens)
        per_record = logprobs["store"] // max(records, 1)  # of a store line, the log-probs
        text = max(path.stat().st_size // done - per_record, 256) if done else 1 << 10
        return (RequestStore.RESERVE + max(0, records - done) * (text + per_record) + 3 * records * text
                + logprobs["sidecar"])

    def send(self, requests: list[Request], store: RequestStore, stage: str) -> dict:
        """Send what the store lacks; any request that finally failed stops the run (after saving), and so does
        a full disk (after storing every reply in flight)."""
        pending, total = store.missing(requests), len({r.id for r in requests})
        log.info("%s: %d requests, %d already done, %d to send", stage, total, total - len(pending), len(pending))
        try:
            store.hold_reserve()
            stats = self.teacher.run(requests, store, stage)
            store.sync()  # the stage's replies count only once they are on disk
        except UserError:
            if store.full:  # the teacher stopped because the disk did
                raise self._disk_full(requests, store) from None
            raise
        finally:
            store.release_reserve()
        if store.full:
            raise self._disk_full(requests, store)
        self._store_rejected(stats, store, stage, total)
        (self.out / "failures.jsonl").unlink(missing_ok=True)  # from an earlier run, now retried
        if stats.failures:
            write_atomic(self.out / "failures.jsonl",
                         "".join(json.dumps({"stage": stage, **fail}) + "\n" for fail in stats.failures))
            raise UserError(
                f"{len(stats.failures)} {stage} requests failed ({stats.failures[0]['error']}); every finished "
                f"one is saved in {store.path}; run the same command again to retry only the missing ones "
                f"(details: {self.out / 'failures.jsonl'})"
            )
        return stats.as_dict()

    def _disk_full(self, requests: list[Request], store: RequestStore) -> UserError:
        left = len(store.missing(requests))
        return store.disk_full(left * max(store.line_bytes, 1 << 10) + self.space_needed())

    def _store_rejected(self, stats, store: RequestStore, stage: str, total: int) -> None:
        """Requests the teacher refused as invalid are stored as such (never paid for again, counted as
        drops) unless there are more than max_rejected: then it is the config, not the requests."""
        if not stats.rejected:
            return
        limit = self.spec.max_rejected
        first = stats.rejected[0][1]
        if len(stats.rejected) > (limit if limit >= 1 else limit * total):
            raise UserError(
                f"the teacher refused {len(stats.rejected)} of {total} {stage} requests ({first}), more than "
                f"max_rejected={limit:g}; none of these was stored: check teacher.model, teacher.params "
                f"and teacher.max_tokens (or raise max_rejected), then run the same command again"
            )
        for req, why in stats.rejected:
            store.append(req, Reply("", REJECTED, {"prompt_tokens": 0, "completion_tokens": 0}, req.body["model"], why))
        log.warning("%s: the teacher refused %d requests (%s); stored as rejected, never sent again, counted in "
                    "report.json", stage, len(stats.rejected), first)


def run_instructions(ctx: Context) -> None:
    """Generated subsets in rounds until each has its size (or stops growing), then the original subsets."""
    spec = ctx.spec
    pools = ctx.pools  # every seed file is read (and checked) before anything is sent
    planner = ins.Planner(spec.instructions, spec.prompts, spec.seed, ctx.teacher, pools, ctx.topics())
    kept, drops, planned, teacher_stats = _generate(ctx, planner)
    orig_kept, orig_drops = ins.originals(spec.size, spec.seed, pools, ctx.decon)
    kept.update(orig_kept)
    drops.update(orig_drops)
    n = ins.write_instructions(ctx.out / "instructions.jsonl", kept)
    summary = {
        s: {
            "size": spec.size[s],
            "kept": len(kept[s]),
            "shortfall": max(0, spec.size[s] - len(kept[s])),
            "requests": planned.get(s),
            "dropped": dict(drops[s]),
        }
        for s in kept
    }
    report.update(ctx.out, "instructions", {"subsets": summary, "teacher_runs": teacher_stats})
    for s, v in summary.items():
        if v["shortfall"]:
            log.warning("%s: %d of %d instructions (too few usable ones; drops by reason in report.json)",
                        s, v["kept"], v["size"])
    log.info("instructions: %d kept in %s", n, ctx.out / "instructions.jsonl")


def _generate(ctx: Context, planner: ins.Planner) -> tuple[dict, dict, dict, list]:
    """The generated subsets' survivors and drops, the requests planned per subset and each round's teacher stats."""
    spec, ispec = ctx.spec, ctx.spec.instructions
    subsets = [s for s in GENERATED if spec.size[s]]
    store = ctx.store("instructions")
    planned = {s: ispec.calls(s, spec.size[s]) for s in subsets}
    teacher_stats, kept, drops = [], {s: [] for s in subsets}, {s: Counter() for s in subsets}
    active = set(subsets)
    for round_ in range(ispec.max_rounds):
        requests = [planner.request(s, i)[0] for s in subsets for i in range(planned[s])]
        if requests:
            teacher_stats.append(ctx.send(requests, store, "instructions"))
        before = {s: len(kept[s]) for s in subsets}
        kept, drops = ins.select(planner, planned, spec.size, store, ctx.decon, spec.filters, spec.dedup)
        if round_ == ispec.max_rounds - 1:
            break
        for s in list(active):
            short = spec.size[s] - len(kept[s])
            # a round that added nothing means this teacher does not follow the prompt: stop asking
            if short <= 0 or (round_ > 0 and len(kept[s]) == before[s]):
                active.discard(s)
            else:
                planned[s] += ispec.calls(s, short)
        if not active:
            break
    return kept, drops, planned, teacher_stats


def response_request(teacher: Teacher, prompts: PromptsSpec, instruction: str) -> Request:
    """A response is distilled: it asks for teacher.logprobs alternatives per token (none at 0: the same id)."""
    return Request(request_body(teacher, pb.response_messages(prompts, instruction), teacher.max_tokens["responses"],
                                logprobs=True))


def run_responses(ctx: Context) -> None:
    items = ins.read_instructions(ctx.out / "instructions.jsonl")
    store = ctx.store("responses")
    stats = ctx.send([response_request(ctx.teacher, ctx.spec.prompts, it["instruction"]) for it in items], store,
                     "responses")
    report.update(ctx.out, "responses", {"instructions": len(items), "teacher": stats})
