"""A new model family is one class and one config: train.py, the export and inference all go through it."""

import json

import pytest

from tests.helpers.families import SeparatedDecoderOnly
from tests.helpers.run import run_entry

MODEL = """# a student of a family that only the tests define
defaults:
  - tiny_gpt2@_here_
  - _self_
name: separated_gpt2
family:
  _target_: tests.helpers.families.SeparatedDecoderOnly
"""


def test_the_family_shapes_the_training_examples():
    from lamini_lm import assets, prompts
    from lamini_lm.data.tokenization import Tokenize
    from lamini_lm.models.families import IGNORE_INDEX, DecoderOnly
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(assets.path("gpt2_tokenizer"))
    records = {"instruction": ["Say hi."], "response": ["Hi!"]}
    plain = Tokenize(tok, prompts.get("alpaca"), DecoderOnly(), 512, 512)(records)
    sep = Tokenize(tok, prompts.get("alpaca"), SeparatedDecoderOnly(), 512, 512)(records)
    n = plain["labels"][0].count(IGNORE_INDEX)
    assert sep["input_ids"][0] == plain["input_ids"][0][:n] + [tok.eos_token_id] + plain["input_ids"][0][n:]
    assert sep["labels"][0][: n + 1] == [IGNORE_INDEX] * (n + 1)  # the separator is part of the masked prompt
    assert sep["target_length"] == plain["target_length"]


@pytest.mark.slow
def test_a_family_outside_the_package_trains_exports_and_generates(tmp_path):
    from lamini_lm import inference
    from lamini_lm.models import families

    conf = tmp_path / "conf" / "model"
    conf.mkdir(parents=True)
    (conf / "separated_gpt2.yaml").write_text(MODEL)
    out = tmp_path / "run"
    res = run_entry("train.py", f"hydra.searchpath=[file://{tmp_path / 'conf'}]", "model=separated_gpt2",
                    "data.limit=48", "data.val_size=8", "global_batch_size=8", "micro_batch_size=4",
                    "trainer.max_epochs=1", "logger=csv", "callbacks.sample_generations.max_new_tokens=4",
                    f"hydra.run.dir={out}")
    assert res.returncode == 0, res.stderr[-3000:]
    assert json.loads((out / "metrics.json").read_text())["global_step"] == 5
    assert len((out / "samples.jsonl").read_text().splitlines()) == 4  # generated through the family
    assert isinstance(families.of_export(out / "hf"), SeparatedDecoderOnly)  # the export remembers its family
    model, tok, family, style = inference.load(out / "hf")
    assert isinstance(family, SeparatedDecoderOnly) and style.name == "alpaca"
    assert len(inference.generate(model, tok, family, style, ["Say hi."], max_new_tokens=3)) == 1


@pytest.mark.slow
def test_a_family_that_is_not_a_family_class_is_one_line(tmp_path):
    res = run_entry("train.py", "model=tiny_gpt2", "model.family._target_=collections.OrderedDict", f"hydra.run.dir={tmp_path}")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith("error: model.family._target_=collections.OrderedDict")
