"""The training recipes the throughput benchmark compares (the HF Trainer as Alpaca runs it, TRL's SFTTrainer,
ours), the micro-batch plan each one draws, and the meter every recipe's collator reports to."""

from __future__ import annotations

import time

import numpy as np

from bench.live_memory import allocated, peak_meter


class Meter:
    """What the collator hands to the model: real and computed tokens, executed FLOPs; the clock; peak memory.
    ``device`` "cuda": the clock waits for the GPU's queued work before each reading (torch.cuda.synchronize), and
    the memory is the CUDA allocator's (bench/live_memory.py)."""

    def __init__(self, coefficients, head_rows_all: bool, device: str = "cpu"):
        self.coefficients = coefficients  # lamini_lm.training.flops.FlopCoefficients of the model
        self.head_rows_all = head_rows_all  # transformers' own loss projects every row onto the vocabulary
        self.device = device
        self.reset()

    def reset(self, model=None):
        """Before the timed run. With ``model``: the warm-up's gradients and trainer freed first, so that every
        recipe's peak memory is counted over the same baseline (the weights; Lightning frees gradients, the HF
        Trainer zeroes them in place, which would hide them from one recipe's count only)."""
        import gc

        if model is not None:
            model.zero_grad(set_to_none=True)
            gc.collect()
        self.real = self.padded = 0
        self.flops = 0.0
        self.t0 = self.t1 = None
        self.c0 = self.c1 = None  # process CPU time (all threads): how much of the cores this run really got
        self._sync()
        self.live0, self.live_peak = allocated(self.device), 0
        self._sampler = None

    def _sync(self) -> None:
        """On a GPU: wait for the work queued so far, so that the clock reads when it is done."""
        if self.device != "cpu":
            import torch

            torch.cuda.synchronize()

    def start(self) -> None:
        if self.t0 is None:
            self._sync()
            if self.device != "cpu":  # the baseline once the weights are on the GPU: Lightning moves them back to
                self.live0 = allocated(self.device)  # the CPU after a fit (the warm-up's), the HF Trainer does not
            self.t0, self.c0 = time.perf_counter(), time.process_time()
            self._sampler = peak_meter(self.device)

    def stop(self) -> None:
        """Before the optimizer step: timed are the micro-batches' data, forward and backward (a step of 1024
        examples spends ~1/128 of its time in AdamW, a step of a few timed micro-batches far more)."""
        self._sync()
        self.t1, self.c1 = time.perf_counter(), time.process_time()
        self.live_peak = self._sampler.close()

    def count(self, batch) -> None:
        ids, labels = batch["input_ids"], batch["labels"]
        # a packed row (ours, TRL padding_free) has no attention mask: every token is real
        self.real += int(batch["attention_mask"].sum()) if "attention_mask" in batch else ids.numel()
        self.padded += ids.numel()
        if self.coefficients.encoder_layers:  # the labels are a second, decoder-side sequence
            self.real += int((labels != -100).sum())
            self.padded += labels.numel()
        self.flops += self.coefficients.of_batch(batch, head_rows=labels.numel() if self.head_rows_all else None)

    @property
    def seconds(self) -> float:
        return self.t1 - self.t0

    @property
    def cpu_seconds(self) -> float:
        return self.c1 - self.c0


# -- micro-batch plans: which examples each recipe puts together ------------------------------------------
def spaced(plan: list, n: int) -> list:
    """n micro-batches evenly spread over ``plan`` (a sorted plan: short, middle and long ones alike)."""
    return [plan[(2 * j + 1) * len(plan) // (2 * n)] for j in range(n)]


def random_plan(n_examples: int, m: int, seed: int) -> list[list[int]]:
    order = np.random.default_rng(seed).permutation(n_examples).tolist()
    return [order[i:i + m] for i in range(0, n_examples - m + 1, m)]


def grouped_plan(lengths, m: int, k: int, seed: int) -> list[list[int]]:
    """transformers' train_sampling_strategy="group_by_length" (the sampler TRL's SFTTrainer uses): random
    mega-batches of up to 50 x m x k examples, each sorted by length, cut into micro-batches of m."""
    import torch
    from transformers.trainer_pt_utils import get_length_grouped_indices

    order = get_length_grouped_indices(list(lengths), m * k, generator=torch.Generator().manual_seed(seed))
    return [order[i:i + m] for i in range(0, len(order) - m + 1, m)]


def ours_plan(dataset, m: int, global_batch: int, seed: int, family, packed: bool):
    """The first global batch of our GlobalBatchSampler, as InstructionDataModule cuts it (``packed``: by tokens,
    else sorted and by count): its micro-batches, each carrying the step normaliser."""
    from lamini_lm.data.batching import GlobalBatchSampler

    src, tgt = dataset["source_length"], dataset["target_length"]
    row_tokens = list(map(family.row_tokens, src, tgt)) if packed else None
    sampler = GlobalBatchSampler(src, tgt, global_batch_size=global_batch, micro_batch_size=m, seed=seed,
                                 order=family.order, row_tokens=row_tokens, pack_limit=family.pack_limit)
    return sampler.plan(0)


def plan_padding(dataset, plan, enc_dec: bool, packed: bool = False, pack_limit: int | None = None) -> float:
    """Padding share of a plan, from the lengths alone: every micro-batch padded, or ``packed`` where its row fits
    ``pack_limit`` (Family.pack_limit), as lamini_lm.data.collate.Collate does."""
    src = np.array(dataset["source_length"])
    tgt = np.array(dataset["target_length"]) if enc_dec else np.zeros_like(src)
    real = sum(src[b].sum() + tgt[b].sum() for b in map(np.array, plan))

    def computed(b):
        if packed and (pack_limit is None or max(src[b].sum(), tgt[b].sum()) <= pack_limit):
            return src[b].sum() + tgt[b].sum()
        return len(b) * (src[b].max() + tgt[b].max())
    return 1 - real / sum(computed(b) for b in map(np.array, plan))


# -- the recipes ------------------------------------------------------------------------------------
def _hf_args(cfg, tmp, m, accum, device="cpu", **extra):
    """TrainingArguments of one timed (or warm-up) step, in the precision ours runs in: on a GPU bf16=True, the mixed
    precision of our trainer=gpu (bf16-mixed); on the CPU bf16=False, fp32 as conf/trainer/cpu.yaml (SFTConfig
    defaults to bf16=True, CPU autocast included: the CPU measurements before 2026-12-07 ran TRL so)."""
    o = cfg.optim
    extra = dict(extra, bf16=device != "cpu")
    return dict(output_dir=tmp, per_device_train_batch_size=m, gradient_accumulation_steps=accum, max_steps=1,
                train_sampling_strategy="sequential", learning_rate=o.lr, weight_decay=o.weight_decay,
                adam_beta1=o.betas[0], adam_beta2=o.betas[1], adam_epsilon=o.eps, lr_scheduler_type=o.scheduler,
                max_grad_norm=cfg.trainer.gradient_clip_val, seed=cfg.seed, use_cpu=device == "cpu",
                dataloader_num_workers=0, report_to="none", save_strategy="no", eval_strategy="no",
                logging_strategy="no", disable_tqdm=True, **extra)


def run_hf(kind, cfg, model, tokenizer, pool, micro_batches, warm, meter: Meter, tmp: str, teacher=None):
    """The HF Trainer (Alpaca's recipe), TRL's SFTTrainer or (``trl_gkd``, with ``teacher``) TRL's GKDTrainer on
    exactly ``micro_batches`` (sampling sequential: the plan of the sampler each recipe uses was drawn beforehand,
    see grouped_plan / random_plan), on the meter's device."""
    from transformers import DataCollatorForSeq2Seq, PrinterCallback, Trainer, TrainerCallback, TrainingArguments

    class Clock(TrainerCallback):
        def on_epoch_begin(self, args, state, control, **kw):
            meter.start()

        def on_pre_optimizer_step(self, args, state, control, **kw):
            meter.stop()

    m = len(micro_batches[0])

    def counting(pad):
        def collate(features):
            batch = pad(features)
            meter.count(batch)
            return batch
        return collate

    def trainer(dataset, accum):
        if kind == "alpaca":
            pad = DataCollatorForSeq2Seq(tokenizer, padding="longest", label_pad_token_id=-100)
            args = TrainingArguments(**_hf_args(cfg, tmp, m, accum, meter.device))
            return Trainer(model=model, args=args, train_dataset=dataset, data_collator=counting(pad),
                           callbacks=[Clock()])
        if kind == "trl_gkd":
            from trl.experimental.gkd import GKDConfig, GKDTrainer

            # off-policy (lmbda=0: the dataset's responses, as our objective=online_kd with lmbda 0), GKD's
            # generalized JSD with beta 0.5 (its default), padded micro-batches of the plan, TRL's fastest settings
            # as for trl_grouped; the prompt is -100 in the labels, which GKD's loss masks
            pad = DataCollatorForSeq2Seq(tokenizer, padding="longest", label_pad_token_id=-100)
            args = GKDConfig(**_hf_args(cfg, tmp, m, accum, meter.device), lmbda=0.0, beta=0.5, temperature=1.0,
                             max_length=None, gradient_checkpointing=False)
            return GKDTrainer(model=model, teacher_model=teacher, args=args, train_dataset=dataset,
                              processing_class=tokenizer, data_collator=counting(pad), callbacks=[Clock()])
        from trl import SFTConfig, SFTTrainer

        # the prompt is already -100 in the labels (completion-only loss); no packing across examples
        # TRL's fastest: gradient_checkpointing off (TRL 1.16 defaults it on: trl_grouped_ckpt, less memory, slower)
        # trl_grouped_compiled: TrainingArguments' torch_compile (the whole model, torch.compile's defaults)
        args = SFTConfig(**_hf_args(cfg, tmp, m, accum, meter.device), padding_free=kind == "trl_padding_free",
                         max_length=None, gradient_checkpointing=kind == "trl_grouped_ckpt",
                         torch_compile=kind.endswith("_compiled"))
        t = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer, callbacks=[Clock()])
        t.data_collator = counting(t.data_collator)  # TRL's own collator (it refuses another one when padding-free)
        return t

    columns = ["input_ids", "labels"]
    t = trainer(warm.select_columns(columns), 1)
    t.remove_callback(PrinterCallback)
    t.train()
    del t
    meter.reset(model)
    t = trainer(pool.select([i for mb in micro_batches for i in mb]).select_columns(columns), len(micro_batches))
    t.remove_callback(PrinterCallback)
    t.train()


def run_ours(cfg, model, tokenizer, pool, micro_batches, warm, meter: Meter, tmp: str, family, packing: str,
             objective=None, columns: dict | None = None):
    """Our path (src/lamini_lm/training/run.py): TokenizedSet + Collate (data.packing as configured) + the family's
    LightningModule under the Trainer of ``cfg.trainer`` (conf/trainer/cpu.yaml; on a GPU trainer=gpu, bf16-mixed),
    on exactly ``micro_batches``; its loss the ``objective``'s (None: the sequence NLL), the per-target ``columns``
    it reads (name -> width, Columns.widths) carried by the collate from ``pool`` and ``warm``."""
    import lightning.pytorch as pl
    from hydra.utils import instantiate

    from lamini_lm.data.batching import MicroBatch, make_loader
    from lamini_lm.data.collate import Collate, TokenizedSet
    from lamini_lm.models.attention import packs

    real_collate = Collate(tokenizer.pad_token_id, separate_labels=family.separate_labels,
                           packed=packing == "padding_free" and family.can_pack and packs(model),
                           pack_limit=family.pack_limit, columns=columns or {})

    def collate(item):
        batch = real_collate(item)
        meter.count(batch)
        return batch

    class Clock(pl.Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            meter.start()

        def on_before_optimizer_step(self, trainer, pl_module, optimizer):
            meter.stop()

    class Plan:  # a fixed list of micro-batches in place of the GlobalBatchSampler
        def __init__(self, batches):
            self.batches, self.skip = batches, 0

        def __iter__(self):
            return iter(self.batches)

        def __len__(self):
            return len(self.batches)

    module = family.module(model, cfg.model, cfg.optim, tokenizer, objective)

    def fit(dataset, batches):
        trainer = instantiate(cfg.trainer, logger=False, callbacks=[Clock()], max_steps=1,
                              accumulate_grad_batches=len(batches), enable_checkpointing=False,
                              enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                              default_root_dir=tmp)
        trainer.fit(module, train_dataloaders=make_loader(TokenizedSet(dataset, list(columns or {})), Plan(batches),
                                                          collate))

    warm_tokens = sum(warm["target_length"])
    fit(warm, [MicroBatch(range(len(warm)), warm_tokens)])
    meter.reset(model)
    fit(pool, micro_batches)


def made_up_top_k(pool, family, vocab: int, k: int, exact: bool, seed: int):
    """``pool`` with token_kd's per-target columns (alignment.TopKColumns' layout) of a made-up teacher: k
    alternatives per target token (``family.target_positions``), drawn from the student's vocabulary (``exact``: with
    their ids), probabilities from a Dirichlet with 5% left to the rest; the EOS without one, as in real data. The
    values do not change the work."""
    def add(batch, indices):
        out = {"kd_logprobs": [], **({"kd_ids": []} if exact else {})}
        for i, labels in zip(indices, batch["labels"]):
            rng = np.random.default_rng([seed, i])
            n = len(family.target_positions(labels))
            lp = np.log(np.sort(rng.dirichlet(np.ones(k), n) * 0.95, -1)[:, ::-1]).astype(np.float16)
            lp[-1:] = -np.inf  # the EOS: no teacher distribution
            out["kd_logprobs"].append(lp.reshape(-1))
            if exact:
                out["kd_ids"].append(rng.integers(0, vocab, n * k).astype(np.int32))
        return out
    return pool.map(add, batched=True, with_indices=True)


def no_dropout(model) -> None:
    """Every dropout of ``model`` off: its nn.Dropout modules (GPT-2's attention reads its rate from one) and the
    float rate T5's attention hands to SDPA."""
    import torch

    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
        elif isinstance(getattr(module, "dropout", None), float):
            module.dropout = 0.0
