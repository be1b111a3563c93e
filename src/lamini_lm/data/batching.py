"""Global batches, split into length-grouped micro-batches, with a loss normaliser per optimizer step.

The paper trains with a global batch of 1024 examples whatever the hardware. One optimizer step sees
``global_batch_size`` examples drawn at random; they are cut into ``accumulation x world_size``
micro-batches of ``micro_batch_size``. Because the loss of every micro-batch is divided by the number
of target tokens of the *whole global batch* (carried with each micro-batch as ``step_target_tokens``),
the gradient of a step does not depend on how the global batch is cut. So we are free to cut it by
length: sorting a global batch before cutting it removes most padding (one long P3/FLAN prompt no
longer sets the width of a whole random batch) without changing what is optimised. A packed micro-batch
(data.packing=padding_free) has no padding to save, so its global batch is cut by tokens instead: every
micro-batch about as long as the others, however many examples that takes (``token_cut``).

Every rank computes the same plan from (seed, epoch) and takes its own micro-batches, so no
DistributedSampler is needed. The plan is resumable mid-epoch: the loader's state is how many
micro-batches of the epoch this rank has handed to the training loop.
"""

from __future__ import annotations

import heapq
import random
import signal
from collections.abc import Callable, Iterator, Sequence

import torch
from torch.utils.data import DataLoader

from lamini_lm.data.collate import fits
from lamini_lm.errors import UserError


def micro_batch(global_batch_size: int, micro_batch_size: int | None, world_size: int) -> int:
    """The run's micro-batch: ``micro_batch_size`` as configured, or (None) the global batch split evenly over the
    devices, one pass per device per step."""
    if micro_batch_size is not None:
        return micro_batch_size
    if global_batch_size % world_size:
        raise UserError(f"global_batch_size={global_batch_size} does not split over devices x nodes={world_size}: "
                        "give a global_batch_size that does, or set micro_batch_size")
    return global_batch_size // world_size


def accumulation_steps(global_batch_size: int, micro_batch_size: int, world_size: int) -> int:
    """Gradient-accumulation steps that make ``global_batch_size`` examples per optimizer step."""
    per_pass = micro_batch_size * world_size
    if global_batch_size <= 0 or micro_batch_size <= 0 or global_batch_size % per_pass:
        raise UserError(
            f"global_batch_size={global_batch_size} is not a multiple of micro_batch_size={micro_batch_size} "
            f"x devices x nodes={world_size} (= {per_pass} examples per pass): change micro_batch_size, "
            "global_batch_size or the device count so that it divides"
        )
    return global_batch_size // per_pass


def token_cut(batch: list[int], tokens: Sequence[int], n: int) -> list[list[int]]:
    """``batch`` cut into ``n`` micro-batches of near-equal ``tokens``: the longest example first, each into the
    micro-batch with the fewest tokens so far (longest-processing-time first). The largest micro-batch never holds
    more tokens than the ``len(batch) // n`` longest examples together, the last micro-batch of a count cut of the
    sorted batch, so peak memory is never higher than that cut's. (Proof: let x be the last example put into the
    largest micro-batch, which held L tokens then, the fewest of any. Fewer than len(batch) examples had been placed,
    each at least as long as x, so some micro-batch held c < len(batch) // n of them and at least L tokens: L + x is
    at most the c + 1 longest examples together.)"""
    micros: list[list[int]] = [[] for _ in range(n)]
    lightest = [(0, m) for m in range(n)]  # (tokens, micro-batch): a heap
    for i in sorted(batch, key=lambda i: -tokens[i]):
        load, m = heapq.heappop(lightest)
        micros[m].append(i)
        heapq.heappush(lightest, (load + tokens[i], m))
    return micros


class MicroBatch(list):
    """Dataset indices of one micro-batch, with the target-token count of its whole global batch."""

    def __init__(self, indices: Sequence[int], step_target_tokens: int):
        super().__init__(indices)
        self.step_target_tokens = step_target_tokens

    def __reduce__(self):  # keep the attribute when sent to DataLoader workers
        return (MicroBatch, (list(self), self.step_target_tokens))


class GlobalBatchSampler:
    """Yields this rank's micro-batches, ``accumulation`` per optimizer step, epoch after epoch.

    ``source_lengths``/``target_lengths`` are per example. Within a global batch, examples are put in
    the order ``order(batch, source_lengths, target_lengths, micro_batch_size)`` gives (the model family's
    ``Family.order``: by length, so micro-batches waste little padding); None keeps the random order.
    ``row_tokens`` (per example, what it adds to a packed micro-batch: ``Family.row_tokens``) cuts every global
    batch by tokens instead (``token_cut``): still ``accumulation`` micro-batches per rank and step, each
    ``micro_batch_size`` examples on average. A global batch whose token cut makes a micro-batch too long for the
    family's ``pack_limit`` (the collator would pad it, and a mix of lengths wastes more padding than a sorted cut)
    is cut by count as above. An incomplete last global batch is left out (why: data/datamodule.py, left_out).
    """

    def __init__(self, source_lengths: Sequence[int], target_lengths: Sequence[int], *, global_batch_size: int,
                 micro_batch_size: int, world_size: int = 1, rank: int = 0, seed: int = 0,
                 order: Callable[[list[int], Sequence[int], Sequence[int], int], list[int]] | None = None,
                 row_tokens: Sequence[int] | None = None, pack_limit: int | None = None):
        self.accumulation = accumulation_steps(global_batch_size, micro_batch_size, world_size)
        if len(source_lengths) < global_batch_size:
            raise UserError(
                f"the training split has {len(source_lengths)} examples, fewer than one global batch "
                f"({global_batch_size}): lower global_batch_size or add data"
            )
        self.source_lengths = list(source_lengths)
        self.target_lengths = list(target_lengths)
        self.global_batch_size = global_batch_size
        self.micro_batch_size = micro_batch_size
        self.world_size = world_size
        self.rank = rank
        self.seed = seed
        self.order = order
        self.row_tokens = None if row_tokens is None else list(row_tokens)
        self.pack_limit = pack_limit
        self.epoch = 0
        self.skip = 0  # micro-batches of the current epoch to skip (set when resuming mid-epoch)

    def set_epoch(self, epoch: int) -> None:  # called by Lightning at the start of every epoch
        self.epoch = epoch

    @property
    def steps_per_epoch(self) -> int:
        return len(self.source_lengths) // self.global_batch_size

    def __len__(self) -> int:
        return self.steps_per_epoch * self.accumulation

    def plan(self, epoch: int) -> list[list[MicroBatch]]:
        """Per optimizer step, this rank's micro-batches (identical on every rank for a given epoch)."""
        shuffled = list(range(len(self.source_lengths)))
        random.Random(self.seed * 100_003 + epoch).shuffle(shuffled)
        steps = []
        n_micro = self.global_batch_size // self.micro_batch_size
        for s in range(self.steps_per_epoch):
            batch = shuffled[s * self.global_batch_size:(s + 1) * self.global_batch_size]
            total = sum(self.target_lengths[i] for i in batch)
            micros = None if self.row_tokens is None else token_cut(batch, self.row_tokens, n_micro)
            if micros is None or not all(self._packs(mb) for mb in micros):
                if self.order is not None:
                    batch = self.order(batch, self.source_lengths, self.target_lengths, self.micro_batch_size)
                micros = [batch[m * self.micro_batch_size:(m + 1) * self.micro_batch_size] for m in range(n_micro)]
            # interleave so that every rank gets a similar mix of short and long micro-batches
            steps.append([MicroBatch(micros[m], total) for m in range(self.rank, n_micro, self.world_size)])
        return steps

    def _packs(self, micro: list[int]) -> bool:
        return fits(self.pack_limit, sum(self.source_lengths[i] for i in micro),
                    sum(self.target_lengths[i] for i in micro))

    def __iter__(self) -> Iterator[MicroBatch]:
        flat = [mb for step in self.plan(self.epoch) for mb in step]
        skip, self.skip = self.skip, 0
        yield from flat[skip:]


class ResumableLoader:
    """Mixin for a DataLoader over a GlobalBatchSampler: Lightning saves its state in every checkpoint
    (it calls state_dict/load_state_dict on loaders that have them), so a run killed mid-epoch resumes
    with the next unseen micro-batch instead of replaying the epoch. Lightning does not prefetch from a
    loader of known length, so what this counts is what the training loop has received."""

    _consumed = 0

    def __iter__(self):
        self._consumed = self.batch_sampler.skip
        for batch in super().__iter__():
            self._consumed += 1
            yield batch

    def state_dict(self) -> dict:
        return {"consumed": self._consumed}

    def load_state_dict(self, state: dict) -> None:
        # a checkpoint from an epoch's end (consumed == len) resumes at the next epoch's start
        self.batch_sampler.skip = state["consumed"] % len(self.batch_sampler)


def ignore_stop_signals(worker_id: int) -> None:
    """A DataLoader worker's start: SIGINT and SIGTERM reach the whole process group (Ctrl-C, a scheduler), and a
    worker ended by one turns the main process's orderly stop (training/stop.py) into "DataLoader worker ... killed
    by signal"; the worker ignores them and ends when the main process closes its loader. (It replaces Lightning's
    worker seeding, which workers that only read and collate do not need.)"""
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, signal.SIG_IGN)


def make_loader(dataset, batch_sampler: GlobalBatchSampler, collate_fn, num_workers: int = 0):
    class _Loader(ResumableLoader, DataLoader):
        pass

    # Its own generator: starting an iterator draws its workers' seed from it, and from the global RNG that draw would
    # shift the dropout masks of every later step by where iterators start (each epoch, each validation), which a
    # resume from an epoch's end cannot repeat (the checkpoint's RNG state is restored at the next training batch)
    return _Loader(dataset, batch_sampler=batch_sampler, collate_fn=collate_fn, num_workers=num_workers,
                   persistent_workers=False, pin_memory=False, generator=torch.Generator(),
                   worker_init_fn=ignore_stop_signals)
