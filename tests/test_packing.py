"""data.packing=padding_free: a micro-batch packed into one row gives every example the loss it has alone."""

import pytest

from lamini_lm import config
from lamini_lm.data.collate import Collate
from lamini_lm.data.tokenization import Tokenize
from lamini_lm.models.backbone import build_family, load_model, load_tokenizer
from lamini_lm.models.families import IGNORE_INDEX
from lamini_lm.models.spec import ModelSpec

RECORDS = {
    "instruction": ["Name a colour.", "Give the capital of France and explain briefly why it matters so much.",
                    "Say hi.", "Add 2 and 3, then explain how addition works to a child in a few words."],
    "response": ["Blue.", "Paris, the seat of government.", "Hi!", "5: put two and three things together."],
}

# float64 makes the comparison one of summation order only (packed vs alone run different kernel shapes): measured
# <= 1e-15 relative here; 1e-9 holds on any x86 instruction set and thread count. Dropping the position ids (the
# examples then attend to each other, trl #1230) moves the loss by >= 7e-6 (tiny random models attend almost
# uniformly). transformers' own sdpa and eager masks over a packed row missed by up to 4e-4 here (tiny_gpt2 sdpa,
# tiny_gpt_neo eager), which is why packing needs a varlen attention (lamini_lm.models.attention.packs).
RTOL = 1e-9


def _setup(model_name, mask_prompt, *overrides):
    import torch

    spec = config.typed(config.compose("train", [f"model={model_name}", *overrides]).model, ModelSpec, "model")
    assert spec.attn_implementation == "sdpa_varlen"  # the decoder-only and T5 default
    family = build_family(spec)
    torch.manual_seed(0)
    model = load_model(spec, family).to(torch.float64).eval()  # eval: no dropout
    tok = load_tokenizer(spec)
    rows = Tokenize(tok, family.style(), family, 512, 512, mask_prompt)(RECORDS)
    return family, model, tok, {"input_ids": rows["input_ids"], "labels": rows["labels"]}


def _only(rows, i):
    """The rows with every example's labels but the i-th masked out."""
    return {"input_ids": rows["input_ids"],
            "labels": [y if j == i else [IGNORE_INDEX] * len(y) for j, y in enumerate(rows["labels"])]}


@pytest.mark.numerics
@pytest.mark.parametrize("model_name,mask_prompt,overrides", [
    ("tiny_gpt2", True, ()),
    ("tiny_gpt2", False, ()),  # every token a target: the example boundaries must not be
    ("tiny_llama", True, ()),  # grouped-query attention, rotary positions
    # T5 and Flan-T5's feed-forward: the inputs in one row, the labels in another; encoder, decoder and
    # cross-attention each within the example, the relative position bias of the example alone, every decoder input
    # starting from the start token
    ("tiny_t5", True, ()),
    ("tiny_t5", True, ("+model.architecture.feed_forward_proj=gated-gelu",)),
])
def test_each_example_in_a_packed_row_has_its_loss_alone(model_name, mask_prompt, overrides):
    import torch

    family, model, tok, rows = _setup(model_name, mask_prompt, *overrides)
    two_rows = family.separate_labels
    packed = Collate(tok.pad_token_id, separate_labels=two_rows, packed=True)
    padded = Collate(tok.pad_token_id, separate_labels=two_rows)
    n = len(rows["input_ids"])
    with torch.no_grad():
        alone = [family.token_nll(model, padded(({k: [v[i]] for k, v in rows.items()}, None))) for i in range(n)]
        in_row = [family.token_nll(model, packed((_only(rows, i), None))) for i in range(n)]
        whole = packed((rows, None))
        assert whole["input_ids"].shape == (1, sum(map(len, rows["input_ids"])))  # one row (each), no padding
        if two_rows:
            assert whole["labels"].shape == (1, sum(map(len, rows["labels"])))
        computed = whole["input_ids"].numel() + (whole["labels"].numel() if two_rows else 0)
        assert whole["real_tokens"] == whole["padded_tokens"] == computed
        total = family.token_nll(model, whole)
        padded_total = family.token_nll(model, padded((rows, None)))
        leaky = family.token_nll(model, {k: whole[k] for k in ("input_ids", "labels")})
    for a, b in zip(alone, in_row):
        assert torch.isclose(a, b, rtol=RTOL, atol=0), (a.item(), b.item())
    assert torch.isclose(total, sum(alone), rtol=RTOL, atol=0)
    assert torch.isclose(total, padded_total, rtol=RTOL, atol=0)  # the same micro-batch padded: the same loss
    # the check can fail: without positions or bounds the examples see each other
    assert (leaky - total).abs() / total > 1e3 * RTOL
    # the step normaliser (when no plan gives it) does not depend on the packing
    assert whole["step_target_tokens"] == padded((rows, None))["step_target_tokens"]


@pytest.mark.numerics
def test_a_packed_row_trains_the_same_gradient_as_padded_rows():
    import torch

    family, model, tok, rows = _setup("tiny_llama", True)
    grads = []
    for packed in (True, False):
        model.zero_grad()
        family.token_nll(model, Collate(tok.pad_token_id, separate_labels=False, packed=packed)((rows, None))).backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    assert grads[0].abs().max() > 0
    assert ((grads[0] - grads[1]).abs().max() / grads[1].abs().max()).item() <= RTOL


@pytest.mark.numerics
def test_a_packed_t5_row_trains_the_same_gradient_as_padded_rows():
    family, model, tok, rows = _setup("tiny_t5", True)
    grads = {}
    for packed in (True, False):
        model.zero_grad()
        family.token_nll(model, Collate(tok.pad_token_id, separate_labels=True, packed=packed)((rows, None))).backward()
        grads[packed] = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    assert grads[True].keys() == grads[False].keys()
    assert any("relative_attention_bias" in name for name in grads[True])  # T5's position bias is trained too
    for name, g in grads[False].items():
        assert g.abs().max() > 0, name
        assert ((grads[True][name] - g).abs().max() / g.abs().max()).item() <= RTOL, name


def test_a_micro_batch_longer_than_the_familys_pack_limit_is_padded():
    # T5's position biases grow with the packed row's square (families.EncoderDecoder.pack_limit): a micro-batch
    # whose input or label row would pass the limit is padded instead (the same loss either way, tests above)
    from types import SimpleNamespace

    from lamini_lm.data.datamodule import InstructionDataModule
    from lamini_lm.models.families import DecoderOnly, EncoderDecoder

    collate = Collate(0, separate_labels=True, packed=True, pack_limit=10)
    short = collate(({"input_ids": [[5, 6, 7], [8, 9]], "labels": [[1, 2], [3] * 8]}, None))  # 5 and 10 tokens
    long = collate(({"input_ids": [[5] * 8, [6] * 3], "labels": [[1], [2]]}, None))  # 11 input tokens
    assert short["input_ids"].shape == (1, 5) and "attention_mask" not in short
    assert long["input_ids"].shape == (2, 8) and "cu_seq_lens_q" not in long and long["attention_mask"].sum() == 11
    assert DecoderOnly.pack_limit is None and EncoderDecoder.pack_limit == 2048  # decoder-only attends per example
    dm = InstructionDataModule(None, SimpleNamespace(pad_token_id=0), None, EncoderDecoder(), global_batch_size=8,
                               micro_batch_size=8, val_size=1, max_source_length=8, max_target_length=8,
                               packing="padding_free")
    assert dm.collate.packed and dm.collate.pack_limit == EncoderDecoder.pack_limit  # what training collates with


@pytest.mark.parametrize("packing,pack_limit", [("padded", 2048), ("padding_free", 2048), ("padding_free", 50)])
def test_training_cuts_packed_global_batches_by_tokens_and_padded_ones_by_count(packing, pack_limit):
    # and a global batch whose token cut has a micro-batch over the pack limit by count, sorted: the collator pads
    # that micro-batch, and a mix of lengths would waste more padding
    from types import SimpleNamespace

    import datasets

    from lamini_lm.data.datamodule import InstructionDataModule
    from lamini_lm.models.families import EncoderDecoder

    class Limited(EncoderDecoder):
        pass

    Limited.pack_limit = pack_limit
    src, tgt = [3, 40, 5, 30, 7, 2, 9, 60], [4, 1, 20, 2, 6, 8, 1, 2]
    dm = InstructionDataModule(None, SimpleNamespace(pad_token_id=0), None, Limited(), global_batch_size=8,
                               micro_batch_size=2, val_size=1, max_source_length=8, max_target_length=8,
                               packing=packing)
    dm.train_set = datasets.Dataset.from_dict({"input_ids": [[1] * n for n in src], "labels": [[1] * n for n in tgt],
                                               "source_length": src, "target_length": tgt})
    micros = list(dm.train_dataloader().batch_sampler)
    assert sorted(i for mb in micros for i in mb) == list(range(8)) and len(micros) == 4
    rows = sorted(sum(src[i] + tgt[i] for i in mb) for mb in micros)
    if packing == "padding_free" and pack_limit == 2048:  # input + label tokens: 7 41 25 32 13 10 10 62, longest
        # first into the lightest: 62 | 41+7 | 32+10 | 25+13+10
        assert rows == [42, 48, 48, 62]
    else:  # 60 input tokens in one micro-batch pass a limit of 50
        assert all(len(mb) == 2 for mb in micros)
