import random

import pytest

from lamini_lm.data.batching import GlobalBatchSampler, accumulation_steps, token_cut
from lamini_lm.errors import UserError
from lamini_lm.models.families import DecoderOnly, EncoderDecoder


def test_accumulation_is_derived_from_global_batch_and_devices():
    assert accumulation_steps(1024, 16, 8) == 8          # 8 GPUs
    assert accumulation_steps(1024, 16, 16) == 4         # 2 nodes x 8 GPUs
    assert accumulation_steps(1024, 128, 8) == 1
    with pytest.raises(UserError, match="not a multiple of micro_batch_size=24"):
        accumulation_steps(1024, 24, 8)


def _lengths(n, seed=0):
    r = random.Random(seed)
    src = [min(512, int(r.lognormvariate(3.7, 0.8))) for _ in range(n)]
    tgt = [min(512, int(r.lognormvariate(3.3, 0.8))) + 1 for _ in range(n)]
    return src, tgt


@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
@pytest.mark.parametrize("family", [DecoderOnly(), EncoderDecoder()], ids=repr)
def test_ranks_partition_every_global_batch(family, packed):
    src, tgt = _lengths(1000)
    world = 4
    row_tokens = list(map(family.row_tokens, src, tgt)) if packed else None
    samplers = [GlobalBatchSampler(src, tgt, global_batch_size=64, micro_batch_size=4, world_size=world, rank=r,
                                   seed=7, order=family.order, row_tokens=row_tokens) for r in range(world)]
    plans = [s.plan(epoch=3) for s in samplers]
    assert all(len(p) == 1000 // 64 for p in plans)
    seen = []
    for step in range(len(plans[0])):
        batch = [i for p in plans for mb in p[step] for i in mb]
        assert len(batch) == len(set(batch)) == 64
        total = sum(tgt[i] for i in batch)
        # every micro-batch of the step carries the same normaliser: the whole global batch's targets
        assert {mb.step_target_tokens for p in plans for mb in p[step]} == {total}
        assert all(len(p[step]) == samplers[0].accumulation == 4 for p in plans)
        seen += batch
    assert len(set(seen)) == len(seen) == (1000 // 64) * 64


def test_epochs_reshuffle_and_plans_are_reproducible():
    src, tgt = _lengths(200)
    s = GlobalBatchSampler(src, tgt, global_batch_size=32, micro_batch_size=8, seed=1)
    assert s.plan(0) == s.plan(0)
    assert s.plan(0) != s.plan(1)


def _padding_share(plan, lengths):
    real = padded = 0
    for step in plan:
        for mb in step:
            real += sum(lengths[i] for i in mb)
            padded += len(mb) * max(lengths[i] for i in mb)
    return 1 - real / padded


def test_length_grouping_cuts_padding_without_changing_the_global_batches():
    src, tgt = _lengths(4096)
    kw = dict(global_batch_size=256, micro_batch_size=8, seed=3)
    grouped = GlobalBatchSampler(src, tgt, order=DecoderOnly().order, **kw).plan(0)
    plain = GlobalBatchSampler(src, tgt, **kw).plan(0)
    for g, p in zip(grouped, plain):
        assert sorted(i for mb in g for i in mb) == sorted(i for mb in p for i in mb)
    assert _padding_share(plain, src) > 0.4
    assert _padding_share(grouped, src) < 0.1


def test_packed_global_batches_are_cut_into_micro_batches_of_even_tokens():
    # a packed row has no padding to save: its micro-batches hold the same global batch, cut by tokens, and the
    # largest is never longer than the count cut's longest (the m longest examples): peak memory never rises
    src, tgt = _lengths(4096)
    kw = dict(global_batch_size=256, micro_batch_size=8, seed=3)
    by_count = GlobalBatchSampler(src, tgt, order=DecoderOnly().order, **kw).plan(0)
    by_tokens = GlobalBatchSampler(src, tgt, row_tokens=src, **kw).plan(0)
    for c, t in zip(by_count, by_tokens):
        assert sorted(i for mb in c for i in mb) == sorted(i for mb in t for i in mb)
        assert len(t) == len(c) == 256 // 8
        count_rows, token_rows = ([sum(src[i] for i in mb) for mb in step] for step in (c, t))
        mean = sum(token_rows) / len(token_rows)
        assert max(count_rows) > 1.5 * mean  # LaMini-like lengths: the sorted cut's last row is long
        longest = max(src[i] for mb in t for i in mb)  # a micro-batch holds at least one example
        assert max(token_rows) <= min(max(count_rows), max(1.1 * mean, longest))
        assert len({len(mb) for mb in t}) > 1  # as many examples as the tokens take


def test_the_token_cut_never_makes_a_micro_batch_longer_than_the_m_longest_examples():
    r = random.Random(0)
    for _ in range(3000):
        n, m = r.randint(1, 6), r.randint(1, 5)
        tokens = [r.randint(1, r.choice([2, 5, 20, 500])) for _ in range(n * m)]
        micros = token_cut(list(range(n * m)), tokens, n)
        assert sorted(i for mb in micros for i in mb) == list(range(n * m)) and all(micros)
        assert max(sum(tokens[i] for i in mb) for mb in micros) <= sum(sorted(tokens)[-m:])


def test_skip_resumes_mid_epoch_at_the_next_micro_batch():
    src, tgt = _lengths(100)
    s = GlobalBatchSampler(src, tgt, global_batch_size=20, micro_batch_size=5, seed=0)
    full = list(s)
    s.skip = 7
    assert list(s) == full[7:]
    assert list(s) == full  # the skip applies once


def test_too_little_data_for_one_global_batch_is_a_clear_error():
    with pytest.raises(UserError, match="fewer than one global batch"):
        GlobalBatchSampler([5] * 10, [5] * 10, global_batch_size=16, micro_batch_size=8)


def test_validation_copies_of_training_records_are_counted():
    from datasets import Dataset

    from lamini_lm.data.datamodule import _duplicates

    train = Dataset.from_dict({"instruction": ["a", "b", "c", "a"], "response": ["1", "2", "3", "9"]})
    val = Dataset.from_dict({"instruction": ["a", "a", "b", "d", "c"], "response": ["1", "7", "2", "4", "3"]})
    assert _duplicates(val, train) == 3  # (a, 1), (b, 2), (c, 3); (a, 7) shares only the instruction
    assert _duplicates(val.select([3]), train) == 0


@pytest.mark.parametrize("records, left", [(14, 6), (16, 0)])
def test_the_records_an_incomplete_last_global_batch_leaves_out_are_counted(records, left):
    from datasets import Dataset

    from lamini_lm.data.datamodule import InstructionDataModule

    dm = InstructionDataModule.__new__(InstructionDataModule)  # the split and the counts only, no tokenizer
    dm.global_batch_size, dm.dropped_empty, dm.val_duplicates = 8, 0, 0
    dm.train_set = Dataset.from_dict({"instruction": ["x"] * records})
    assert dm.counts() == {"data/dropped_empty": 0, "data/left_out_per_epoch": left, "data/val_duplicates_of_train": 0}
    sampler = GlobalBatchSampler([5] * records, [5] * records, global_batch_size=8, micro_batch_size=4)
    assert len([i for mb in sampler for i in mb]) == records - left  # what one epoch trains
