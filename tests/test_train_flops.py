"""The executed-FLOP count the throughput callback logs is torch's own count of the matmuls and attention run."""

import pytest

from lamini_lm.training.flops import FlopCoefficients


def _tiny(kind):
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM

    if kind == "gpt2":
        return AutoModelForCausalLM.from_config(AutoConfig.for_model(
            model_type="gpt2", vocab_size=512, n_layer=2, n_head=2, n_embd=32, n_positions=128))
    return AutoModelForSeq2SeqLM.from_config(AutoConfig.for_model(
        model_type="t5", vocab_size=512, d_model=32, d_ff=64, d_kv=8, num_layers=2, num_heads=4,
        decoder_start_token_id=0))


@pytest.mark.parametrize("kind", ["gpt2", "t5"])
def test_executed_flops_of_a_padded_batch_are_what_torch_counts(kind):
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    model = _tiny(kind)
    ids = torch.randint(1, 500, (3, 11))
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0  # padding is computed all the same: it counts
    labels = torch.randint(1, 500, (3, 5)) if kind == "t5" else ids.clone()
    batch = {"input_ids": ids, "attention_mask": mask, "labels": labels}
    with FlopCounterMode(display=False) as counter:
        model(**batch).logits.sum().backward()  # transformers' own head: every row projected
    counted = counter.get_total_flops()
    ours = FlopCoefficients(model).of_batch(batch, head_rows=labels.numel())
    assert counted > 0 and abs(ours - counted) / counted < 1e-9, (ours, counted)


@pytest.mark.parametrize("kind", ["gpt2", "t5"])
def test_executed_flops_of_a_packed_row_are_what_torch_counts(kind):
    """Ours: one packed row (T5: one of inputs, one of labels), each example's attention alone (sdpa_varlen), the
    output layer at target rows only."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from lamini_lm.data.collate import Collate
    from lamini_lm.models.attention import register
    from lamini_lm.models.families import IGNORE_INDEX, DecoderOnly, EncoderDecoder

    register()
    torch.manual_seed(0)
    model = _tiny(kind)
    model.set_attn_implementation("sdpa_varlen")
    ids = [torch.randint(1, 500, (n,)).tolist() for n in (9, 4, 13)]
    if kind == "t5":
        family, labels = EncoderDecoder(), [torch.randint(1, 500, (n,)).tolist() for n in (3, 7, 5)]
    else:
        family, labels = DecoderOnly(), [[IGNORE_INDEX] * 3 + x[3:] for x in ids]
    batch = Collate(0, separate_labels=family.separate_labels, packed=True)(({"input_ids": ids, "labels": labels},
                                                                             None))
    with FlopCounterMode(display=False) as counter:
        family.token_nll(model, batch).backward()
    counted = counter.get_total_flops()
    ours = FlopCoefficients(model).of_batch(batch)
    assert counted > 0 and abs(ours - counted) / counted < 1e-9, (ours, counted)


@pytest.mark.parametrize("precision,dtype", [("bf16-mixed", "bfloat16"), ("32-true", "float32")])
def test_the_utilisation_divides_by_the_roof_of_the_dtype_the_matmuls_run_in(precision, dtype, monkeypatch):
    # under bf16-mixed the weights stay fp32 but the matmuls run in bf16: a GPU's bf16 peak, not its fp32 one
    import lightning.pytorch as pl
    import torch

    from lamini_lm.training import callbacks

    seen = []
    monkeypatch.setattr(callbacks, "roof", lambda device, compute, given: seen.append(compute) or 1e12)
    monkeypatch.setattr(callbacks, "FlopCoefficients", lambda model: None)
    trainer = pl.Trainer(accelerator="cpu", precision=precision, logger=False, enable_checkpointing=False)
    module = pl.LightningModule()
    module.model = torch.nn.Linear(2, 2)
    callbacks.TokenThroughput().on_fit_start(trainer, module)
    assert seen == [getattr(torch, dtype)]
