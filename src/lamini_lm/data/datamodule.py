"""The LightningDataModule: load records, tokenise (cached), split, and batch by the global-batch plan."""

from __future__ import annotations

import logging
import math

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader

from lamini_lm.data.batching import GlobalBatchSampler, ignore_stop_signals, make_loader
from lamini_lm.data.collate import Collate, TokenizedSet
from lamini_lm.data.tokenization import Tokenize
from lamini_lm.errors import UserError
from lamini_lm.models.families import Family
from lamini_lm.prompts import PromptStyle

log = logging.getLogger(__name__)


class InstructionDataModule(pl.LightningDataModule):
    def __init__(self, reader, tokenizer, style: PromptStyle, family: Family, *, global_batch_size: int,
                 micro_batch_size: int, val_size: float | int, max_source_length: int, max_target_length: int,
                 mask_prompt: bool = True, seed: int = 42, num_workers: int = 0, context: int | None = None,
                 packing: str = "padded", objective=None):
        super().__init__()
        self.reader, self.tokenizer, self.style, self.family = reader, tokenizer, style, family
        self.global_batch_size, self.micro_batch_size = global_batch_size, micro_batch_size
        self.val_size, self.seed, self.num_workers = val_size, seed, num_workers
        self.tokenize = Tokenize(tokenizer, style, family, max_source_length, max_target_length, mask_prompt, context)
        self.collate = Collate(tokenizer.pad_token_id, separate_labels=family.separate_labels,
                               packed=packing == "padding_free" and family.can_pack, pack_limit=family.pack_limit)
        self.objective = objective  # the training objective, which may add per-target columns (None: none)
        self.train_set = self.val_set = None
        self.dropped_empty = self.val_duplicates = 0

    def _tokenized(self):
        ds = self.reader.load()
        # an empty instruction or response teaches nothing (or to answer nothing): dropped, and counted in
        # the run's metrics.json (data/dropped_empty)
        kept = ds.filter(_has_text, input_columns=["instruction", "response"], desc="drop empty")
        self.dropped_empty = len(ds) - len(kept)
        if not len(kept):
            raise UserError(f"every one of the {len(ds)} records has an empty instruction or response (data.path)")
        if self.objective is not None and self.tokenize.columns is None:  # once: prepare_data, then setup
            self.tokenize.columns = self.objective.columns(kept, self.tokenizer, self.family,
                                                           getattr(self.reader, "path", None))
            self.collate.columns = self.tokenize.columns.widths if self.tokenize.columns else {}
        return kept.map(self.tokenize, batched=True, desc="tokenize")

    def prepare_data(self) -> None:
        self._tokenized()  # local rank 0 fills the datasets cache; the other ranks read it in setup()

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        ds = self._tokenized()
        split = ds.train_test_split(test_size=_val_count(self.val_size, len(ds)), seed=self.seed)
        self.train_set, self.val_set = split["train"], split["test"]
        if self.trainer is not None and not self.trainer.is_global_zero:
            return  # rank 0 says it, once
        n, left = len(self.train_set), self.left_out
        if left:
            log.info("%d of the %d training records do not fill a last global batch of %d: each epoch leaves %d out "
                     "(others each epoch: the order is reshuffled); counted in metrics.json (data/left_out_per_epoch); "
                     "a global_batch_size that divides %d trains them all", left, n, self.global_batch_size, left, n)
        self.val_duplicates = _duplicates(self.val_set, self.train_set)
        if self.val_duplicates:
            log.warning("%d of the %d validation records are exact copies (same instruction and response) of "
                        "training records, so val/loss partly measures recall of training data; counted in "
                        "metrics.json (data/val_duplicates_of_train); remove the duplicates from the data",
                        self.val_duplicates, len(self.val_set))

    @property
    def left_out(self) -> int:
        """Training records each epoch leaves out: an incomplete last global batch is not trained. HF Trainer (the
        paper's, dataloader_drop_last=False) trains it as one smaller step, but then that step's update, as large as
        any other's at the same learning rate, rests on fewer examples than the recipe's batch size; and the split
        across devices and accumulation steps would be uneven, some micro-batches empty. Left out, it is at most
        global_batch_size - 1 records of an epoch (at the paper's scale, <1024 of 2.58M), a different set each epoch,
        so a record is missed by all of the paper's 5 epochs with odds of (left_out / records)^5."""
        return len(self.train_set) % self.global_batch_size

    def counts(self) -> dict:
        """What the data lost or repeats, for metrics.json."""
        return {"data/dropped_empty": self.dropped_empty, "data/left_out_per_epoch": self.left_out,
                "data/val_duplicates_of_train": self.val_duplicates}

    @property
    def steps_per_epoch(self) -> int:
        """Optimizer steps per epoch (an incomplete last global batch is dropped)."""
        return len(self.train_set) // self.global_batch_size

    def train_dataloader(self):
        trainer = self.trainer
        src, tgt = self.train_set["source_length"], self.train_set["target_length"]
        # packed rows have no padding to save by sorting: they are cut into micro-batches of even tokens instead
        row_tokens = list(map(self.family.row_tokens, src, tgt)) if self.collate.packed else None
        sampler = GlobalBatchSampler(
            src, tgt, global_batch_size=self.global_batch_size, micro_batch_size=self.micro_batch_size,
            world_size=trainer.world_size if trainer else 1, rank=trainer.global_rank if trainer else 0,
            seed=self.seed, order=self.family.order, row_tokens=row_tokens, pack_limit=self.family.pack_limit,
        )
        return make_loader(TokenizedSet(self.train_set, self.collate.columns), sampler, self.collate, self.num_workers)

    def val_dataloader(self):
        # every rank scores the whole (small) validation split, sorted by length to waste no padding; its loss is the
        # NLL whatever the objective, so no objective's columns are read
        lengths = self.val_set["source_length"]
        order = sorted(range(len(lengths)), key=lengths.__getitem__)
        batches = [order[i:i + self.micro_batch_size] for i in range(0, len(order), self.micro_batch_size)]
        # its own generator and quiet workers: see make_loader
        return DataLoader(TokenizedSet(self.val_set), batch_sampler=batches, collate_fn=self.collate,
                          num_workers=self.num_workers, generator=torch.Generator(), worker_init_fn=ignore_stop_signals)

    def val_instructions(self, n: int) -> list[str]:
        return self.val_set.select(range(min(n, len(self.val_set))))["instruction"]


def _val_count(val_size: float | int, n: int) -> int:
    """The validation records of ``n``: a count as given, a fraction rounded up (as datasets' train_test_split
    rounds it, which then splits identically). DataSpec made it positive; here, once the records are known, at
    least one must be left to train on."""
    n_val = math.ceil(val_size * n) if isinstance(val_size, float) else val_size
    if n_val >= n:
        fix = f"set a smaller fraction or a count from 1 to {n - 1}" if n > 1 else "give more records (data.path)"
        raise UserError(f"data.val_size={val_size} takes {n_val} of the {n} records for validation and leaves none "
                        f"to train on: {fix}")
    return n_val


def _duplicates(val, train) -> int:
    """Validation records whose (instruction, response) is also a training record's: the training split is read in
    chunks, matched on the instruction in Arrow, and only those candidates are compared as pairs in Python."""
    import pyarrow as pa
    import pyarrow.compute as pc

    columns = ["instruction", "response"]
    pairs = list(zip(val["instruction"], val["response"]))
    instructions = pa.array([i for i, _ in pairs], pa.string())
    seen: set[tuple[str, str]] = set()
    for chunk in train.select_columns(columns).with_format("arrow").iter(batch_size=50_000):
        hits = chunk.filter(pc.is_in(chunk["instruction"], value_set=instructions))
        seen.update(zip(hits["instruction"].to_pylist(), hits["response"].to_pylist()))
    return sum(p in seen for p in pairs)


def _has_text(instruction: str, response: str) -> bool:
    return bool(instruction.strip() and response.strip())
