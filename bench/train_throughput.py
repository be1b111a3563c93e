"""Benchmark: our training path against the Stanford Alpaca recipe on the HF Trainer, in one run.

    python bench/train_throughput.py            # gpt2 (124M) and t5-small (61M), random init, full run
    python bench/train_throughput.py --quick    # smoke run: 2 x 2 short examples per shape

Both recipes train the same randomly initialised model (GPT-2 = GPT2Config() defaults; t5-small =
T5Config(d_model=512, d_ff=2048, num_layers=6, num_heads=8)) with the real GPT-2 / T5 tokenizers, on the
same token ids (one `datasets.Dataset` tokenised by lamini_lm.data.tokenization.Tokenize: Alpaca-wrapped
prompt masked for decoder-only, instruction in / response as labels for T5), with the same micro-batch m,
accumulation k and number of optimizer steps, so each timed run sees exactly the same examples (checked).

- "alpaca": transformers.Trainer, per_device_train_batch_size=m, gradient_accumulation_steps=k,
  random-order batches (train_sampling_strategy="random", transformers 5's name for group_by_length=False),
  DataCollatorForSeq2Seq (pads input_ids to the longest in the batch and labels with -100).
- "ours": the real path of src/lamini_lm/training/run.py: GlobalBatchSampler + TokenizedSet + Collate
  (make_loader), Family.module, conf/trainer/cpu.yaml + conf/optim/adamw.yaml (Hydra compose) with
  accumulate_grad_batches=k, global batch m x k.

Data: records of words that are one token in both tokenizers, so a text of n words is ~n tokens in both.
Lengths follow the paper's Table 1: each of the seven subsets with its share of D_ALL and its mean
instruction / response length (D_ALL means: 50.6 / 32.9 tokens), lognormal within a subset (sigma 0.8),
clipped so that instruction + response <= 480 words (wrapped GPT-2 sequences <= ~512 tokens).
reconstruction: sigma 0.8 is our choice: with it, random batches of 8 waste 48% (gpt2) / 65% (t5) of
their tokens on padding over a long plan, close to the 48% / 60% issue 2 reports for LaMini-shaped data.

On a shared machine the wall-clock numbers move with the other jobs' load (the "cores" and "matmul
GFLOP/s" columns show it); the padding shares are exact and do not.

Each recipe first trains one untimed warm-up step (one micro-batch of other examples) on its model,
then a fresh Trainer runs the timed steps; the clock runs from the start of the timed epoch (data
loading included) to the end of the last optimizer step.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import tempfile
import time
from types import SimpleNamespace
import warnings

import numpy as np

from lamini_lm import assets
from lamini_lm.analysis.tables import paper_numbers  # noqa: E402

SIGMA = 0.8
MAX_WORDS = 480  # instruction + response; + Alpaca wrapper (~27 GPT-2 tokens) + EOS stays within 512

# The real herd configs (conf/model/gpt2.yaml, t5_small.yaml) built with random weights from the architecture they
# carry, with the offline tokenizers
SHAPES = {
    "gpt2": ["model=gpt2", "model.init=random", "model.tokenizer=${asset:gpt2_tokenizer}"],
    "t5_small": ["model=t5_small", "model.init=random", "model.tokenizer=${asset:t5_tokenizer}"],
}


# -- machine ----------------------------------------------------------------------------------------
def matmul_flops(n: int = 2048, reps: int = 6) -> float:
    """This CPU's fp32 matmul speed (FLOP/s): the best of a few timed n x n products."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best


def load_average() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


# -- data -------------------------------------------------------------------------------------------
def word_pool(tokenizers) -> np.ndarray:
    """Lower-case words that each tokenizer encodes as exactly one token (with a leading space)."""
    import json

    vocab = json.loads((assets.path("gpt2_tokenizer") / "vocab.json").read_text())
    words = sorted({w[1:] for w in vocab if w[:1] == "Ġ" and w[1:].isascii() and w[1:].isalpha() and w[1:].islower()})
    keep = np.ones(len(words), dtype=bool)
    for tok in tokenizers:
        ids = tok([" " + w for w in words], add_special_tokens=False)["input_ids"]
        keep &= np.array([len(x) == 1 for x in ids])
    return np.array(words)[keep]


def lamini_lengths(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Instruction and response lengths (words) drawn like D_ALL: Table 1 subset shares and means."""
    paper = paper_numbers()
    paper.pop("all")
    subsets = list(paper)
    share = np.array([paper[s]["samples_M"] for s in subsets])
    pick = rng.choice(len(subsets), n, p=share / share.sum())

    def draw(key):
        mean = np.array([paper[s][key] for s in subsets])[pick]
        return np.exp(np.log(mean) - SIGMA ** 2 / 2 + SIGMA * rng.standard_normal(n))  # lognormal with that mean

    ins = np.clip(np.round(draw("avg_ins_len")), 1, MAX_WORDS - 1).astype(int)
    res = np.clip(np.round(draw("avg_res_len")), 1, None).astype(int)
    return ins, np.minimum(res, MAX_WORDS - ins)


def records(n: int, words: np.ndarray, seed: int, max_words: int = MAX_WORDS):
    import datasets

    rng = np.random.default_rng(seed)
    ins, res = lamini_lengths(n, rng)
    scale = max_words / MAX_WORDS  # --quick: the same shape, shorter
    ins, res = np.maximum(1, (ins * scale).astype(int)), np.maximum(1, (res * scale).astype(int))
    text = lambda k: " ".join(words[rng.integers(0, len(words), k)])  # noqa: E731
    return datasets.Dataset.from_dict({
        "instruction": [text(k) + "?" for k in ins],
        "response": [text(k) + "." for k in res],
    })


# -- shared measurement -----------------------------------------------------------------------------
def example_key(input_ids) -> str:
    return hashlib.sha1(np.asarray(input_ids, dtype=np.int64).tobytes()).hexdigest()


class Meter:
    """Counts what the collator hands to the model (real/padded tokens, per side) and which examples."""

    def __init__(self, encoder_decoder: bool):
        self.encoder_decoder = encoder_decoder
        self.reset()

    def reset(self):
        self.enc_real = self.dec_real = self.padded = 0
        self.examples: list[str] = []
        self.t0 = self.t1 = None
        self.c0 = self.c1 = None  # process CPU time (all threads): how much of the cores this run really got

    def start(self) -> None:
        if self.t0 is None:
            self.t0, self.c0 = time.perf_counter(), time.process_time()

    def stop(self) -> None:
        self.t1, self.c1 = time.perf_counter(), time.process_time()

    def count(self, input_ids_rows, batch) -> None:
        enc, dec = int(batch["attention_mask"].sum()), int((batch["labels"] != -100).sum())
        padded = batch["input_ids"].numel()
        if self.encoder_decoder:  # the labels are a second, decoder-side sequence
            self.enc_real, self.dec_real = self.enc_real + enc, self.dec_real + dec
            padded += batch["labels"].numel()
        else:
            self.dec_real += enc
        self.padded += padded
        self.examples += [example_key(x) for x in input_ids_rows]

    @property
    def real(self) -> int:
        return self.enc_real + self.dec_real

    @property
    def seconds(self) -> float:
        return self.t1 - self.t0

    @property
    def cpu_seconds(self) -> float:
        return self.c1 - self.c0


def real_tokens(batch, enc_dec: bool) -> int:
    real = int(batch["attention_mask"].sum())
    return real + int((batch["labels"] != -100).sum()) if enc_dec else real


def flops_per_step(model, meter: Meter) -> float:
    """Model FLOPs of the real tokens, 6 x params x tokens (forward + backward, attention scores ignored).

    Decoder-only: every parameter (the tied embedding is the LM head's matmul) once per real token.
    Encoder-decoder: encoder tokens pass the encoder's layers; decoder tokens the decoder's layers and
    the LM head (vocab x d_model); the shared embedding lookup costs nothing."""
    if not meter.encoder_decoder:
        return 6 * sum(p.numel() for p in model.parameters()) * meter.real
    n_enc = sum(p.numel() for n, p in model.encoder.named_parameters() if "embed_tokens" not in n)
    n_dec = sum(p.numel() for n, p in model.decoder.named_parameters() if "embed_tokens" not in n)
    n_head = model.config.vocab_size * model.config.d_model
    return 6 * (n_enc * meter.enc_real + (n_dec + n_head) * meter.dec_real)


# -- the two recipes --------------------------------------------------------------------------------
def run_alpaca(cfg, model, tokenizer, train_set, warm_set, m: int, k: int, steps: int, meter: Meter, tmp: str):
    from transformers import DataCollatorForSeq2Seq, PrinterCallback, Trainer, TrainerCallback, TrainingArguments

    pad = DataCollatorForSeq2Seq(tokenizer, padding="longest", label_pad_token_id=-100)

    def collate(features):
        batch = pad(features)
        meter.count([f["input_ids"] for f in features], batch)
        return batch

    class Clock(TrainerCallback):
        def on_epoch_begin(self, args, state, control, **kw):
            meter.start()

        def on_step_end(self, args, state, control, **kw):
            meter.stop()

    o = cfg.optim

    def trainer(dataset, accum, max_steps):
        args = TrainingArguments(
            output_dir=tmp, per_device_train_batch_size=m, gradient_accumulation_steps=accum, max_steps=max_steps,
            train_sampling_strategy="random", learning_rate=o.lr, weight_decay=o.weight_decay,
            adam_beta1=o.betas[0], adam_beta2=o.betas[1], adam_epsilon=o.eps, lr_scheduler_type=o.scheduler,
            warmup_steps=o.warmup_ratio, max_grad_norm=cfg.trainer.gradient_clip_val, seed=cfg.seed,
            use_cpu=True, dataloader_num_workers=0, report_to="none", save_strategy="no", eval_strategy="no",
            logging_strategy="no", disable_tqdm=True)
        trainer = Trainer(model=model, args=args, train_dataset=dataset.select_columns(["input_ids", "labels"]),
                          data_collator=collate, callbacks=[Clock()])
        trainer.remove_callback(PrinterCallback)  # no per-run log dicts in the benchmark's output
        return trainer

    trainer(warm_set, 1, 1).train()
    meter.reset()
    trainer(train_set, k, steps).train()


def run_ours(cfg, model, tokenizer, train_set, warm_set, m: int, k: int, steps: int, meter: Meter, tmp: str):
    import lightning.pytorch as pl
    from hydra.utils import instantiate

    from lamini_lm.data.batching import GlobalBatchSampler, make_loader
    from lamini_lm.data.collate import Collate, TokenizedSet
    from lamini_lm.models.backbone import build_family

    family = build_family(cfg.model)
    enc_dec = family.separate_labels
    real_collate = Collate(tokenizer.pad_token_id, separate_labels=enc_dec)

    def collate(item):
        batch = real_collate(item)
        meter.count(item[0]["input_ids"], batch)
        assert batch["real_tokens"] == real_tokens(batch, enc_dec)  # our Collate's own count agrees
        return batch

    class Clock(pl.Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            meter.start()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            meter.stop()

    module = family.module(model, cfg.model, cfg.optim)

    def fit(dataset, accum, max_steps):
        sampler = GlobalBatchSampler(dataset["source_length"], dataset["target_length"], global_batch_size=m * accum,
                                     micro_batch_size=m, seed=cfg.seed, order=family.order)
        loader = make_loader(TokenizedSet(dataset), sampler, collate)
        trainer = instantiate(cfg.trainer, logger=False, callbacks=[Clock()], max_steps=max_steps,
                              accumulate_grad_batches=accum, enable_checkpointing=False, enable_progress_bar=False,
                              enable_model_summary=False, limit_val_batches=0, default_root_dir=tmp)
        trainer.fit(module, train_dataloaders=loader)

    fit(warm_set, 1, 1)
    meter.reset()
    fit(train_set, k, steps)


# -- plan-level padding (no model): the same two batchings over many steps ------------------------------
def plan_padding(dataset, m: int, global_batch: int, seed: int, family) -> tuple[float, float]:
    """Padding share of random batches of m vs our GlobalBatchSampler's plan, from the lengths alone."""
    from lamini_lm.data.batching import GlobalBatchSampler

    src = np.array(dataset["source_length"])
    tgt = np.array(dataset["target_length"]) if family.separate_labels else np.zeros_like(src)
    n = len(src) - len(src) % global_batch

    def share(batches):
        real = sum(src[b].sum() + tgt[b].sum() for b in batches)
        return 1 - real / sum(len(b) * (src[b].max() + tgt[b].max()) for b in batches)

    order = np.random.default_rng(seed).permutation(n)
    sampler = GlobalBatchSampler(src[:n].tolist(), tgt[:n].tolist(), global_batch_size=global_batch,
                                 micro_batch_size=m, seed=seed, order=family.order)
    return (share([order[i:i + m] for i in range(0, n, m)]),
            share([np.array(mb) for step in sampler.plan(0) for mb in step]))


# -- main -------------------------------------------------------------------------------------------
def compose(shape: str, *extra: str):
    """The train config of ``shape``, its model and optim nodes typed (ModelSpec, OptimSpec) as train.py types them."""
    from lamini_lm import config
    from lamini_lm.models.spec import ModelSpec
    from lamini_lm.training.spec import OptimSpec

    cfg = config.compose("train", SHAPES[shape] + list(extra))
    return SimpleNamespace(**{k: cfg[k] for k in cfg if k not in ("model", "optim")}, model=config.typed(cfg.model, ModelSpec, "model"),
                           optim=config.typed(cfg.optim, OptimSpec, "optim"))


def bench_shape(shape: str, args, words, tmp: str) -> list[dict]:
    import torch

    from lamini_lm.data.tokenization import Tokenize
    from lamini_lm.models.backbone import build_family, load_model, load_tokenizer

    cfg = compose(shape)
    family = build_family(cfg.model)
    enc_dec = family.separate_labels
    tokenizer = load_tokenizer(cfg.model)
    tokenize = Tokenize(tokenizer, family.style(cfg.model.prompt_style), family,
                        cfg.data.max_source_length, cfg.data.max_target_length)
    m, k, steps = args.micro_batch, args.accum, args.steps
    n = m * k * steps
    train_set = records(n, words, args.seed, args.max_words).map(tokenize, batched=True)
    # the warm-up only has to pay the first-call costs: short examples keep it cheap
    warm_set = records(m, words, args.seed + 2, args.max_words // 8).map(tokenize, batched=True)
    src = np.array(train_set["source_length"])
    tgt = np.array(train_set["target_length"])
    side = "input" if enc_dec else "sequence"
    print(f"\n[{shape}] {n} timed examples: {side} tokens mean {src.mean():.1f} max {src.max()}, "
          f"{'label' if enc_dec else 'target'} tokens mean {tgt.mean():.1f} max {tgt.max()}", flush=True)

    rows = []
    for recipe, run in (("alpaca", run_alpaca), ("ours", run_ours)):
        torch.manual_seed(cfg.seed)  # both recipes start from the same random weights
        model = load_model(cfg.model, family)
        meter = Meter(enc_dec)
        cpu = matmul_flops(reps=4)  # the shared machine's speed just before this run
        t = time.perf_counter()
        run(cfg, model, tokenizer, train_set, warm_set, m, k, steps, meter, tmp)
        print(f"  {recipe:6s} done in {time.perf_counter() - t:.0f} s (threads {torch.get_num_threads()}); "
              f"{load_average()}", flush=True)
        rows.append({"shape": shape, "recipe": recipe, "examples": sorted(meter.examples), "real": meter.real,
                     "padded": meter.padded, "seconds": meter.seconds, "cpu_seconds": meter.cpu_seconds, "flops": flops_per_step(model, meter),
                     "cpu": cpu})
        del model
    if rows[0]["examples"] != rows[1]["examples"] or len(rows[0]["examples"]) != n:
        raise SystemExit(f"{shape}: the two recipes did not train on the same {n} examples")
    if args.plan_steps:
        big = records(args.plan_steps * m * k, words, args.seed + 1, args.max_words).map(tokenize, batched=True)
        rows[0]["plan"], rows[1]["plan"] = plan_padding(big, m, m * k, args.seed, family)
        paper = compose(shape, "experiment=lamini_paper")
        pm, pg = paper.micro_batch_size, paper.global_batch_size
        big = records(args.plan_steps * pg // 20, words, args.seed + 3, args.max_words).map(tokenize, batched=True)
        rows[0]["paper_plan"], rows[1]["paper_plan"] = plan_padding(big, pm, pg, args.seed, family)
        rows[0]["paper_mb"] = (pm, pg, len(big) // pg)
    for r in rows:
        r["tok_s"] = r["real"] / r["seconds"]
        r["tok_cpu_s"] = r["real"] / r["cpu_seconds"]
        r["padding"] = 1 - r["real"] / r["padded"]
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: m=2, k=2, 1 step, texts 1/4 as long")
    p.add_argument("--shapes", default="gpt2,t5_small", help=f"comma-separated, of {', '.join(SHAPES)}")
    p.add_argument("--micro-batch", type=int, default=8, help="m: examples per forward/backward")
    p.add_argument("--accum", type=int, default=8, help="k: micro-batches per optimizer step")
    p.add_argument("--steps", type=int, default=1, help="timed optimizer steps per recipe (after a warm-up step)")
    p.add_argument("--plan-steps", type=int, default=200,
                   help="global batches of m x k in the lengths-only padding estimate (0: skip it)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    args.max_words = MAX_WORDS
    if args.quick:
        args.micro_batch, args.accum, args.steps, args.plan_steps, args.max_words = 2, 2, 1, 20, MAX_WORDS // 4

    import logging

    import datasets
    import lightning.pytorch  # noqa: F401  (sets its loggers' levels on import; quieted below)
    import torch
    from transformers.utils import logging as hf_logging

    torch.set_num_threads(args.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    hf_logging.set_verbosity_error()
    datasets.disable_progress_bars()
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    for message in (".*does not have many workers.*", ".*no `val_dataloader`.*", ".*LeafSpec.*"):
        warnings.filterwarnings("ignore", message)

    from lamini_lm.models.backbone import load_tokenizer

    shapes = [s.strip() for s in args.shapes.split(",") if s.strip()]
    for s in shapes:
        if s not in SHAPES:
            raise SystemExit(f"unknown shape '{s}'; known: {', '.join(SHAPES)}")
    print(f"start: {load_average()}")
    t_start = time.perf_counter()
    words = word_pool([load_tokenizer(compose(s).model) for s in SHAPES])
    print(f"m={args.micro_batch} k={args.accum} (global batch {args.micro_batch * args.accum}), "
          f"{args.steps} timed step(s) per recipe; word pool {len(words)} one-token words", flush=True)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for shape in shapes:
            rows += bench_shape(shape, args, words, tmp)
    # This machine's peak: the best fp32 matmul speed seen (the machine is shared, so the best is the
    # least disturbed); "CPU" shows what the matmul reached just before each recipe ran.
    peak = max([matmul_flops(reps=6)] + [r["cpu"] for r in rows])

    print(f"\nfp32 matmul peak (2048^3, best seen, {args.threads} threads): {peak / 1e9:.1f} GFLOP/s")
    print("MFU = 6 x params x real tokens / time / peak; t5: 6 x (encoder params x encoder tokens + "
          "(decoder params + vocab x d_model) x decoder tokens)")
    print("cores = process CPU seconds / wall seconds of the timed run (< threads: other jobs took the CPU); "
          "tok/CPU-s = real tokens per CPU second, less sensitive to a shared machine's load")
    print(f"\n{'shape':9s} {'recipe':7s} {'real tokens':>11s} {'time s':>7s} {'real tok/s':>10s} "
          f"{'padding':>8s} {'MFU':>6s} {'matmul GFLOP/s':>14s} {'cores':>5s} {'tok/CPU-s':>9s}")
    for r in rows:
        print(f"{r['shape']:9s} {r['recipe']:7s} {r['real']:>11,d} {r['seconds']:>7.1f} {r['tok_s']:>10.1f} "
              f"{r['padding']:>8.1%} {r['flops'] / r['seconds'] / peak:>6.1%} {r['cpu'] / 1e9:>14.1f} "
              f"{r['cpu_seconds'] / r['seconds']:>5.2f} {r['tok_cpu_s']:>9.1f}")
    print()
    for shape in shapes:
        a, o = [r for r in rows if r["shape"] == shape]
        ratio = o["tok_s"] / a["tok_s"]
        print(f"{shape:9s} ours/alpaca real tok/s = {ratio:.2f}x  (target >= 1.7x: {'ok' if ratio >= 1.7 else 'MISSED'}); "
              f"per CPU second {o['tok_cpu_s'] / a['tok_cpu_s']:.2f}x")
    if args.plan_steps:
        print("\npadding share of the plans alone (lengths only, no model), alpaca -> ours:")
        for shape in shapes:
            a, o = [r for r in rows if r["shape"] == shape]
            pm, pg, ps = a["paper_mb"]
            print(f"  {shape:9s} m={args.micro_batch} global {args.micro_batch * args.accum}, {args.plan_steps} steps: "
                  f"{a['plan']:.1%} -> {o['plan']:.1%};  experiment=lamini_paper (m={pm}, global {pg}), "
                  f"{ps} steps: {a['paper_plan']:.1%} -> {o['paper_plan']:.1%}")
    print(f"\nend: {load_average()}; total {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
