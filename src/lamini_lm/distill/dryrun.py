"""dry_run=true: what is still to send, its tokens (cl100k_base) and its cost, sync vs Batch API.

Instruction-generation requests are built exactly (their prompts are known before sending).
Responses depend on instructions not generated yet: once instructions.jsonl exists they are exact,
before that each subset's response prompt is estimated from Table 1's average instruction length.
Completion tokens are always estimates from Table 1's average lengths (config: dry_run_estimates).
With teacher.logprobs=k the response rows' completion tokens also give the size of their top-k log-probs, in
the request store and in D_ALL's sidecar; they cost no tokens (the API does not charge for logprobs).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from lamini_lm.distill import instructions as ins
from lamini_lm.distill import prompt_builders as pb
from lamini_lm.distill.seed_pools import load_pool, needed_pools
from lamini_lm.distill.stages import Context, response_request
from lamini_lm.errors import UserError
from lamini_lm.files import write_atomic
from lamini_lm.logprobs import SIDECAR, size_estimate
from lamini_lm.subsets import GENERATED, ORIGINAL, SUBSETS, per_subset
from lamini_lm.teachers import tokens as tok

# Table 1's average lengths in tokens, per subset
TokensPerSubset = per_subset("TokensPerSubset", SUBSETS, float, check=lambda v: "is negative" if v < 0 else None)


@dataclass
class DryRunEstimates:
    """generate.yaml `dry_run_estimates`: what a dry run assumes of texts not generated yet."""

    instruction_tokens: TokensPerSubset
    response_tokens: TokensPerSubset


def _row(what: str, n: int, prompt: int, completion: int, prices: dict, model: str) -> dict:
    return {
        "requests": n,
        "prompt_tokens": prompt,
        "completion_tokens_est": completion,
        "cost_sync_usd": tok.cost(prices, model, prompt, completion, batch=False),
        "cost_batch_usd": tok.cost(prices, model, prompt, completion, batch=True),
        "what": what,
    }


def plan(ctx: Context) -> dict:
    """Requests, tokens and cost of what the stage (`ctx.spec.stage`) would still send."""
    spec, model = ctx.spec, ctx.teacher.model
    rows, notes = {}, []
    if spec.stage in ("all", "instructions"):
        rows.update(_instruction_rows(ctx, notes))
    if spec.stage in ("all", "instructions", "responses"):
        rows.update(_response_rows(ctx))
    rows = {name: _row(*r, spec.prices, model) for name, r in rows.items()}
    total = {k: sum((r[k] or 0) for r in rows.values()) for k in ("requests", "prompt_tokens", "completion_tokens_est")}
    known = all(r["cost_sync_usd"] is not None for r in rows.values())
    total["cost_sync_usd"] = sum(r["cost_sync_usd"] for r in rows.values()) if known else None
    total["cost_batch_usd"] = sum(r["cost_batch_usd"] for r in rows.values()) if known else None
    result = {"model": model, "rows": rows, "total": total, "notes": notes}
    k = ctx.teacher.logprobs
    if k:
        tokens = sum(r["completion_tokens_est"] for name, r in rows.items() if name.startswith("responses/"))
        size = size_estimate(k, tokens)
        result["logprobs"] = {"k": k, "response_tokens_est": tokens, "store_bytes_est": size["store"],
                              "sidecar_bytes_est": size["sidecar"]}
    return result


def _instruction_rows(ctx: Context, notes: list[str]) -> dict[str, tuple]:
    """Round 1 of instruction generation per subset: exact prompts when its seed pool loads."""
    spec = ctx.spec
    ispec, est = spec.instructions, spec.dry_run_estimates.instruction_tokens
    pools = {}
    for name in needed_pools(spec.size):
        try:
            pools[name] = load_pool(name, spec.seed_pools, spec.seed)
        except UserError as e:  # a dry run still estimates what it cannot build
            notes.append(f"{name}: estimated from Table 1 ({e})")
    planner = ins.Planner(ispec, spec.prompts, spec.seed, ctx.teacher, pools, ctx.topics())
    store = ctx.store("instructions")
    rows = {}
    for s in GENERATED:
        n_req = ispec.calls(s, spec.size[s])
        if not n_req:
            continue
        pool = SUBSETS[s].pool
        if pool not in pools:
            n_ex = ispec.n_examples
            # examples as long as the average instruction of the original subset of the same pool
            like = next((o for o in ORIGINAL if SUBSETS[o].pool == pool), s)
            empty = pb.example_guided(spec.prompts, [""] * n_ex, ispec.per_call[s])
            per_prompt = tok.count_text(empty) + 7 + n_ex * est[like]
            pending, prompt = [None] * n_req, int(n_req * per_prompt)
        else:
            pending = store.missing([planner.request(s, i)[0] for i in range(n_req)])
            prompt = sum(tok.count_messages(r.body["messages"]) for r in pending)
        per_item = est[s] + 4  # the <example></example> tags
        completion = int(len(pending) * ispec.per_call[s] * per_item)
        rows[f"instructions/{s}"] = ("round 1 of instruction generation", len(pending), prompt, completion)
    return rows


def _response_rows(ctx: Context) -> dict[str, tuple]:
    """Responses per subset: exact prompts once instructions.jsonl exists, else estimated from the sizes."""
    spec = ctx.spec
    est = spec.dry_run_estimates
    path = ctx.out / "instructions.jsonl"
    rows = {}
    if path.exists() and spec.stage != "instructions":
        store = ctx.store("responses")
        by_subset = {}
        for it in ins.read_instructions(path):
            by_subset.setdefault(it["subset"], []).append(it["instruction"])
        for s, texts in by_subset.items():
            pending = store.missing([response_request(ctx.teacher, spec.prompts, t) for t in texts])
            prompt = sum(tok.count_messages(r.body["messages"]) for r in pending)
            completion = int(len(pending) * est.response_tokens[s])
            rows[f"responses/{s}"] = ("responses (exact prompts)", len(pending), prompt, completion)
        return rows
    system = tok.count_text(spec.prompts.system_message)
    for s, n in spec.size.items():
        if n:
            prompt = int(n * (system + est.instruction_tokens[s] + 9))
            completion = int(n * est.response_tokens[s])
            rows[f"responses/{s}"] = ("responses (estimated from Table 1)", n, prompt, completion)
    return rows


def show(result: dict) -> str:
    def money(v):
        return "n/a" if v is None else f"${v:,.2f}"

    lines = [f"dry run for {result['model']} (nothing sent; completion tokens are estimates)",
             f"{'what':44s} {'requests':>10s} {'prompt tok':>13s} {'compl. tok':>13s} {'sync':>12s} {'batch':>12s}"]
    for name, r in list(result["rows"].items()) + [("TOTAL", result["total"])]:
        lines.append(f"{name:44s} {r['requests']:>10,d} {r['prompt_tokens']:>13,d} "
                     f"{r['completion_tokens_est']:>13,d} {money(r['cost_sync_usd']):>12s} {money(r['cost_batch_usd']):>12s}")
    lp = result.get("logprobs")
    if lp:
        lines.append(f"teacher.logprobs={lp['k']}: the top {lp['k']} alternatives of ~{lp['response_tokens_est']:,} "
                     f"response tokens, ~{_size(lp['store_bytes_est'])} in requests/responses.jsonl and "
                     f"~{_size(lp['sidecar_bytes_est'])} in {SIDECAR}; no extra cost (the API charges no tokens "
                     "for logprobs)")
    lines += [f"note: {n}" for n in result["notes"]]
    if result["total"]["cost_sync_usd"] is None:
        lines.append(f"no price for model '{result['model']}' in the prices config: add one to get costs")
    return "\n".join(lines)


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:,.1f} GB"


def run(ctx: Context) -> dict:
    result = plan(ctx)
    print(show(result))
    write_atomic(ctx.out / "dry_run.json", json.dumps(result, indent=2) + "\n")
    return result
