"""Assembly of D_ALL (generate.py stage=assemble): every instruction of the seven subsets with its response, as
training records, written as JSONL, Parquet and a `datasets` folder, and with teacher.logprobs > 0 the teacher's
top-k log-probs of each record's response tokens in the sidecar d_all.logprobs.parquet, keyed by the record's id.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter

from lamini_lm.distill import instructions as ins
from lamini_lm.distill import report
from lamini_lm.distill.stages import Context, response_request
from lamini_lm.errors import UserError
from lamini_lm.files import DiskFull, is_full, replacing, replacing_dir, write_atomic
from lamini_lm.logprobs import SIDECAR, size_estimate, write_sidecar
from lamini_lm.teachers.store import REJECTED, RequestStore

log = logging.getLogger(__name__)


def record_id(subset: str, instruction: str) -> str:
    return hashlib.sha256(f"{subset}\n{instruction}".encode("utf-8")).hexdigest()[:16]


def assemble(ctx: Context) -> list[dict]:
    """D_ALL: every instruction of the seven subsets with its response, as training records."""
    spec = ctx.spec
    items = ins.read_instructions(ctx.out / "instructions.jsonl")
    store = ctx.store("responses")
    records, drops, missing = [], Counter(), 0
    per_subset = Counter()
    for it in items:
        req = response_request(ctx.teacher, spec.prompts, it["instruction"])
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
        if reply.finish_reason == "length" and spec.responses.drop_truncated:
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
    if missing == len(items) and len(store) >= missing:  # a request id is a hash of the teacher's settings too
        raise UserError(
            f"none of the {missing} instructions has a response in {store.path}, which holds {len(store)} replies to "
            "other requests: give the teacher settings they were made with (teacher.model, params, max_tokens, "
            "logprobs), or run `python generate.py stage=responses` with these to ask for them"
        )
    if missing:
        raise UserError(
            f"{missing} of {len(items)} instructions have no response in {store.path} yet: "
            "run `python generate.py stage=responses` with the same out_dir first"
        )
    logprobs = _write_outputs(ctx, records, store)
    section = {"records": len(records), "per_subset": dict(per_subset), "dropped": dict(drops)}
    if logprobs:
        section["logprobs"] = logprobs
    report.update(ctx.out, "assembly", section)
    log.info("D_ALL: %d records in %s", len(records), ctx.out / "d_all.jsonl")
    ctx.logprobs = logprobs
    return records


def _write_outputs(ctx: Context, records: list[dict], store: RequestStore) -> dict | None:
    """D_ALL as JSONL, Parquet and a `datasets` folder, and the log-probs sidecar, each replacing its old version
    only once whole; then pushed to the Hub if asked. Returns the sidecar's summary (None: no log-probs asked)."""
    import datasets  # heavy: imported only where D_ALL is written, so generate.py starts (and fails) fast

    if not ctx.spec.progress:
        datasets.disable_progress_bars()
    out = ctx.out
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    logprobs = None
    try:
        write_atomic(out / "d_all.jsonl", text)
        logprobs = _write_sidecar(ctx, records, store)
        if not records:
            return logprobs
        ds = datasets.Dataset.from_list(records)
        with replacing(out / "d_all.parquet") as tmp:
            ds.to_parquet(str(tmp))
        with replacing_dir(out / "d_all") as tmp:
            ds.save_to_disk(str(tmp))
    except OSError as e:
        if not is_full(e):
            raise
        # the three formats are each about the JSONL's size; the sidecar about its measured bytes per token
        tokens = sum(r["meta"]["usage"].get("completion_tokens", 0) for r in records)
        sidecar = size_estimate(ctx.teacher.logprobs, tokens)["sidecar"]
        raise DiskFull(out, 3 * len(text.encode("utf-8")) + sidecar, f"every request is stored in {out / 'requests'}",
                       f"write D_ALL with `python generate.py stage=assemble out_dir={out}`") from None
    if ctx.spec.push_to_hub:
        _push(ctx, ds, logprobs)
    return logprobs


def _write_sidecar(ctx: Context, records: list[dict], store: RequestStore) -> dict | None:
    """The records' log-probs (read from the store one at a time, trimmed to the stripped response) as the
    sidecar; a record whose reply has none, or whose tokens do not spell its response, is left out and counted."""
    path = ctx.out / SIDECAR
    k = ctx.teacher.logprobs
    if not k:
        path.unlink(missing_ok=True)  # an earlier run's, for other requests: it would not match this D_ALL
        return None
    left_out: Counter = Counter()

    def items():
        for r in records:
            lp = store.logprobs(r["meta"]["response_request_id"])
            if lp is None:
                left_out["no_logprobs"] += 1
                continue
            try:
                yield r["id"], lp.trimmed(r["response"])
            except ValueError:
                left_out["tokens_differ_from_response"] += 1

    size = write_sidecar(path, items(), teacher=ctx.teacher.model)
    summary = {"file": SIDECAR, **size, "k_asked": k, "left_out": dict(left_out)}
    if left_out:
        log.warning("%s: %d of %d records have no teacher log-probs (%s); they are left out of it, counted in "
                    "report.json", SIDECAR, sum(left_out.values()), len(records),
                    ", ".join(f"{n} {why}" for why, n in left_out.items()))
    return summary


def _push(ctx: Context, ds, logprobs: dict | None) -> None:
    """D_ALL to the Hub dataset, and the sidecar into the same repo beside it."""
    repo, out = ctx.spec.push_to_hub, ctx.out
    try:
        ds.push_to_hub(repo)
        if logprobs:
            from huggingface_hub import HfApi

            HfApi().upload_file(path_or_fileobj=str(out / SIDECAR), path_in_repo=SIDECAR, repo_id=repo,
                                repo_type="dataset", commit_message=f"Upload the teacher's top-{logprobs['k']} "
                                                                    "log-probs per response token")
    except Exception as e:  # the hub is unreachable, the token missing or refused: all files are written
        first = (str(e).splitlines() or [type(e).__name__])[0][:160]
        raise UserError(
            f"push_to_hub={repo} failed ({type(e).__name__}: {first}); D_ALL is saved in {out}; check HF_TOKEN "
            f"and the network, then push with `python generate.py stage=assemble out_dir={out} push_to_hub={repo}`"
        ) from None
    log.info("D_ALL pushed to the hub dataset %s%s", repo, f" with {SIDECAR}" if logprobs else "")
