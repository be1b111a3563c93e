"""An example longer than the model's context never crashes (and an empty one is dropped and counted): training, sample and human-eval generation cut
it to the model's own positions (tiny_gpt2 has 512, T5 has no absolute limit)."""

import json

import pytest

from lamini_lm import assets, prompts
from lamini_lm.data.tokenization import Tokenize
from lamini_lm.models.families import IGNORE_INDEX, DecoderOnly, EncoderDecoder
from tests.helpers.eval_compose import tiny_root
from tests.helpers.run import run_entry

LONG = " ".join(f"word{i}" for i in range(5000))  # ~10k GPT-2 tokens


def _tok(name):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(assets.path(name))
    tok.pad_token = tok.pad_token or tok.eos_token
    return tok


def test_a_decoder_only_example_fits_the_context_and_keeps_the_prompts_end():
    tok, style = _tok("gpt2_tokenizer"), prompts.get("alpaca")
    assert len(tok(LONG)["input_ids"]) > 10_000
    records = {"instruction": [LONG, "Say hi.", "Say hi."], "response": ["Hi!", LONG, "Hi!"]}
    out = Tokenize(tok, style, DecoderOnly(), 100_000, 100_000, context=512)(records)
    assert [len(x) for x in out["input_ids"]][:2] == [512, 512]
    tail = tok(style.apply("x"), add_special_tokens=False)["input_ids"][-4:]  # "...### Response:"
    first = out["input_ids"][0]
    n_prompt = out["labels"][0].count(IGNORE_INDEX)
    assert first[n_prompt - 4:n_prompt] == tail and first[-1] == tok.eos_token_id  # short response kept whole
    second = out["labels"][1]
    assert out["target_length"][1] == 512 - second.count(IGNORE_INDEX) >= 256  # the response keeps half
    assert out["input_ids"][1][-1] != tok.eos_token_id  # a cut response teaches no stop
    assert out["input_ids"][2] == Tokenize(tok, style, DecoderOnly(), 512, 512)(records)["input_ids"][2]  # untouched


def test_an_encoder_decoder_example_respects_its_limits():
    tok = _tok("t5_tokenizer")
    out = Tokenize(tok, prompts.get("raw"), EncoderDecoder(), 512, 256, context=None)({"instruction": [LONG],
                                                                                        "response": [LONG]})
    assert len(out["input_ids"][0]) == 512 and len(out["labels"][0]) == 256
    assert out["input_ids"][0][-1] == out["labels"][0][-1] == tok.eos_token_id
    capped = Tokenize(tok, prompts.get("raw"), EncoderDecoder(), 512, 256, context=128)({"instruction": [LONG],
                                                                                        "response": [LONG]})
    assert len(capped["input_ids"][0]) == len(capped["labels"][0]) == 128


@pytest.mark.parametrize("kind", ["gpt2", "t5"])
def test_generation_cuts_a_prompt_longer_than_the_model(kind, tmp_path_factory):
    from lamini_lm import inference

    model, tok, family, style = inference.load(tiny_root(tmp_path_factory) / kind / "hf")
    (answer,) = inference.generate(model, tok, family, style, [LONG], max_new_tokens=8)
    # only the new tokens come back (at most 8; decoding and re-encoding may split a few differently)
    assert len(tok(answer, add_special_tokens=False)["input_ids"]) <= 16 and LONG[:40] not in answer
    assert tok.padding_side == tok.truncation_side == family.padding_side


@pytest.mark.slow
@pytest.mark.parametrize("model", ["tiny_gpt2", "tiny_t5"])
def test_training_on_a_10k_token_example_does_not_crash(tmp_path, model):
    data = tmp_path / "long.jsonl"
    rows = [{"instruction": f"Say {i}.", "response": f"{i}.", "instruction_source": "alpaca"} for i in range(30)]
    rows[3]["instruction"], rows[7]["response"] = LONG, LONG
    rows += [{"instruction": "  ", "response": "x", "instruction_source": "alpaca"},
             {"instruction": "Say.", "response": "", "instruction_source": "alpaca"}]  # dropped, counted
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    # tiny_gpt2 has 512 positions, prompt + response may reach 1024 + 1024 tokens here; T5 has no position limit,
    # so its example is cut to the lengths alone
    res = run_entry("train.py", f"model={model}", "data=jsonl", f"data.path={data}", "data.val_size=6", "data.max_source_length=1024",
                    "data.max_target_length=1024", "global_batch_size=8", "micro_batch_size=4",
                    "trainer.max_epochs=1", "logger=csv", "callbacks.sample_generations.max_new_tokens=4",
                    "data.num_workers=0", f"hydra.run.dir={tmp_path / 'run'}")
    assert res.returncode == 0, res.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["global_step"] == 3 and metrics["data/dropped_empty"] == 2


def test_generation_caps_max_new_tokens_to_the_models_positions(tmp_path_factory, caplog):
    from lamini_lm import inference

    model, tok, family, style = inference.load(tiny_root(tmp_path_factory) / "gpt2" / "hf")
    context = model.config.n_positions
    widths = []
    real = model.generate

    def spy(**kwargs):  # the real generation, its output's width recorded
        ids = real(**kwargs, min_new_tokens=kwargs["max_new_tokens"])  # no early stop: the cap itself is checked
        widths.append((kwargs["input_ids"].shape[1], ids.shape[1]))
        return ids

    model.generate = spy
    with caplog.at_level("WARNING", logger="lamini_lm.models.families"):
        answers = inference.generate(model, tok, family, style, ["Say hi.", LONG], batch_size=1,
                                     max_new_tokens=context + 88)
    assert len(answers) == 2 and all(answers) and len(widths) == 2
    for prompt_width, width in widths:  # each batch within the positions, at most context - 1 of them new
        assert width <= context and width - prompt_width == context - 1
    # one warning for the call, not one per batch
    assert [r.getMessage() for r in caplog.records].count(
        f"max_new_tokens={context + 88} does not fit the model's {context} positions: generating at most "
        f"{context - 1} new tokens") == 1
