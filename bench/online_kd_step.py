"""Benchmark: a training step under objective=online_kd (the real SmolLM2-135M-Instruct teacher run beside the
student) against the sequence objective, on the same rows.

    python -m bench.online_kd_step                      # SmolLM2-135M (its own tokenizer), gpt2, t5-small students
    python -m bench.online_kd_step --quick              # smoke run: the SmolLM2-shaped student, 2 rounds

Each student (random weights, fp32, CPU) trains one packed micro-batch of the first --micro-batch bundled sample
records (data.packing=padding_free, as train.py collates them), forward and backward, under the sequence objective
and under online_kd with its default settings (forward KL, alpha 0.5): a student of the teacher's tokenizer has
the teacher run on its own packed row (full-vocabulary divergence); GPT-2's and T5's have it read its own
chat-formatted text, in one packed row of its own (ULD on its top 20). Steps alternate between the two, after one untimed warm-up step
each; the median over --rounds is reported, and online_kd's over sequence's. The teacher's forward is the cost:
about one forward of a 135M model per step, without its backward.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

STUDENTS = {
    "smollm2": ["model=smollm2_135m", "model.init=random"],  # the teacher's architecture and tokenizer
    "gpt2": ["model=gpt2", "model.init=random", "model.tokenizer=${asset:gpt2_tokenizer}"],
    "t5_small": ["model=t5_small", "model.init=random", "model.tokenizer=${asset:t5_tokenizer}"],
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="the SmolLM2-shaped student only, 2 rounds")
    p.add_argument("--students", default=",".join(STUDENTS))
    p.add_argument("--micro-batch", type=int, default=8)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    names = ["smollm2"] if args.quick else args.students.split(",")
    rounds = 2 if args.quick else args.rounds
    print(f"torch {torch.__version__}, {args.threads} threads, micro-batch {args.micro_batch} packed, {rounds} rounds; "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"{'student':9s} {'objective':10s} {'targets':>7s} {'step s':>8s} {'x sequence':>10s} {'kd_aligned':>10s}")
    for name in names:
        bench_student(name, args, rounds)


def bench_student(name: str, args, rounds: int) -> None:
    import datasets
    import torch

    from lamini_lm import config, targets
    from lamini_lm.data.collate import Collate
    from lamini_lm.data.tokenization import Tokenize
    from lamini_lm.models.backbone import build_family, fuse_gelu, load_model, load_tokenizer
    from lamini_lm.models.spec import ModelSpec
    from lamini_lm.training.objectives.base import Objective
    from lamini_lm.training.objectives.sequence import Sequence

    cfg = config.compose("train", [*STUDENTS[name], "objective=online_kd"])
    spec = config.typed(cfg.model, ModelSpec, "model")
    family, tok = build_family(spec), load_tokenizer(spec)
    torch.manual_seed(0)
    model = load_model(spec, family).train()
    fuse_gelu(model)
    lines = (config.PACKAGE_DIR / "data" / "sample" / "lamini_sample.jsonl").read_text().splitlines()
    records = {k: [json.loads(x)[k] for x in lines[:args.micro_batch]] for k in ("instruction", "response")}
    online = targets.build(cfg.objective, "objective", base=Objective)
    columns = online.columns(datasets.Dataset.from_dict(records), tok, family, None)
    widths = columns.widths if columns else {}
    enc = Tokenize(tok, family.style(spec.prompt_style, tok), family, 512, 512, columns=columns)(records)
    rows = {k: enc[k] for k in ("input_ids", "labels", *widths)}
    batch = Collate(tok.pad_token_id, family.separate_labels, packed=True, columns=widths)((rows, None))
    objectives = {"sequence": Sequence(), "online_kd": online}
    aligned = []

    def step(objective: str) -> float:
        model.zero_grad(set_to_none=True)
        start = time.perf_counter()
        loss = objectives[objective].loss(family, model, batch)
        (loss.total / batch["step_target_tokens"]).backward()
        if "kd_aligned" in loss.logs:
            aligned.append(float(loss.logs["kd_aligned"]))
        return time.perf_counter() - start

    times: dict[str, list[float]] = {objective: [] for objective in objectives}
    for objective in objectives:
        step(objective)  # warm-up: first-call costs (the teacher loads here)
    for _ in range(rounds):
        for objective in objectives:
            times[objective].append(step(objective))
    base = statistics.median(times["sequence"])
    n = int(batch["step_target_tokens"])
    for objective, t in times.items():
        share = f"{aligned[-1]:10.3f}" if objective == "online_kd" else f"{'':10s}"
        print(f"{name:9s} {objective:10s} {n:7d} {statistics.median(t):8.3f} {statistics.median(t) / base:10.3f} "
              f"{share}")


if __name__ == "__main__":
    main()
