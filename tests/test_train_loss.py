"""Label masking and the global-batch loss: exact, whatever the micro-batch split."""

import pytest

from lamini_lm import assets, prompts
from lamini_lm.data.collate import Collate
from lamini_lm.data.tokenization import Tokenize
from lamini_lm.models.families import IGNORE_INDEX, DecoderOnly, EncoderDecoder
from lamini_lm.models.spec import ModelSpec
from lamini_lm.training.spec import OptimSpec
from tests.helpers.accumulation import (
    GRADIENT_GAP,
    FakeTrainer,
    accumulated_grads,
    gradient_gap,
)

FAMILIES = {"decoder_only": DecoderOnly(), "encoder_decoder": EncoderDecoder()}

RECORDS = {
    "instruction": ["Name a colour.", "Give the capital of France and explain briefly why it matters so much.",
                    "Say hi.", "Add 2 and 3."],
    "response": ["Blue.", "Paris, the seat of government.", "Hi!", "5"],
}


def _tokenizer(name):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(assets.path(name))
    tok.pad_token = tok.pad_token or tok.eos_token
    return tok


def test_decoder_only_labels_mask_exactly_the_wrapped_prompt():
    tok = _tokenizer("gpt2_tokenizer")
    style = prompts.get("alpaca")
    out = Tokenize(tok, style, DecoderOnly(), 512, 512)(RECORDS)
    for i, (ids, labels) in enumerate(zip(out["input_ids"], out["labels"])):
        prompt = tok(style.apply(RECORDS["instruction"][i]), add_special_tokens=False)["input_ids"]
        response = tok(RECORDS["response"][i], add_special_tokens=False)["input_ids"]
        assert ids == prompt + response + [tok.eos_token_id]
        assert labels == [IGNORE_INDEX] * len(prompt) + response + [tok.eos_token_id]
        assert tok.decode(ids[len(prompt):]) == RECORDS["response"][i] + "<|endoftext|>"
        assert out["target_length"][i] == len(response) + 1


def test_encoder_decoder_gets_the_raw_instruction_and_response_labels():
    tok = _tokenizer("t5_tokenizer")
    out = Tokenize(tok, prompts.get("raw"), EncoderDecoder(), 512, 512)(RECORDS)
    assert out["input_ids"][0] == tok("Name a colour.")["input_ids"]
    assert out["labels"][0] == tok("Blue.")["input_ids"]
    assert out["labels"][0][-1] == tok.eos_token_id


def _module(family):
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM

    if family == "decoder_only":
        arch = dict(model_type="gpt2", n_layer=2, n_head=2, n_embd=32, n_positions=256, resid_pdrop=0.0,
                    embd_pdrop=0.0, attn_pdrop=0.0)
        model = AutoModelForCausalLM.from_config(AutoConfig.for_model(**arch))
    else:
        arch = dict(model_type="t5", vocab_size=32128, d_model=32, d_ff=64, d_kv=8, num_layers=2, num_heads=2,
                    decoder_start_token_id=0, dropout_rate=0.0)
        model = AutoModelForSeq2SeqLM.from_config(AutoConfig.for_model(**arch))
    f = FAMILIES[family]
    spec = ModelSpec(name="t", family={"_target_": repr(f)[:-2]}, lamini_name="t", params="1M", lr=1e-3,
                     tokenizer="t", fsdp_block="t", micro_batch_size=4, architecture=arch,
                     init="random")  # prompt_style unset: the family's
    return f.module(model, spec, OptimSpec(lr=1e-3))


@pytest.mark.numerics
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("family,tok_name", [("decoder_only", "gpt2_tokenizer"), ("encoder_decoder", "t5_tokenizer")])
def test_accumulation_1_and_k_give_the_same_gradient(family, tok_name, dtype):
    """float64 tests the loss normalisation where it is exact up to rounding; float32 is what CPU training runs."""
    import torch

    torch.manual_seed(0)
    tok = _tokenizer(tok_name)
    style = prompts.get("alpaca" if family == "decoder_only" else "raw")
    toks = Tokenize(tok, style, FAMILIES[family], 512, 512)(RECORDS)
    rows = {"input_ids": toks["input_ids"], "labels": toks["labels"]}
    total = sum(toks["target_length"])
    collate = Collate(tok.pad_token_id, separate_labels=FAMILIES[family].separate_labels)
    module = _module(family).to(getattr(torch, dtype))
    module.log = lambda *a, **k: None

    def grads(micro_batches, accumulation, mean_of_means=False):
        def bug(batch):  # the deliberate bug: normalise each micro-batch by its own target tokens
            batch["step_target_tokens"] = (batch["labels"] != IGNORE_INDEX).sum() * accumulation
        return accumulated_grads(module, collate, rows, total, micro_batches, accumulation,
                                 bug if mean_of_means else None)

    with torch.no_grad():  # reference: mean NLL over every target token of the global batch
        batch = collate((rows, total))
        reference_loss = module.token_nll(batch) / total
    assert reference_loss.dtype == getattr(torch, dtype)  # the loss keeps the model's precision
    one = grads([[0, 1, 2, 3]], 1)
    assert one.dtype == getattr(torch, dtype) and one.abs().max() > 0.01
    assert gradient_gap(one, grads([[0], [1], [2], [3]], 4)) <= GRADIENT_GAP[dtype]
    assert gradient_gap(one, grads([[2, 1], [0, 3]], 2)) <= GRADIENT_GAP[dtype]
    # the check can fail: the mean-of-means normalisation does, by orders of magnitude more than the tolerance
    assert gradient_gap(one, grads([[0], [1], [2], [3]], 4, mean_of_means=True)) > 100 * GRADIENT_GAP[dtype]
    assert gradient_gap(one, grads([[2, 1], [0, 3]], 2, mean_of_means=True)) > 100 * GRADIENT_GAP[dtype]
    module._trainer = FakeTrainer(1)
    assert torch.isclose(module.training_step(collate((rows, total)), 0), reference_loss, rtol=1e-5)
    with torch.no_grad():  # and the loss is the model's own: transformers' shifted, masked mean NLL
        own = module.model(**{k: batch[k] for k in ("input_ids", "attention_mask", "labels")}).loss
        # GPT-2's loss is computed in float32 whatever the model's dtype: rtol 1e-5 covers it (measured <= 1e-7)
        assert torch.isclose(reference_loss, own.to(reference_loss.dtype), rtol=1e-5)


def test_mask_prompt_false_trains_on_the_prompt_too():
    tok = _tokenizer("gpt2_tokenizer")
    style = prompts.get("alpaca")
    masked = Tokenize(tok, style, DecoderOnly(), 512, 512)(RECORDS)
    full = Tokenize(tok, style, DecoderOnly(), 512, 512, mask_prompt=False)(RECORDS)
    assert full["input_ids"] == masked["input_ids"]
    assert full["labels"] == full["input_ids"]  # every token is a target, the prompt's included
    assert full["target_length"] == [len(x) for x in full["input_ids"]]  # the loss normaliser counts them
    # encoder-decoder targets are the response whatever the flag: the model never predicts its input
    t5 = _tokenizer("t5_tokenizer")
    assert Tokenize(t5, prompts.get("raw"), EncoderDecoder(), 512, 512, mask_prompt=False)(RECORDS)["labels"] == \
        Tokenize(t5, prompts.get("raw"), EncoderDecoder(), 512, 512)(RECORDS)["labels"]
