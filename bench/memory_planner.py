"""Benchmark: the memory planner's prediction against the peak memory of real fp32 training steps on this CPU.

    PYTHONPATH=$PWD/src:$PWD python bench/memory_planner.py --jobs 3   # 24 points, a fresh process each
    PYTHONPATH=$PWD/src:$PWD python bench/memory_planner.py --saved    # in process: kept bytes only
    PYTHONPATH=$PWD/src:$PWD python bench/memory_planner.py --only gpt2 --points 1

The small herd members at their true shapes (conf/model/*.yaml `architecture`, random init): gpt2 (124M),
t5_small, flan_t5_small, gpt_neo_125m, cerebras_gpt_111m, smollm2_135m; at several micro-batches and lengths,
without and with activation checkpointing (torch's checkpoint_wrapper on every `model.fsdp_block`, which is what
conf/trainer/fsdp.yaml's activation_checkpointing_policy applies).

Peak (default): one child process per point (--jobs at a time), with glibc told to give every block of 64 KiB or
more back when freed (MALLOC_MMAP_THRESHOLD_, see CHILD_ENV), so that RSS follows the tensors. It imports
everything, records its peak RSS (ru_maxrss) as the baseline, builds the model, runs one small step (1 sequence
of 8 tokens: forward, backward, fused AdamW step) so that the optimizer state and every gradient exist, as they
do in a step under gradient accumulation, then the measured micro-batch: forward, backward (accumulating into the
gradients), AdamW step. Measured = ru_maxrss at the end - baseline. Predicted = lamini_lm.training.plan's peak for
trainer=cpu (single device, 32-true, the kernel the CPU picks): weights + gradients + AdamW state + activations at
the start of backward. Error sources: RSS counts pages, not tensors (blocks under 64 KiB still share heap pages,
oneDNN/MKL scratch buffers, thread stacks), and the baseline's import-time peak may hide a little of the run's.
ru_maxrss is a high-water mark, so it cannot miss a short-lived peak.

--saved: in this process, the bytes autograd keeps after the forward (saved_tensors_hooks, each storage once,
parameters and buffers excluded: the planner counts buffers with the weights) against the planner's activations
without the loss's backward transient (layers + other + the fp32 log-probabilities): the arithmetic check of
training/activations.py.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

from lamini_lm.jsonl import iter_jsonl

MEMBERS = ["gpt2", "t5_small", "flan_t5_small", "gpt_neo_125m", "cerebras_gpt_111m", "smollm2_135m"]
# (micro-batch, length, target length, checkpointing): decoder-only sequences of `length` tokens, the last `target`
# in the loss; encoder-decoder `length` input tokens and `target` label tokens
POINTS = {"decoder-only": [(2, 384, 192, False), (2, 384, 192, True), (8, 96, 96, False), (4, 256, 64, True)],
          "encoder-decoder": [(2, 384, 96, False), (2, 384, 96, True), (8, 96, 64, False), (4, 128, 256, False)]}
# Tensors, not glibc's habits: every block of 64 KiB or more gets its own mapping and is unmapped when freed, so
# RSS follows the live tensors (with glibc's default, freed blocks under its adaptive mmap threshold (up to
# 32 MiB) stay in the heap: +0.58 GB on gpt2 2x512, +0.95 GB with checkpointing, measured once)
CHILD_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536"}


def _cfg(member: str, *extra: str):
    from lamini_lm import config

    return config.compose("train", [f"model={member}", "model.init=random", "trainer=cpu",
                                   "paths.output_dir=/tmp/unused", *extra])


def predicted(member: str, b: int, length: int, target: int, ckpt: bool):
    from lamini_lm.training import plan

    s = plan.setup(_cfg(member))
    return s, plan.point(s, "single", b, length, target, ckpt)


def _model(member: str, ckpt: bool):
    import torch
    from hydra.utils import get_class

    from lamini_lm.config import typed
    from lamini_lm.models.backbone import build_family, build_random, fuse_gelu
    from lamini_lm.models.spec import ModelSpec

    cfg = _cfg(member)
    spec = typed(cfg.model, ModelSpec, "model")
    family = build_family(spec)
    torch.manual_seed(0)
    model = build_random(family.auto(), spec.architecture).train()
    if cfg.fast_gelu:  # as training/run.py
        fuse_gelu(model)
    if ckpt:
        from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import (
            apply_activation_checkpointing, checkpoint_wrapper)

        block = get_class(spec.fsdp_block)
        apply_activation_checkpointing(model, checkpoint_wrapper_fn=checkpoint_wrapper,
                                       check_fn=lambda m: isinstance(m, block))
    return family, model


def child(member: str, b: int, length: int, target: int, ckpt: bool) -> None:
    """One point, in this fresh process: prints {"baseline", "after_states", "peak"} in bytes."""
    import torch

    from lamini_lm.training.throughput import batch

    with torch.device("meta"):  # imports every module the run needs, allocates nothing
        _model(member, ckpt)
    rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # noqa: E731  (KiB on Linux)
    baseline = rss()
    family, model = _model(member, ckpt)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)  # as models/tuner.py
    vocab = model.config.vocab_size

    def step(data, zero: bool):
        nll = family.token_nll(model, data)
        (nll / max(1, int((data["labels"] != -100).sum()))).backward()
        optimizer.step()
        if zero:
            optimizer.zero_grad(set_to_none=True)

    step(batch(family, vocab, 1, 8, 4), zero=False)  # optimizer state and gradients now exist
    after_states = rss()
    step(batch(family, vocab, b, length, target), zero=True)
    print(json.dumps({"baseline": baseline, "after_states": after_states, "peak": rss()}))


def _measure(job):
    member, (b, length, target, ckpt), cache = job
    key = [member, b, length, target, ckpt]
    if cache and os.path.exists(cache):  # a measurement does not depend on the planner: reuse it
        for _, entry in iter_jsonl(cache):
            if entry["point"] == key:
                return entry["result"], entry["secs"]
    t0 = time.time()
    res = subprocess.run([sys.executable, __file__, "--child", member, str(b), str(length), str(target),
                          str(int(ckpt))], capture_output=True, text=True, env={**os.environ, **CHILD_ENV})
    if res.returncode:
        raise SystemExit(f"{member} {b}x{length}: the child failed\n{res.stderr[-3000:]}")
    result, secs = json.loads(res.stdout.strip().splitlines()[-1]), time.time() - t0
    if cache:
        with open(cache, "a") as f:
            f.write(json.dumps({"point": key, "result": result, "secs": secs}) + "\n")
    return result, secs


def _cached(cache: str | None) -> list:
    if not cache or not os.path.exists(cache):
        return []
    return [entry["point"] for _, entry in iter_jsonl(cache)]


def peak_table(members, points_per: int, jobs: int, cache: str | None, cached_only: bool = False) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from lamini_lm.training import plan

    families = {m: plan.setup(_cfg(m)).family.architecture for m in members}
    # point-major: every member's first point before anyone's second, so a cut-short run still covers all members
    todo = [(m, POINTS[families[m]][i], cache) for i in range(points_per) for m in members
            if i < len(POINTS[families[m]])]
    if cached_only:  # print what the cache holds, member by member, measuring nothing
        done = _cached(cache)
        todo = sorted((t for t in todo if [t[0], *t[1]] in done), key=lambda t: members.index(t[0]))
    print("| member | micro-batch | length | target | ckpt | states GB | activations GB | predicted GB | "
          "measured GB | predicted / measured | activations measured / predicted | s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|", flush=True)
    worst = 0.0
    with ThreadPoolExecutor(jobs) as pool:  # memory is per process: concurrent children change time only
        for (member, (b, length, target, ckpt), _), (m, secs) in zip(todo, pool.map(_measure, todo)):
            _, pt = predicted(member, b, length, target, ckpt)
            measured = m["peak"] - m["baseline"]
            ratio = pt.total / measured
            worst = max(worst, abs(ratio - 1))
            acts = (measured - pt.states.total) / pt.acts.total
            print(f"| {member} | {b} | {length} | {target} | {'yes' if ckpt else 'no'} | {pt.states.total / 1e9:.3f} | "
                  f"{pt.acts.total / 1e9:.3f} | {pt.total / 1e9:.3f} | {measured / 1e9:.3f} | {ratio:.3f} | "
                  f"{acts:.2f} | {secs:.0f} |", flush=True)
    print(f"worst |predicted / measured - 1| = {worst:.3f}")


def saved_table(members) -> None:
    """Autograd's kept bytes after one forward vs the planner's (no loss backward transient)."""
    from lamini_lm.training.throughput import batch
    from tests.helpers.kept import kept_bytes

    print(f"{'member':18s} {'b':>3s} {'len':>4s} {'tgt':>4s} {'kept MB':>9s} {'planned MB':>10s} {'ratio':>6s}")
    for member in members:
        for (b, length, target) in [(2, 256, 128), (4, 128, 64)]:
            s, pt = predicted(member, b, length, target, False)
            family, model = _model(member, False)
            kept = kept_bytes(family, model, batch(family, model.config.vocab_size, b, length, target))
            rows = b * (target if s.family.separate_labels else min(target, length - 1))
            planned = pt.acts.layers + pt.acts.other + 4 * s.dims["vocab"] * rows  # the loss keeps one fp32 row
            print(f"{member:18s} {b:3d} {length:4d} {target:4d} {kept / 1e6:9.1f} {planned / 1e6:10.1f} "
                  f"{planned / kept:6.3f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--saved", action="store_true", help="kept bytes after the forward, in this process")
    ap.add_argument("--only", nargs="*", default=MEMBERS, help="members to run")
    ap.add_argument("--points", type=int, default=len(POINTS["decoder-only"]), help="points per member")
    ap.add_argument("--jobs", type=int, default=2, help="children at a time")
    ap.add_argument("--cache", help="a JSONL file of measurements: points found there are not measured again")
    ap.add_argument("--cached", action="store_true", help="only the points --cache holds (measure nothing)")
    ap.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        member, b, length, target, ckpt = a.child
        child(member, int(b), int(length), int(target), ckpt == "1")
        return
    print(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(), flush=True)
    saved_table(a.only) if a.saved else peak_table(a.only, a.points, a.jobs, a.cache, a.cached)
    print(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
