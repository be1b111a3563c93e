"""Any Hugging Face LM as a student: a Llama-architecture decoder through the generic decoder-only family,
and the one real pretrained LM offline, SmolLM2-135M-Instruct from its GGUF file."""

import json

import pytest

from lamini_lm import config
from tests.helpers.run import run_entry


@pytest.mark.slow
def test_a_llama_architecture_student_trains_exports_and_answers(tmp_path):
    from lamini_lm import inference

    res = run_entry("train.py", "model=tiny_llama", "data.limit=48", "data.val_size=8", "global_batch_size=8",
                    "micro_batch_size=4", "trainer.max_epochs=1", "logger=csv",
                    "callbacks.sample_generations.max_new_tokens=4", f"hydra.run.dir={tmp_path}")
    assert res.returncode == 0, res.stderr[-3000:]
    assert json.loads((tmp_path / "metrics.json").read_text())["global_step"] == 5
    model, tok, family, style = inference.load(tmp_path / "hf")
    assert model.config.model_type == "llama" and family.lm_eval_backend == "causal" and style.name == "alpaca"
    assert len(inference.generate(model, tok, family, style, ["Say hi."], max_new_tokens=3)) == 1


@pytest.mark.slow
def test_the_gguf_student_loads_trains_a_step_and_exports_plain_weights(tmp_path):
    import torch

    from lamini_lm import inference, prompts
    from lamini_lm.data.collate import Collate
    from lamini_lm.data.tokenization import Tokenize
    from lamini_lm.models.backbone import build_family, load_model, load_tokenizer
    from lamini_lm.models.spec import ModelSpec
    from lamini_lm.training.export import write_export
    from lamini_lm.training.spec import OptimSpec

    spec = config.typed(config.compose("train", ["model=smollm2_135m"]).model, ModelSpec, "model")
    family, tok = build_family(spec), load_tokenizer(spec)
    model = load_model(spec, family)  # the size check: 134.5M parameters for "135M"
    assert model.config.model_type == "llama" and getattr(model, "hf_quantizer", None) is None
    records = {"instruction": ["What is the capital of France?", "Name a colour."], "response": ["Paris.", "Blue."]}
    rows = Tokenize(tok, prompts.get("alpaca"), family, 256, 64)(records)
    batch = Collate(tok.pad_token_id, separate_labels=False)(({"input_ids": rows["input_ids"],
                                                                "labels": rows["labels"]}, None))
    module = family.module(model, spec, OptimSpec(lr=2e-5), tok)
    assert module.style == prompts.get("chat", tok)  # SmolLM2 trains in the chat template it was tuned with
    loss = module.token_nll(batch) / batch["step_target_tokens"]
    loss.backward()
    # pretrained: far below a random model's ln(49152) = 10.8 (6.7 measured: short answers after an Alpaca
    # prompt SmolLM2 was not tuned on), and it trains (a gradient reaches the embeddings)
    assert 0 < float(loss) < 8.5 and model.model.embed_tokens.weight.grad.abs().sum() > 0
    out = write_export(model, tok, family, prompts.get("alpaca"), tmp_path / "hf", model_cfg=spec, metrics={})
    assert "quantization_config" not in json.loads((out / "config.json").read_text())
    again, tok2, fam2, style = inference.load(out)
    with torch.no_grad():
        assert torch.equal(again.model.embed_tokens.weight, model.model.embed_tokens.weight)
    chat = tok2.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}], tokenize=False,
                                    add_generation_prompt=True)
    (answer,) = inference.generate(again, tok2, fam2, prompts.get("raw"), [chat], max_new_tokens=12)
    assert "paris" in answer.lower()  # the exported weights answer as the asset does (greedy, its chat template)


@pytest.mark.slow
def test_any_hub_causal_lm_is_a_student_through_the_generic_member(tmp_path):
    """model=hf_causal_lm on a folder laid out like a hub download (a tiny random Llama and a tokenizer with a chat
    template): its chat template becomes the prompt style, its FSDP block is found in the model class and
    recorded, it trains and exports a folder lm-eval loads."""
    import torch
    import yaml
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from lamini_lm import assets, inference

    hub = tmp_path / "Tiny-Llama-Chat"
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(vocab_size=50257, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                 num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512,
                                 tie_word_embeddings=True)).save_pretrained(hub)
    tok = AutoTokenizer.from_pretrained(assets.path("gpt2_tokenizer"))
    tok.chat_template = ("{% for m in messages %}### {{ m['role'] }}:\n{{ m['content'] }}\n{% endfor %}"
                         "{% if add_generation_prompt %}### assistant:\n{% endif %}")
    tok.save_pretrained(hub)

    out = tmp_path / "run"
    res = run_entry("train.py", "model=hf_causal_lm", f"model.hub_id={hub}", "model.params=3.3M", "model.lr=2e-3",
                    "data.limit=24", "data.val_size=8", "global_batch_size=8", "micro_batch_size=4",
                    "trainer.max_epochs=1", "logger=csv", "callbacks.sample_generations.max_new_tokens=4",
                    f"hydra.run.dir={out}")
    assert res.returncode == 0, res.stderr[-3000:]
    trained = yaml.safe_load((out / "hf" / "training_config.yaml").read_text())["model"]
    assert trained["name"] == "Tiny-Llama-Chat" and trained["lamini_name"] == "LaMini-Tiny-Llama-Chat"
    assert trained["fsdp_block"] == "transformers.models.llama.modeling_llama.LlamaDecoderLayer"
    model, tok2, family, style = inference.load(out / "hf")
    assert style.name == "chat" and style.apply("Hi") == "### user:\nHi\n### assistant:\n"
    lm = HFLM(pretrained=str(out / "hf"), batch_size=2, device="cpu")
    (ll, _), = lm.loglikelihood([Instance("loglikelihood", {}, ("Hello", " world"), 0)])
    assert ll < 0


def test_a_model_class_without_block_names_asks_for_fsdp_block():
    import pytest as _pytest

    from lamini_lm.errors import UserError
    from lamini_lm.models.backbone import build_family, find_fsdp_block
    from lamini_lm.models.spec import ModelSpec

    cfg = config.compose("train", ["model=tiny_gpt2", "model.fsdp_block=auto"])
    spec = config.typed(cfg.model, ModelSpec, "model")
    assert find_fsdp_block(spec, build_family(spec)) == "transformers.models.gpt2.modeling_gpt2.GPT2Block"
    spec.architecture = {"model_type": "gpt2", "n_layer": 0, "n_embd": 8, "n_head": 2}  # no block to find
    with _pytest.raises(UserError, match="model.fsdp_block=auto"):
        find_fsdp_block(spec, build_family(spec))
