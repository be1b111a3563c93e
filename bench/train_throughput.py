"""Benchmark: our training path against the Stanford Alpaca recipe and TRL's SFTTrainer, in one run.

    python -m bench.train_throughput            # gpt2 (124M) and t5-small (61M), random init (from the repository root)
    python -m bench.train_throughput --quick    # smoke run: tiny plans, 2 micro-batches of 2 short examples

Every recipe trains the same randomly initialised model (the herd configs conf/model/gpt2.yaml and t5_small.yaml,
init=random) with the real GPT-2 / T5 tokenizers, on one pool of token ids (tokenised once by
lamini_lm.data.tokenization.Tokenize: Alpaca-wrapped prompt masked from the loss for decoder-only, instruction in /
response as labels for T5), micro-batches of m examples:

- "alpaca": transformers.Trainer, random micro-batches padded to their longest (DataCollatorForSeq2Seq, labels
  padded with -100): Stanford Alpaca's train.py.
- "trl_grouped": TRL's SFTTrainer, train_sampling_strategy="group_by_length" (mega-batches of 50 x m x k sorted by
  length), padded; "trl_padding_free": SFTTrainer with padding_free=True, random micro-batches flattened into one
  row with restarting position ids (transformers' sdpa masks the examples apart). Both with the completion-only
  loss (the prompt is -100 in the labels), no packing across examples and gradient_checkpointing=False, TRL's
  fastest; "trl_grouped_ckpt": trl_grouped with TRL 1.16's default gradient_checkpointing=True (less memory,
  slower). TRL trains no encoder-decoder models.
- "ours" at each global batch: the first global batch of our GlobalBatchSampler as training cuts it (packed: into
  micro-batches of even tokens; padded: sorted by length, m examples each), collated by our Collate as data.packing says
  (padding_free: one row per micro-batch, T5 one row of inputs and one of labels, sdpa_varlen), the family's
  LightningModule under conf/trainer/cpu.yaml, with train.yaml's fast_gelu (gelu_new as torch's one-kernel tanh GELU)
  and cpu_memory_cache (freed memory kept in the process); "ours_gelu_new": the same at the small global batch with
  fast_gelu=false; "ours_glibc": with cpu_memory_cache=false (--same-heap gives the HF and TRL runs that setting too);
  "ours_count_cut": packed rows of the sorted global batch cut m examples each, as before the token cut; "ours_padded":
  data.packing=padded; "ours_no_dropout": every dropout off (attention's too), not a recipe to train with but the
  ceiling a free dropout would give: on a CPU torch draws dropout masks serially, and attention dropout keeps SDPA
  on its math kernel (its flash kernel takes no dropout there).
- --compile adds "ours_compiled" (compile=true: each block compiled, dynamic shapes) and "trl_grouped_compiled"
  (trl_grouped with TrainingArguments' torch_compile=True, the whole model compiled with torch's defaults): TRL's
  fastest mode when compiling is allowed. The untimed warm-up step pays the compilation of both.

Timing a whole global batch of 1024 would take ~15 min per recipe here, so each recipe trains one optimizer step of
--micro-batches micro-batches spread evenly over its own plan (a sorted plan's short, middle and long micro-batches
alike), after one untimed warm-up step (m examples of the same length distribution: it pays the first-call costs, the
heap's growth to a micro-batch's working set among them); the padding of each whole plan is also computed from the
lengths alone. The plans of alpaca and trl_padding_free do not depend on the global batch; trl_grouped's mega-batch does
(its timed micro-batches come from the smallest global batch's plan).

Data: LaMini-shaped records (bench/lamini_shaped.py): lengths drawn like the paper's Table 1 (D_ALL means 50.6 /
32.9 tokens), clipped so that instruction + response <= 480 words (wrapped GPT-2 sequences <= ~512 tokens). The recipes
and their plans are in bench/train_recipes.py; this module runs them, each in a process of its own, and reports.

Every run (a recipe in a round) is a fresh process: a process-wide setting of one recipe (cpu_memory_cache, TRL's
torch_compile) or the heap its warm-up left never reaches another.

On a shared machine the wall-clock numbers move with the other jobs' load (the "cores" and "matmul" columns show
it); the padding shares are exact and do not. --rounds N runs the recipes N times, interleaved, and reports each
recipe's median and the ratios round by round, so that a slow minute of the machine does not decide a ratio.
"""

from __future__ import annotations

import argparse
import functools
import os
import subprocess
import tempfile
import time
import warnings

import numpy as np

from bench.lamini_shaped import MAX_WORDS, SHAPES, compose, examples, shape_model, word_pool
from bench.train_recipes import (Meter, grouped_plan, no_dropout, ours_plan, plan_padding, random_plan, run_hf,
                                 run_ours, spaced)
from lamini_lm.training.flops import matmul_roof


def load_average() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def recipes(pool, lengths, family, packed, args) -> list[tuple]:
    """(recipe, its global batch or None, its plan of micro-batches) for every recipe this shape runs; ``packed``:
    ours packs its micro-batches (data.packing)."""
    m, small, seed = args.micro_batch, min(args.global_batches), args.seed
    ours = functools.partial(ours_plan, pool, m, seed=seed, family=family, packed=packed)
    runs = [("alpaca", None, random_plan(len(pool), m, seed))]
    if not family.separate_labels:  # TRL trains decoder-only models only
        runs += [("trl_grouped", small, grouped_plan(lengths, m, small // m, seed)),
                 ("trl_grouped_ckpt", small, grouped_plan(lengths, m, small // m, seed)),
                 ("trl_padding_free", None, random_plan(len(pool), m, seed))]
    runs += [("ours", g, ours(g)[0]) for g in args.global_batches]
    # data.packing=padded: the alternative, sorted micro-batches padded to their longest
    runs.append(("ours_padded", small, ours_plan(pool, m, small, seed, family, packed=False)[0]))
    if packed:  # packed rows cut like padded ones (sorted, m examples each): what the token cut brings
        runs.append(("ours_count_cut", small, ours_plan(pool, m, small, seed, family, packed=False)[0]))
    if not family.separate_labels:  # fast_gelu=false: what the one-kernel GELU brings (t5-small's ReLU has none)
        runs.append(("ours_gelu_new", small, ours(small)[0]))
    # cpu_memory_cache=false: glibc's malloc as it comes, what keeping freed memory brings
    runs.append(("ours_glibc", small, ours(small)[0]))
    runs.append(("ours_no_dropout", small, ours(small)[0]))  # a ceiling: what dropout costs on this CPU
    if args.compile:  # compile=true: the warm-up step pays the compilation
        runs.append(("ours_compiled", small, ours(small)[0]))
        if not family.separate_labels:  # TRL compiled as well: its torch_compile argument
            runs.append(("trl_grouped_compiled", small, grouped_plan(lengths, m, small // m, seed)))
    return [r for r in runs if r[0] in args.recipes] if args.recipes else runs


def whole_plan_padding(recipe, g, plan, packed, pool, lengths, family, args) -> dict:
    """Padding over the recipe's whole plan at each global batch it has, from the lengths: exact, unlike a sample
    of micro-batches."""
    m, seed, enc_dec = args.micro_batch, args.seed, family.separate_labels
    if recipe.startswith("ours"):  # packed: a row over the family's pack_limit is padded
        cut_by_tokens = packed and recipe != "ours_count_cut"
        steps = ours_plan(pool, m, g, seed, family, cut_by_tokens)
        return {g: plan_padding(pool, [b for step in steps for b in step], enc_dec, packed, family.pack_limit)}
    if packed:  # TRL padding_free: one row, no padding
        return {gb: 0.0 for gb in args.global_batches}
    if recipe.startswith("trl_grouped"):
        return {gb: plan_padding(pool, grouped_plan(lengths, m, gb // m, seed), enc_dec) for gb in args.global_batches}
    return {gb: plan_padding(pool, plan, enc_dec) for gb in args.global_batches}


def bench_shape(shape: str, args, words) -> list[dict]:
    """Every recipe of ``shape``, each run in a process of its own (run_recipe): a process-wide setting of one recipe
    (ours' cpu_memory_cache, TRL's torch_compile) or what its warm-up left in the heap never reaches another."""
    from concurrent.futures import ProcessPoolExecutor
    import multiprocessing

    cfg, family, tokenizer = shape_model(shape)
    pool, warm = examples(cfg, family, tokenizer, args, words)
    enc_dec = family.separate_labels
    src, tgt = np.array(pool["source_length"]), np.array(pool["target_length"])
    side = "input" if enc_dec else "sequence"
    print(f"\n[{shape}] pool of {len(pool)} examples: {side} tokens mean {src.mean():.1f} max {src.max()}, "
          f"{'label' if enc_dec else 'target'} tokens mean {tgt.mean():.1f} max {tgt.max()}", flush=True)

    lengths = src + tgt if enc_dec else src
    ours_packs = cfg.data.packing == "padding_free" and family.can_pack
    rows = []
    # rounds interleave the recipes (a, b, c, a, b, c, ...), so a slow minute of the machine falls on every recipe
    runs = ((r, x) for r in range(args.rounds) for x in recipes(pool, lengths, family, ours_packs, args))
    for rnd, (recipe, g, plan) in runs:
        t = time.perf_counter()
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as child:
            row = child.submit(run_recipe, shape, recipe, spaced(plan, args.micro_batches), pool, warm, args).result()
        print(f"  {recipe:16s} done in {time.perf_counter() - t:.0f} s, timed step {row['seconds']:.0f} s; "
              f"{load_average()}", flush=True)
        packed = row.pop("packed")
        row.update(shape=shape, recipe=recipe, round=rnd, **{"global": g},
                   plan_padding=whole_plan_padding(recipe, g, plan, packed, pool, lengths, family, args))
        row["tok_s"] = row["real"] / row["seconds"]
        row["padding"] = 1 - row["real"] / row["padded"]
        rows.append(row)
    return rows


def run_recipe(shape: str, recipe: str, micro: list, pool, warm, args) -> dict:
    """One recipe's warm-up and timed step on the parent's tokenised ``pool`` and ``warm``, in the fresh process
    bench_shape starts for it: what its collator counted, the clock, peak live memory and the process's peak
    resident memory."""
    import dataclasses
    import resource

    import torch

    from lamini_lm.models.backbone import compile_blocks, fuse_gelu, load_model
    from lamini_lm.training.cpu_heap import keep_freed_memory
    from lamini_lm.training.flops import FlopCoefficients

    quiet(args.threads)
    cfg, family, tokenizer = shape_model(shape)
    ours = recipe.startswith("ours")
    # cpu_memory_cache as training/run.py applies it on a CPU; --same-heap: the HF and TRL runs too
    if (ours and cfg.cpu_memory_cache and recipe != "ours_glibc") or (args.same_heap and not ours):
        keep_freed_memory()
    torch.manual_seed(cfg.seed)  # every recipe starts from the same random weights
    # HF and TRL: transformers' default attention (sdpa); ours: the model config's (sdpa_varlen)
    spec = cfg.model if ours else dataclasses.replace(cfg.model, attn_implementation=None)
    model = load_model(spec, family)
    # fast_gelu as training/run.py applies it; HF and TRL train the model as transformers builds it
    if ours and cfg.fast_gelu and recipe != "ours_gelu_new":
        fuse_gelu(model)
    if recipe == "ours_compiled":
        compile_blocks(model, cfg.model.fsdp_block)
    if recipe == "ours_no_dropout":
        no_dropout(model)
    meter = Meter(FlopCoefficients(model), head_rows_all=not ours)
    cpu = matmul_roof(reps=4)  # the shared machine's speed just before this run
    with tempfile.TemporaryDirectory() as tmp:
        if ours:
            packing = "padded" if recipe == "ours_padded" else cfg.data.packing
            run_ours(cfg, model, tokenizer, pool, micro, warm, meter, tmp, family, packing)
            packed = packing == "padding_free" and family.can_pack
        else:
            run_hf(recipe, cfg, model, tokenizer, pool, micro, warm, meter, tmp)
            packed = recipe == "trl_padding_free"
    return {"real": meter.real, "padded": meter.padded, "seconds": meter.seconds, "cpu_seconds": meter.cpu_seconds,
            "flops": meter.flops, "cpu": cpu, "peak_mb": (meter.live_peak - meter.live0) / 2 ** 20,
            "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 10, "packed": packed}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: m=2, 2 micro-batches, texts 1/4 as long")
    p.add_argument("--shapes", default="gpt2,t5_small", help=f"comma-separated, of {', '.join(SHAPES)}")
    p.add_argument("--micro-batch", type=int, default=8, help="m: examples per forward/backward")
    p.add_argument("--micro-batches", type=int, default=8,
                   help="micro-batches timed per recipe (one optimizer step), evenly spread over its plan")
    p.add_argument("--global-batches", default="1024,64", help="ours: global batch sizes (examples per step)")
    p.add_argument("--pool", type=int, default=12800,
                   help="examples the plans are drawn from (TRL's group_by_length sorts mega-batches of 50 x m x k)")
    p.add_argument("--compile", action="store_true",
                   help="also ours with compile=true (torch.compile of each block) at the smallest global batch")
    p.add_argument("--recipes", default="", help="comma-separated: run only these (e.g. ours,ours_compiled)")
    p.add_argument("--rounds", type=int, default=1,
                   help="run every recipe this many times, interleaved; the table shows each recipe's median")
    p.add_argument("--same-heap", action="store_true",
                   help="the HF and TRL runs also keep freed memory (ours' cpu_memory_cache): what the setting brings "
                   "them")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    args.max_words = MAX_WORDS
    args.global_batches = [int(g) for g in args.global_batches.split(",")]
    args.recipes = [r for r in args.recipes.split(",") if r]
    if args.quick:
        args.micro_batch, args.micro_batches, args.max_words, args.pool = 2, 2, MAX_WORDS // 4, 256
        args.global_batches = [32, 8]
    return args


def quiet(threads: int) -> None:
    """The libraries' progress bars and warnings off, so the tables stay readable."""
    import logging

    import datasets
    import lightning.pytorch  # noqa: F401  (sets its loggers' levels on import; quieted below)
    import torch
    from transformers.utils import logging as hf_logging

    torch.set_num_threads(threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    hf_logging.set_verbosity_error()
    datasets.disable_progress_bars()
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    for message in (".*does not have many workers.*", ".*no `val_dataloader`.*", ".*LeafSpec.*", ".*padding_free.*",
                    ".*max_length.*", ".*gradient_checkpointing.*"):
        warnings.filterwarnings("ignore", message)


def main() -> None:
    args = parse_args()
    quiet(args.threads)
    from lamini_lm.models.backbone import load_tokenizer

    shapes = [s.strip() for s in args.shapes.split(",") if s.strip()]
    for s in shapes:
        if s not in SHAPES:
            raise SystemExit(f"unknown shape '{s}'; known: {', '.join(SHAPES)}")
    print(f"start: {load_average()}")
    t_start = time.perf_counter()
    words = word_pool([load_tokenizer(compose(s).model) for s in SHAPES])
    print(f"m={args.micro_batch}, {args.micro_batches} timed micro-batches per recipe (one optimizer step), plans "
          f"over {args.pool} examples; ours at global batch {args.global_batches}; word pool {len(words)}", flush=True)

    rows = []
    for shape in shapes:
        rows += bench_shape(shape, args, words)
    # This machine's roof: the best fp32 matmul speed seen (the machine is shared, so the best is the least
    # disturbed); "matmul" shows what it reached just before each recipe ran.
    peak = max([matmul_roof(reps=6)] + [r["cpu"] for r in rows])
    report(rows, shapes, peak, args)
    print(f"\nend: {load_average()}; total {time.perf_counter() - t_start:.0f} s")


def medians(rows: list[dict]) -> list[dict]:
    """One row per (shape, recipe, global batch): the median of its rounds in every measured column, with the
    range of its tokens/s."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["shape"], r["recipe"], r["global"]), []).append(r)
    out = []
    for runs in groups.values():
        row = dict(runs[0])
        for k in ("real", "padded", "seconds", "cpu_seconds", "flops", "cpu", "peak_mb", "rss_mb", "tok_s", "padding"):
            row[k] = float(np.median([r[k] for r in runs]))
        row["util"] = float(np.median([r["flops"] / r["seconds"] for r in runs]))
        row["range"] = (min(r["tok_s"] for r in runs), max(r["tok_s"] for r in runs))
        out.append(row)
    return out


def ratios(rows: list[dict], mine: dict, other: dict) -> str:
    """ours / other in tokens/s, per round (the two ran minutes apart): the median, and the range over rounds."""
    def same(r, x):
        return (r["shape"], r["recipe"], r["global"]) == (x["shape"], x["recipe"], x["global"])
    theirs = {b["round"]: b["tok_s"] for b in rows if same(b, other)}
    per = [a["tok_s"] / theirs[a["round"]] for a in rows if same(a, mine)]
    spread = f" ({min(per):.2f}-{max(per):.2f})" if len(per) > 1 else ""
    return f"{np.median(per):.2f}x{spread} {other['recipe']}"


def report(rows: list[dict], shapes: list[str], peak: float, args) -> None:
    print(f"\nfp32 matmul roof (2048^3, best seen, {args.threads} threads): {peak / 1e9:.1f} GFLOP/s")
    print("util = executed FLOPs / time / roof (lamini_lm.training.flops: padding, attention squares and every "
          "projected output row included); time = data + forward + backward of the timed micro-batches (not the "
          "optimizer step); peak MB = live allocated bytes (mallinfo2) over the weights alone; RSS MB = the recipe's "
          "process's peak resident memory (imports, data and warm-up included); cores = process CPU s / "
          "wall s (< threads: other jobs took the CPU); plan padding = over the recipe's whole plan (exact)"
          + (f"; every column is the median of {args.rounds} interleaved rounds, tok/s range beside it"
             if args.rounds > 1 else ""))
    gb = args.global_batches
    table = medians(rows)
    print(f"\n{'shape':9s} {'recipe':20s} {'global':>6s} {'real tok':>8s} {'time s':>7s} {'real tok/s':>10s} "
          + (f"{'range':>13s} " if args.rounds > 1 else "")
          + f"{'padding':>8s} {'util':>5s} {'peak MB':>7s} {'RSS MB':>6s} {'matmul GF/s':>11s} {'cores':>5s}  "
          + "plan padding at "
          + ", ".join(map(str, gb)))
    for r in table:
        pads = ", ".join(f"{r['plan_padding'][g]:.1%}" if g in r["plan_padding"] else "-" for g in gb)
        lo, hi = r["range"]
        print(f"{r['shape']:9s} {r['recipe']:20s} {r['global'] or 'any':>6} {r['real']:>8,.0f} {r['seconds']:>7.1f} "
              f"{r['tok_s']:>10.1f} " + (f"{f'{lo:.1f}-{hi:.1f}':>13s} " if args.rounds > 1 else "")
              + f"{r['padding']:>8.1%} {r['util'] / peak:>5.2f} "
              f"{r['peak_mb']:>7.0f} {r['rss_mb']:>6.0f} {r['cpu'] / 1e9:>11.1f} "
              f"{r['cpu_seconds'] / r['seconds']:>5.2f}  {pads}")
    print()
    for shape in shapes:
        mine = [r for r in table if r["shape"] == shape and r["recipe"] in ("ours", "ours_compiled")]
        others = [r for r in table if r["shape"] == shape and not r["recipe"].startswith("ours")]
        if not others:
            continue
        best = max(others, key=lambda r: r["tok_s"])
        for o in mine:
            print(f"{shape:9s} {o['recipe']} at global {o['global']}: "
                  + ", ".join(ratios(rows, o, r) for r in others)
                  + f"; peak memory {o['peak_mb'] / best['peak_mb']:.2f}x {best['recipe']} (the fastest other)")
        for g in (r for r in table if r["shape"] == shape and r["recipe"] == "ours_glibc"):
            for o in (o for o in mine if o["recipe"] == "ours" and o["global"] == g["global"]):
                print(f"{shape:9s} ours at global {o['global']}: {ratios(rows, o, g)} (cpu_memory_cache=false)")


if __name__ == "__main__":
    main()
