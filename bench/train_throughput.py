"""Benchmark: our training path against the Stanford Alpaca recipe and TRL's SFTTrainer, in one run.

    python -m bench.train_throughput            # gpt2 (124M) and t5-small (61M), random init (from the repository root)
    python -m bench.train_throughput --quick    # smoke run: tiny plans, 2 micro-batches of 2 short examples
    python -m bench.train_throughput --device cuda   # the same recipes in bf16 mixed precision on a GPU

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

--device cuda (bench/gpu_session.sh runs it on a lent GPU): the same recipes on one GPU in bf16 mixed precision, ours
under trainer=gpu (conf/trainer/gpu.yaml: bf16-mixed), the HF Trainer and TRL with use_cpu=False, bf16=True. The
clock waits for the GPU (torch.cuda.synchronize) before each reading; peak memory is torch.cuda.max_memory_allocated
(reset as the timed step starts) over what is allocated then (the weights); util divides the executed FLOP/s by the
card's dense bf16 peak (lamini_lm.training.flops.roof: lightning's table, else --peak-tflops, else BF16_PEAK below);
"matmul" is an 8192^3 bf16 product timed just before each recipe. The CPU-only settings stay off there: no
cpu_memory_cache (nor ours_glibc, --same-heap), no thread count, no CPU matmul roof. Defaults there: m=32, 16 timed
micro-batches (one optimizer step of 512 examples), ours at global batches 1024 and 512, without ours_count_cut,
ours_gelu_new and ours_no_dropout (name them in --recipes to run them); --budget stops starting recipes once the next
one would pass it, so that a run with a time limit still prints its table.

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

from bench.lamini_shaped import MAX_WORDS, SHAPES, WORD_SHAPES, compose, examples, shape_model, word_pool
from bench.train_recipes import (Meter, grouped_plan, made_up_top_k, no_dropout, ours_plan, plan_padding,
                                 random_plan, run_hf, run_ours, spaced)
from lamini_lm.training.flops import matmul_roof

# Dense bf16 tensor-core peaks (FLOP/s) for the cards lightning's table misses: it reads "NVIDIA H200" as no chip it
# knows (its h200 rows want "sxm1" / "nvl1" in the name, and hold the with-sparsity figures). NVIDIA's H200 SXM
# datasheet: 1,979 TFLOP/s bf16 with sparsity, half of it dense; the same tensor cores as the H100 SXM (989.4).
BF16_PEAK = {"h200": 989.4e12}
# left out of --device cuda unless --recipes names them: the CPU heap setting has no GPU meaning (never run there);
# the other three are our own variants, left for a longer session so that the default run's 11 processes (~15-20 s
# each, imports and CUDA start included) fit the ~4 minutes gpu_session.sh leaves the bench
GPU_SKIPS = ("ours_glibc", "ours_count_cut", "ours_gelu_new", "ours_no_dropout")
# the distillation objectives, run only when --recipes names them (the default runs stay what they were):
# ours_token_kd   objective=token_kd on ours' micro-batches, a made-up stored top-K of the student's own vocabulary
#                 (exact: the divergence at the K alternatives); ours_token_kd_uld: of another vocabulary (ULD)
# ours_online_kd  objective=online_kd, its default teacher (SmolLM2-135M-Instruct, real weights) beside the student,
#                 with GKD's supervised settings (alpha 1, generalized JSD, beta 0.5) to match trl_gkd
# trl_gkd         TRL's GKDTrainer (trl.experimental.gkd) with the same teacher, lmbda 0 (off-policy), beta 0.5, on
#                 trl_grouped's padded micro-batches; only where the teacher's vocabulary is the student's (GKD's own
#                 requirement): the smollm2 shape
KD_RECIPES = ("ours_token_kd", "ours_token_kd_uld", "ours_online_kd", "trl_gkd")
KD_K = 20  # alternatives per target token: what an API teacher returns at most (teacher.logprobs=20)
GKD = ["objective=online_kd", "objective.alpha=1.0", "objective.divergence=jsd", "objective.beta=0.5"]


def overrides(args) -> list[str]:
    """Config overrides of the device: trainer=gpu (bf16-mixed) on a GPU."""
    return ["trainer=gpu"] if args.device == "cuda" else []


def load_average() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def recipes(pool, lengths, family, packed, args, teacher_vocab: bool = False) -> list[tuple]:
    """(recipe, its global batch or None, its plan of micro-batches) for every recipe this shape runs; ``packed``:
    ours packs its micro-batches (data.packing); ``teacher_vocab``: the student's vocabulary is online_kd's teacher's
    (decoder-only)."""
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
    if args.device == "cpu":  # cpu_memory_cache=false: glibc's malloc as it comes, what keeping freed memory brings
        runs.append(("ours_glibc", small, ours(small)[0]))
    runs.append(("ours_no_dropout", small, ours(small)[0]))  # a ceiling: what dropout costs on this CPU
    runs += [(r, small, ours(small)[0]) for r in KD_RECIPES[:3]]  # the objectives on ours' own micro-batches
    if teacher_vocab:  # GKD compares full distributions: TRL's trainer needs the teacher's vocabulary
        runs.append(("trl_gkd", small, grouped_plan(lengths, m, small // m, seed)))
    if args.compile:  # compile=true: the warm-up step pays the compilation
        runs.append(("ours_compiled", small, ours(small)[0]))
        if not family.separate_labels:  # TRL compiled as well: its torch_compile argument
            runs.append(("trl_grouped_compiled", small, grouped_plan(lengths, m, small // m, seed)))
    if args.recipes:
        return [r for r in runs if r[0] in args.recipes]
    runs = [r for r in runs if r[0] not in KD_RECIPES]
    return [r for r in runs if r[0] not in GPU_SKIPS] if args.device == "cuda" else runs


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
    from concurrent.futures.process import BrokenProcessPool
    import multiprocessing

    cfg, family, tokenizer = shape_model(shape, *overrides(args))
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
    teacher_vocab = not enc_dec and any(r in KD_RECIPES for r in args.recipes) and shares_teacher_vocab(tokenizer)
    runs = ((r, x) for r in range(args.rounds)
            for x in recipes(pool, lengths, family, ours_packs, args, teacher_vocab))
    for rnd, (recipe, g, plan) in runs:
        t = time.perf_counter()
        if args.budget and t - args.t_start + args.longest > args.budget:  # --budget: the next run would pass it
            print(f"  {recipe:16s} skipped: {t - args.t_start:.0f} s of --budget {args.budget:.0f} s spent, a run "
                  f"takes up to {args.longest:.0f} s", flush=True)
            args.skipped.append(f"{shape} {recipe}" + (f" (global {g})" if g else ""))
            continue
        try:
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as child:
                row = child.submit(run_recipe, shape, recipe, spaced(plan, args.micro_batches), pool, warm,
                                   args).result()
        except BrokenProcessPool:  # killed from outside (the kernel's OOM killer): the other runs still count
            print(f"  {recipe:16s} died after {time.perf_counter() - t:.0f} s: its process was killed (out of "
                  f"memory? the kernel log says); {load_average()}", flush=True)
            args.skipped.append(f"{shape} {recipe} round {rnd} (its process was killed)")
            continue
        args.longest = max(args.longest, time.perf_counter() - t)
        if args.device == "cpu":
            print(f"  {recipe:16s} done in {time.perf_counter() - t:.0f} s, timed step {row['seconds']:.0f} s; "
                  f"{load_average()}", flush=True)
        else:  # a run's figures as soon as it ends: a session cut short still has them
            print(f"  {recipe:16s} done in {time.perf_counter() - t:.0f} s, timed step {row['seconds']:.3f} s, "
                  f"{row['real'] / row['seconds']:,.0f} real tok/s, util "
                  f"{row['flops'] / row['seconds'] / row['roof']:.2f}, peak {row['peak_mb']:,.0f} MB", flush=True)
        packed = row.pop("packed")
        row.update(shape=shape, recipe=recipe, round=rnd, **{"global": g},
                   plan_padding=whole_plan_padding(recipe, g, plan, packed, pool, lengths, family, args))
        row["tok_s"] = row["real"] / row["seconds"]
        row["padding"] = 1 - row["real"] / row["padded"]
        rows.append(row)
    return rows


def shares_teacher_vocab(tokenizer) -> bool:
    """Whether ``tokenizer``'s vocabulary is objective=online_kd's default teacher's."""
    from lamini_lm.models.backbone import load_tokenizer

    return tokenizer.get_vocab() == load_tokenizer(gkd_objective()["teacher"]).get_vocab()


def gkd_objective() -> dict:
    """conf/objective/online_kd.yaml with GKD's settings, a plain dict; its teacher typed as a ModelSpec."""
    from omegaconf import OmegaConf

    from lamini_lm import config
    from lamini_lm.models.spec import ModelSpec

    node = OmegaConf.to_container(config.compose("train", GKD).objective, resolve=True)
    return {**node, "teacher": config.typed(node["teacher"], ModelSpec, "objective.teacher")}


def objective_of(recipe: str, pool, warm, micro: list, tokenizer, family, model, seed: int):
    """(objective, pool, warm, micro, widths) of a KD recipe: the objective, the pool cut to the timed micro-batches'
    examples (renumbered in ``micro``) and the warm-up's, both with the objective's per-target columns, and their
    widths; (None, pool, warm, micro, None) for every other recipe."""
    from omegaconf import OmegaConf

    from lamini_lm import config, targets
    from lamini_lm.data.batching import MicroBatch
    from lamini_lm.training.objectives.base import Objective
    from lamini_lm.training.objectives.token_kd import TokenKD

    if recipe not in KD_RECIPES[:3]:
        return None, pool, warm, micro, None
    used = sorted({i for mb in micro for i in mb})
    at = {i: j for j, i in enumerate(used)}
    pool = pool.select(used)
    micro = [MicroBatch([at[i] for i in mb], mb.step_target_tokens) for mb in micro]
    if recipe.startswith("ours_token_kd"):
        objective = TokenKD()
        objective.exact = recipe == "ours_token_kd"  # what match=auto decides from the data
        vocab = model.config.vocab_size
        pool, warm = (made_up_top_k(d, family, vocab, KD_K, objective.exact, seed) for d in (pool, warm))
        widths = {"kd_ids": KD_K, "kd_logprobs": KD_K} if objective.exact else {"kd_logprobs": KD_K}
        return objective, pool, warm, micro, widths
    objective = targets.build(OmegaConf.to_container(config.compose("train", GKD).objective, resolve=True),
                              "objective", base=Objective)
    columns = objective.columns(pool, tokenizer, family, None)  # None: the teacher runs on the student's own rows
    if columns is None:
        return objective, pool, warm, micro, None
    pool, warm = (d.map(lambda b: columns(b, b), batched=True) for d in (pool, warm))
    return objective, pool, warm, micro, columns.widths


def run_recipe(shape: str, recipe: str, micro: list, pool, warm, args) -> dict:
    """One recipe's warm-up and timed step on the parent's tokenised ``pool`` and ``warm``, in the fresh process
    bench_shape starts for it: what its collator counted, the clock, peak live memory and the process's peak
    resident memory; on a GPU also the roof (the card's bf16 peak) and its source."""
    import dataclasses
    import resource

    import torch

    from lamini_lm.models.backbone import compile_blocks, fuse_gelu, load_model
    from lamini_lm.training.cpu_heap import keep_freed_memory
    from lamini_lm.training.flops import FlopCoefficients

    cpu = args.device == "cpu"
    quiet(args.threads if cpu else None)  # the GPU path sets no thread count
    cfg, family, tokenizer = shape_model(shape, *overrides(args))
    ours = recipe.startswith("ours")
    # cpu_memory_cache as training/run.py applies it on a CPU; --same-heap: the HF and TRL runs too
    if cpu and ((ours and cfg.cpu_memory_cache and recipe != "ours_glibc") or (args.same_heap and not ours)):
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
    meter = Meter(FlopCoefficients(model), head_rows_all=not ours, device=args.device)
    if cpu:
        matmul, peak, source = matmul_roof(reps=4), None, None  # the shared machine's speed just before this run
    else:
        matmul = gpu_matmul()
        peak, source = gpu_roof(args.peak_tflops)
    with tempfile.TemporaryDirectory() as tmp:
        if ours:
            packing = "padded" if recipe == "ours_padded" else cfg.data.packing
            objective, pool, warm, micro, widths = objective_of(recipe, pool, warm, micro, tokenizer, family, model,
                                                                args.seed)
            run_ours(cfg, model, tokenizer, pool, micro, warm, meter, tmp, family, packing, objective, widths)
            packed = packing == "padding_free" and family.can_pack
        else:
            run_hf(recipe, cfg, model, tokenizer, pool, micro, warm, meter, tmp, teacher=gkd_teacher(recipe))
            packed = recipe == "trl_padding_free"
    return {"real": meter.real, "padded": meter.padded, "seconds": meter.seconds, "cpu_seconds": meter.cpu_seconds,
            "flops": meter.flops, "matmul": matmul, "peak_mb": (meter.live_peak - meter.live0) / 2 ** 20,
            "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 10, "packed": packed,
            "roof": peak or matmul, "roof_source": source or "measured 8192^3 bf16 product",
            "gpu": None if cpu else torch.cuda.get_device_name()}


def gkd_teacher(recipe: str):
    """trl_gkd's teacher: online_kd's (the same weights, dtype fp32 as ours on the CPU), with transformers' default
    attention as the HF and TRL recipes' students have; None for every other recipe."""
    import dataclasses

    from lamini_lm.models.backbone import build_family, load_model

    if recipe != "trl_gkd":
        return None
    spec = dataclasses.replace(gkd_objective()["teacher"], attn_implementation=None)
    return load_model(spec, build_family(spec)).eval().requires_grad_(False)


def gpu_matmul(n: int = 8192, reps: int = 5) -> float:
    """This GPU's bf16 matmul speed in FLOP/s just before a run: the best of a few timed n x n products on random
    data (never zeros: they run faster), after two untimed ones."""
    import torch

    a, b = (torch.randn(n, n, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    for _ in range(2):
        a @ b
    best = float("inf")
    for _ in range(reps):
        torch.cuda.synchronize()
        t = time.perf_counter()
        a @ b
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    del a, b
    torch.cuda.empty_cache()
    return 2 * n ** 3 / best


def gpu_roof(given_tflops: float | None) -> tuple[float | None, str | None]:
    """(the card's dense bf16 peak in FLOP/s, where it comes from): lamini_lm.training.flops.roof (--peak-tflops, else
    lightning's table), else BF16_PEAK by the device's name; (None, None) if neither knows the card (the report then
    divides by the measured matmul)."""
    import torch

    from lamini_lm.training.flops import roof

    given = given_tflops * 1e12 if given_tflops else None
    peak = roof(torch.device("cuda", torch.cuda.current_device()), torch.bfloat16, given)
    if peak:
        return float(peak), "--peak-tflops" if given else "lightning's table"
    name = torch.cuda.get_device_name().lower()
    for chip, flops in BF16_PEAK.items():
        if chip in name:
            return flops, "bench/train_throughput.py BF16_PEAK"
    return None, None


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: m=2, 2 micro-batches, texts 1/4 as long")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="cuda: one GPU, bf16 mixed precision (ours: trainer=gpu; HF/TRL: bf16=True)")
    p.add_argument("--shapes", default="gpt2,t5_small", help=f"comma-separated, of {', '.join(SHAPES)}")
    p.add_argument("--micro-batch", type=int, default=None, help="m: examples per forward/backward (cpu 8, cuda 32)")
    p.add_argument("--micro-batches", type=int, default=None,
                   help="micro-batches timed per recipe (one optimizer step), evenly spread over its plan "
                   "(cpu 8, cuda 16)")
    p.add_argument("--global-batches", default=None,
                   help="ours: global batch sizes (examples per step; cpu 1024,64, cuda 1024,512)")
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
    p.add_argument("--threads", type=int, default=2, help="torch threads on the CPU (--device cpu only)")
    p.add_argument("--peak-tflops", type=float, default=None,
                   help="cuda: the card's dense bf16 peak in TFLOP/s, the util column's roof (default: lightning's "
                   "table, else BF16_PEAK)")
    p.add_argument("--budget", type=float, default=None,
                   help="seconds: start no recipe that would end past them (by the longest run so far); the table "
                   "shows the runs done and names those skipped")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    gpu = args.device == "cuda"
    if gpu and args.same_heap:
        p.error("--same-heap is a CPU heap setting (cpu_memory_cache); the GPU path has none")
    for key, cpu_default, gpu_default in (("micro_batch", 8, 32), ("micro_batches", 8, 16),
                                          ("global_batches", "1024,64", "1024,512")):
        if getattr(args, key) is None:
            setattr(args, key, gpu_default if gpu else cpu_default)
    args.max_words = MAX_WORDS
    args.global_batches = [int(g) for g in args.global_batches.split(",")]
    args.t_start, args.longest, args.skipped = time.perf_counter(), 0.0, []
    args.recipes = [r for r in args.recipes.split(",") if r]
    if args.quick:
        args.micro_batch, args.micro_batches, args.max_words, args.pool = 2, 2, MAX_WORDS // 4, 256
        args.global_batches = [32, 8]
    return args


def quiet(threads: int | None) -> None:
    """The libraries' progress bars and warnings off, so the tables stay readable; ``threads``: torch's CPU threads
    (None: left as torch sets them, the GPU path)."""
    import logging

    import datasets
    import lightning.pytorch  # noqa: F401  (sets its loggers' levels on import; quieted below)
    import torch
    from transformers.utils import logging as hf_logging

    if threads:
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
    quiet(args.threads if args.device == "cpu" else None)
    from lamini_lm.models.backbone import load_tokenizer

    shapes = [s.strip() for s in args.shapes.split(",") if s.strip()]
    for s in shapes:
        if s not in SHAPES:
            raise SystemExit(f"unknown shape '{s}'; known: {', '.join(SHAPES)}")
    print(f"start: {load_average()}")
    t_start = time.perf_counter()
    words = word_pool([load_tokenizer(compose(s).model) for s in WORD_SHAPES])
    print(f"m={args.micro_batch}, {args.micro_batches} timed micro-batches per recipe (one optimizer step), plans "
          f"over {args.pool} examples; ours at global batch {args.global_batches}; word pool {len(words)}", flush=True)

    rows = []
    for shape in shapes:
        rows += bench_shape(shape, args, words)
    if args.device == "cpu":
        # This machine's roof: the best fp32 matmul speed seen (the machine is shared, so the best is the least
        # disturbed); "matmul" shows what it reached just before each recipe ran.
        peak = max([matmul_roof(reps=6)] + [r["matmul"] for r in rows])
    else:  # the card's bf16 peak, as every run found it (the measured matmul where no table knows the card)
        peak = max((r["roof"] for r in rows), default=0.0)
    if not rows:
        raise SystemExit(f"no run finished: {'; '.join(args.skipped) or 'no recipe selected'}")
    report(rows, shapes, peak, args)
    print(f"\nend: {load_average()}; total {time.perf_counter() - t_start:.0f} s")


def kd_lines(rows: list[dict], table: list[dict], shape: str) -> None:
    """The distillation recipes' ratios: each objective's step time over the sequence objective's on the same
    micro-batches (ours at the same global batch), and ours_online_kd's tokens/s over TRL's GKDTrainer's."""
    def find(recipe, g=None):
        return next((r for r in table if r["shape"] == shape and r["recipe"] == recipe
                     and (g is None or r["global"] == g)), None)
    for kd in (r for r in table if r["shape"] == shape and r["recipe"] in KD_RECIPES[:3]):
        seq = find("ours", kd["global"])
        if seq:  # sequence tok/s over the objective's, on the same tokens: the objective's step time in sequence steps
            print(f"{shape:9s} {kd['recipe']} at global {kd['global']}: step time "
                  f"{ratios(rows, seq, kd).replace(kd['recipe'], 'of ours (the sequence objective)')}")
    gkd, online = find("trl_gkd"), find("ours_online_kd")
    if gkd and online:
        print(f"{shape:9s} ours_online_kd at global {online['global']}: {ratios(rows, online, gkd)} in real tokens/s; "
              f"peak memory {online['peak_mb'] / gkd['peak_mb']:.2f}x")


def torch_version() -> str:
    import torch

    return f"{torch.__version__} (CUDA {torch.version.cuda})"


def medians(rows: list[dict]) -> list[dict]:
    """One row per (shape, recipe, global batch): the median of its rounds in every measured column, with the
    range of its tokens/s."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["shape"], r["recipe"], r["global"]), []).append(r)
    out = []
    for runs in groups.values():
        row = dict(runs[0])
        for k in ("real", "padded", "seconds", "cpu_seconds", "flops", "matmul", "peak_mb", "rss_mb", "tok_s",
                  "padding"):
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
    per = [a["tok_s"] / theirs[a["round"]] for a in rows if same(a, mine) and a["round"] in theirs]
    if not per:  # no round ran both (a run was killed)
        return f"n/a (no round measured both) {other['recipe']}"
    spread = f" ({min(per):.2f}-{max(per):.2f})" if len(per) > 1 else ""
    return f"{np.median(per):.2f}x{spread} {other['recipe']}"


def report(rows: list[dict], shapes: list[str], peak: float, args) -> None:
    cpu = args.device == "cpu"
    if cpu:
        print(f"\nfp32 matmul roof (2048^3, best seen, {args.threads} threads): {peak / 1e9:.1f} GFLOP/s")
        print("util = executed FLOPs / time / roof (lamini_lm.training.flops: padding, attention squares and every "
              "projected output row included); time = data + forward + backward of the timed micro-batches (not "
              "the optimizer step); peak MB = live allocated bytes (mallinfo2) over the weights alone; RSS MB = the "
              "recipe's process's peak resident memory (imports, data and warm-up included); cores = process CPU "
              "s / wall s (< threads: other jobs took the CPU); plan padding = over the recipe's whole plan (exact)"
              + (f"; every column is the median of {args.rounds} interleaved rounds, tok/s range beside it"
                 if args.rounds > 1 else ""))
    else:
        source = max(rows, key=lambda r: r["roof"])["roof_source"]
        print(f"\n{rows[0]['gpu']}: bf16 roof {peak / 1e12:.1f} TFLOP/s ({source}); torch {torch_version()}")
        print("bf16 mixed precision (ours: trainer=gpu; HF/TRL: bf16=True). util = executed FLOPs / time / roof "
              "(lamini_lm.training.flops: padding, attention squares and every projected output row included); "
              "time = data + forward + backward of the timed micro-batches, the GPU synchronised before each clock "
              "reading (not the optimizer step); peak MB = torch.cuda.max_memory_allocated over the bytes allocated "
              "as the timed step starts (the weights), reset then; RSS MB = the process's peak resident host "
              "memory; matmul TF/s = an 8192^3 bf16 product just before the recipe; cores = process CPU s / wall s "
              "(the host's share: ~1 when Python, not the GPU, sets the pace); plan padding = over the recipe's "
              "whole plan (exact)"
              + (f"; every column is the median of {args.rounds} interleaved rounds, tok/s range beside it"
                 if args.rounds > 1 else ""))
    if args.skipped:
        print(f"not measured: {'; '.join(args.skipped)}" + (f" (--budget {args.budget:.0f} s)" if args.budget else ""))
    gb = args.global_batches
    table = medians(rows)
    print(f"\n{'shape':9s} {'recipe':20s} {'global':>6s} {'real tok':>8s} {'time s':>7s} {'real tok/s':>10s} "
          + (f"{'range':>13s} " if args.rounds > 1 else "")
          + f"{'padding':>8s} {'util':>5s} {'peak MB':>7s} {'RSS MB':>6s} "
          + f"{'matmul GF/s' if cpu else 'matmul TF/s':>11s} {'cores':>5s}  "
          + "plan padding at "
          + ", ".join(map(str, gb)))
    for r in table:
        pads = ", ".join(f"{r['plan_padding'][g]:.1%}" if g in r["plan_padding"] else "-" for g in gb)
        lo, hi = r["range"]
        print(f"{r['shape']:9s} {r['recipe']:20s} {r['global'] or 'any':>6} {r['real']:>8,.0f} "
              f"{r['seconds']:>7.{1 if cpu else 3}f} "
              f"{r['tok_s']:>10.1f} " + (f"{f'{lo:.1f}-{hi:.1f}':>13s} " if args.rounds > 1 else "")
              + f"{r['padding']:>8.1%} {r['util'] / peak:>5.2f} "
              f"{r['peak_mb']:>7.0f} {r['rss_mb']:>6.0f} {r['matmul'] / (1e9 if cpu else 1e12):>11.1f} "
              f"{r['cpu_seconds'] / r['seconds']:>5.2f}  {pads}")
    print()
    for shape in shapes:
        mine = [r for r in table if r["shape"] == shape and r["recipe"] in ("ours", "ours_compiled")]
        others = [r for r in table if r["shape"] == shape and not r["recipe"].startswith("ours")
                  and r["recipe"] not in KD_RECIPES]
        kd_lines(rows, table, shape)
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
