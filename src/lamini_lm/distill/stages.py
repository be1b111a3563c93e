"""The three stages over one output folder: instructions, responses, assembly of D_ALL.

<out_dir>/
  requests/instructions.jsonl   append-only store of instruction-generation replies (by request id)
  requests/responses.jsonl      append-only store of responses (by request id)
  instructions.jsonl            the kept instructions of all seven subsets, in order
  topics.txt                    the topic list used (topic-guided subset)
  d_all.jsonl, d_all.parquet, d_all/   D_ALL as JSONL, Parquet and a `datasets` folder
  report.json                   counts, drops by reason, tokens, cost; failures.jsonl if any failed
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections import Counter
from pathlib import Path

from lamini_lm.distill import instructions as ins
from lamini_lm.distill import prompt_builders as pb
from lamini_lm.distill import report
from lamini_lm.errors import UserError
from lamini_lm.files import replacing, write_atomic
from lamini_lm.subsets import GENERATED
from lamini_lm.teachers import Teacher, build
from lamini_lm.teachers.base import request_body
from lamini_lm.teachers.store import REJECTED, Reply, Request, RequestStore

log = logging.getLogger(__name__)


class Context:
    """What every stage shares: config, output folder, teacher, pools, topics (loaded lazily)."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.out = Path(cfg.out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self._teacher = None
        self._pools = None
        self._decon = None

    @property
    def teacher(self) -> Teacher:
        if self._teacher is None:
            teacher = build(self.cfg.teacher, self.cfg.prices, bool(self.cfg.progress), self.out)
            for stage in ("instructions", "responses"):
                if stage not in teacher.max_tokens:
                    raise UserError(f"teacher.max_tokens.{stage} is missing: generate.py asks for at most that many "
                                    f"tokens per {stage} request")
            self._teacher = teacher
        return self._teacher

    @property
    def pools(self) -> dict:
        if self._pools is None:
            from lamini_lm.distill.seed_pools import load_pool, needed_pools

            self._pools = {n: load_pool(n, self.cfg.seed_pools, int(self.cfg.seed)) for n in needed_pools(self.cfg.size)}
        return self._pools

    @property
    def decon(self):
        if self._decon is None:
            from lamini_lm.distill.decontam import Decontaminator

            self._decon = Decontaminator(self.cfg.decontam)
        return self._decon

    def topics(self, always: bool = False) -> list[str] | None:
        if not (always or int(self.cfg.size.self_instruct_with_topic)):
            return None
        from lamini_lm.distill import topics

        found = topics.load(self.cfg.topics)
        write_atomic(self.out / "topics.txt", "".join(t + "\n" for t in found))
        return found

    def store(self, stage: str) -> RequestStore:
        return RequestStore(self.out / "requests" / f"{stage}.jsonl")

    def send(self, requests: list[Request], store: RequestStore, stage: str) -> dict:
        """Send what the store lacks; any request that finally failed stops the run (after saving)."""
        pending, total = store.missing(requests), len({r.id for r in requests})
        log.info("%s: %d requests, %d already done, %d to send", stage, total, total - len(pending), len(pending))
        stats = self.teacher.run(requests, store, stage)
        self._store_rejected(stats, store, stage, total)
        (self.out / "failures.jsonl").unlink(missing_ok=True)  # from an earlier run, now retried
        if stats.failures:
            with open(self.out / "failures.jsonl", "w", encoding="utf-8") as f:
                for fail in stats.failures:
                    f.write(json.dumps({"stage": stage, **fail}) + "\n")
            raise UserError(
                f"{len(stats.failures)} {stage} requests failed ({stats.failures[0]['error']}); every finished "
                f"one is saved in {store.path}; run the same command again to retry only the missing ones "
                f"(details: {self.out / 'failures.jsonl'})"
            )
        return stats.as_dict()

    def _store_rejected(self, stats, store: RequestStore, stage: str, total: int) -> None:
        """Requests the teacher refused as invalid are stored as such (never paid for again, counted as
        drops) unless there are more than max_rejected: then it is the config, not the requests."""
        if not stats.rejected:
            return
        limit = float(self.cfg.max_rejected)
        first = stats.rejected[0][1]
        if len(stats.rejected) > (limit if limit >= 1 else limit * total):
            raise UserError(
                f"the teacher refused {len(stats.rejected)} of {total} {stage} requests ({first}), more than "
                f"max_rejected={self.cfg.max_rejected}; none of these was stored: check teacher.model, teacher.params "
                f"and teacher.max_tokens (or raise max_rejected), then run the same command again"
            )
        for req, why in stats.rejected:
            store.append(req, Reply("", REJECTED, {"prompt_tokens": 0, "completion_tokens": 0}, req.body["model"], why))
        log.warning("%s: the teacher refused %d requests (%s); stored as rejected, never sent again, counted in "
                    "report.json", stage, len(stats.rejected), first)


def run_instructions(ctx: Context) -> None:
    cfg = ctx.cfg
    subsets = [s for s in GENERATED if int(cfg.size[s])]
    pools = ctx.pools  # every seed file is read (and checked) before anything is sent
    planner = ins.Planner(cfg, ctx.teacher, pools, ctx.topics())
    store = ctx.store("instructions")
    planned = {s: ins.initial_requests(cfg, s) for s in subsets}
    teacher_stats, kept, drops = [], {s: [] for s in subsets}, {s: Counter() for s in subsets}
    active = set(subsets)
    for round_ in range(max(1, int(cfg.instructions.max_rounds))):
        requests = [planner.request(s, i)[0] for s in subsets for i in range(planned[s])]
        if requests:
            teacher_stats.append(ctx.send(requests, store, "instructions"))
        before = {s: len(kept[s]) for s in subsets}
        kept, drops = ins.select(cfg, planner, planned, store, ctx.decon)
        if round_ == int(cfg.instructions.max_rounds) - 1:
            break
        for s in list(active):
            short = int(cfg.size[s]) - len(kept[s])
            # a round that added nothing means this teacher does not follow the prompt: stop asking
            if short <= 0 or (round_ > 0 and len(kept[s]) == before[s]):
                active.discard(s)
            else:
                planned[s] += math.ceil(short * float(cfg.instructions.overgenerate) / int(cfg.instructions.per_call[s]))
        if not active:
            break
    orig_kept, orig_drops = ins.originals(cfg, pools, ctx.decon)
    kept.update(orig_kept)
    drops.update(orig_drops)
    n = ins.write_instructions(ctx.out / "instructions.jsonl", kept)
    summary = {
        s: {
            "size": int(cfg.size[s]),
            "kept": len(kept[s]),
            "shortfall": max(0, int(cfg.size[s]) - len(kept[s])),
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


def response_request(ctx: Context, instruction: str) -> Request:
    return Request(request_body(ctx.teacher, pb.response_messages(ctx.cfg.prompts, instruction),
                                ctx.teacher.max_tokens["responses"]))


def run_responses(ctx: Context) -> None:
    items = ins.read_instructions(ctx.out / "instructions.jsonl")
    store = ctx.store("responses")
    stats = ctx.send([response_request(ctx, it["instruction"]) for it in items], store, "responses")
    report.update(ctx.out, "responses", {"instructions": len(items), "teacher": stats})


def record_id(subset: str, instruction: str) -> str:
    return hashlib.sha256(f"{subset}\n{instruction}".encode("utf-8")).hexdigest()[:16]


def assemble(ctx: Context) -> list[dict]:
    """D_ALL: every instruction of the seven subsets with its response, as training records."""
    cfg = ctx.cfg
    items = ins.read_instructions(ctx.out / "instructions.jsonl")
    store = ctx.store("responses")
    records, drops, missing = [], Counter(), 0
    per_subset = Counter()
    for it in items:
        req = response_request(ctx, it["instruction"])
        reply = store.get(req.id)
        if reply is None:
            missing += 1
            continue
        if reply.finish_reason == REJECTED:
            drops["response_rejected"] += 1
            continue
        response = reply.content.strip()
        if not response:
            drops["empty_response"] += 1
            continue
        if reply.finish_reason == "length" and cfg.responses.drop_truncated:
            drops["response_truncated"] += 1
            continue
        per_subset[it["subset"]] += 1
        records.append(
            {
                "instruction": it["instruction"],
                "response": response,
                "instruction_source": it["subset"],
                "id": record_id(it["subset"], it["instruction"]),
                "meta": {
                    "seed_example_ids": it["seed_ids"],
                    "topics": it["topics"],
                    "teacher_model": reply.model,
                    "instruction_teacher_model": it["teacher_model"],
                    "usage": reply.usage,
                    "instruction_request_id": it["instruction_request_id"],
                    "response_request_id": req.id,
                },
            }
        )
    if missing:
        raise UserError(
            f"{missing} of {len(items)} instructions have no response in {store.path} yet: "
            "run `python generate.py stage=responses` with the same out_dir first"
        )
    _write_outputs(ctx, records)
    report.update(ctx.out, "assembly", {"records": len(records), "per_subset": dict(per_subset), "dropped": dict(drops)})
    log.info("D_ALL: %d records in %s", len(records), ctx.out / "d_all.jsonl")
    return records


def _write_outputs(ctx: Context, records: list[dict]) -> None:
    import shutil

    import datasets

    if not ctx.cfg.progress:
        datasets.disable_progress_bars()
    out = ctx.out
    write_atomic(out / "d_all.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    if not records:
        return
    ds = datasets.Dataset.from_list(records)
    with replacing(out / "d_all.parquet") as tmp:
        ds.to_parquet(str(tmp))
    staging = out / "d_all.partial"
    shutil.rmtree(staging, ignore_errors=True)
    ds.save_to_disk(str(staging))
    shutil.rmtree(out / "d_all", ignore_errors=True)
    staging.rename(out / "d_all")
    if ctx.cfg.push_to_hub:
        repo = str(ctx.cfg.push_to_hub)
        try:
            ds.push_to_hub(repo)
        except Exception as e:  # the hub is unreachable, the token missing or refused: all files are written
            first = (str(e).splitlines() or [type(e).__name__])[0][:160]
            raise UserError(
                f"push_to_hub={repo} failed ({type(e).__name__}: {first}); D_ALL is saved in {out}; check HF_TOKEN "
                f"and the network, then push with `python generate.py stage=assemble out_dir={out} push_to_hub={repo}`"
            ) from None
        log.info("D_ALL pushed to the hub dataset %s", repo)
