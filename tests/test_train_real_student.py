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
    module = family.module(model, spec, OptimSpec(lr=2e-5))
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
