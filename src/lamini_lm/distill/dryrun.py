"""dry_run=true: what is still to send, its tokens (cl100k_base) and its cost, sync vs Batch API.

Instruction-generation requests are built exactly (their prompts are known before sending).
Responses depend on instructions not generated yet: once instructions.jsonl exists they are exact,
before that each subset's response prompt is estimated from Table 1's average instruction length.
Completion tokens are always estimates from Table 1's average lengths (config: dry_run_estimates).
"""

from __future__ import annotations

import json

from lamini_lm.distill import instructions as ins
from lamini_lm.files import write_atomic
from lamini_lm.subsets import GENERATED, ORIGINAL, SUBSETS
from lamini_lm.teachers import tokens as tok


def _row(name, n, prompt, completion, prices, model):
    return {
        "requests": n,
        "prompt_tokens": prompt,
        "completion_tokens_est": completion,
        "cost_sync_usd": tok.cost(prices, model, prompt, completion, batch=False),
        "cost_batch_usd": tok.cost(prices, model, prompt, completion, batch=True),
        "what": name,
    }


def plan(ctx) -> dict:
    from lamini_lm.distill.stages import response_request

    cfg = ctx.cfg
    est = cfg.dry_run_estimates
    model = ctx.teacher.model
    rows, notes = {}, []
    stage = cfg.stage
    if stage in ("all", "instructions"):
        from lamini_lm.distill import prompt_builders as pb
        from lamini_lm.distill.seed_pools import load_pool, needed_pools
        from lamini_lm.errors import UserError

        pools = {}
        for name in needed_pools(cfg.size):
            try:
                pools[name] = load_pool(name, cfg.seed_pools, int(cfg.seed))
            except UserError as e:  # a dry run still estimates what it cannot build
                notes.append(f"{name}: estimated from Table 1 ({e})")
        planner = ins.Planner(cfg, ctx.teacher, pools, ctx.topics())
        store = ctx.store("instructions")
        for s in GENERATED:
            n_req = ins.initial_requests(cfg, s)
            if not n_req:
                continue
            pool = SUBSETS[s].pool
            if pool not in pools:
                n_ex = int(cfg.instructions.n_examples)
                # examples as long as Table 1's average instruction of the original subset from the same pool
                original = next(o for o in ORIGINAL if SUBSETS[o].pool == pool)
                empty = pb.example_guided(cfg.prompts, [""] * n_ex, int(cfg.instructions.per_call[s]))
                per_prompt = tok.count_text(empty) + 7 + n_ex * float(est.instruction_tokens[original])
                pending, prompt = [None] * n_req, int(n_req * per_prompt)
            else:
                pending = store.missing([planner.request(s, i)[0] for i in range(n_req)])
                prompt = sum(tok.count_messages(r.body["messages"]) for r in pending)
            per_item = float(est.instruction_tokens[s]) + 4  # the <example></example> tags
            completion = int(len(pending) * int(cfg.instructions.per_call[s]) * per_item)
            rows[f"instructions/{s}"] = _row("round 1 of instruction generation", len(pending), prompt, completion,
                                             cfg.prices, model)
    if stage in ("all", "instructions", "responses"):
        path = ctx.out / "instructions.jsonl"
        store = ctx.store("responses")
        system = tok.count_text(cfg.prompts.system_message)
        if path.exists() and stage != "instructions":
            by_subset = {}
            for it in ins.read_instructions(path):
                by_subset.setdefault(it["subset"], []).append(it["instruction"])
            for s, texts in by_subset.items():
                pending = store.missing([response_request(ctx, t) for t in texts])
                prompt = sum(tok.count_messages(r.body["messages"]) for r in pending)
                completion = int(len(pending) * float(est.response_tokens[s]))
                rows[f"responses/{s}"] = _row("responses (exact prompts)", len(pending), prompt, completion,
                                              cfg.prices, model)
        else:
            for s, n in cfg.size.items():
                n = int(n)
                if not n:
                    continue
                prompt = int(n * (system + float(est.instruction_tokens[s]) + 9))
                completion = int(n * float(est.response_tokens[s]))
                rows[f"responses/{s}"] = _row("responses (estimated from Table 1)", n, prompt, completion,
                                              cfg.prices, model)
    total = {k: sum((r[k] or 0) for r in rows.values()) for k in ("requests", "prompt_tokens", "completion_tokens_est")}
    known = all(r["cost_sync_usd"] is not None for r in rows.values())
    total["cost_sync_usd"] = sum(r["cost_sync_usd"] for r in rows.values()) if known else None
    total["cost_batch_usd"] = sum(r["cost_batch_usd"] for r in rows.values()) if known else None
    return {"model": model, "rows": rows, "total": total, "notes": notes}


def show(result: dict) -> str:
    def money(v):
        return "n/a" if v is None else f"${v:,.2f}"

    lines = [f"dry run for {result['model']} (nothing sent; completion tokens are estimates)",
             f"{'what':44s} {'requests':>10s} {'prompt tok':>13s} {'compl. tok':>13s} {'sync':>12s} {'batch':>12s}"]
    for name, r in list(result["rows"].items()) + [("TOTAL", result["total"])]:
        lines.append(f"{name:44s} {r['requests']:>10,d} {r['prompt_tokens']:>13,d} "
                     f"{r['completion_tokens_est']:>13,d} {money(r['cost_sync_usd']):>12s} {money(r['cost_batch_usd']):>12s}")
    lines += [f"note: {n}" for n in result["notes"]]
    if result["total"]["cost_sync_usd"] is None:
        lines.append(f"no price for model '{result['model']}' in the prices config: add one to get costs")
    return "\n".join(lines)


def run(ctx) -> dict:
    result = plan(ctx)
    print(show(result))
    write_atomic(ctx.out / "dry_run.json", json.dumps(result, indent=2) + "\n")
    return result
