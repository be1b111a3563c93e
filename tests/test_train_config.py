"""Every config the training stage offers composes, and the paper recipe says what the paper says."""

from pathlib import Path

import pytest
from hydra.utils import get_class
from omegaconf import OmegaConf

from lamini_lm import config
from tests.helpers.run import fails_with, run_entry

CONF = str(config.conf_dir())  # the one config tree (the checkout's, under the editable install)
HERD = ["t5_small", "t5_base", "t5_large", "flan_t5_small", "flan_t5_base", "flan_t5_large", "gpt_neo_125m",
        "gpt_neo_1_3b", "cerebras_gpt_111m", "cerebras_gpt_256m", "cerebras_gpt_590m", "cerebras_gpt_1_3b", "gpt2",
        "gpt2_large", "gpt2_xl"]
TINY = ["tiny_t5", "tiny_gpt2", "tiny_gpt_neo", "tiny_llama"]
REAL_OFFLINE = ["smollm2_135m"]  # a real pretrained student from the offline assets, not a paper model
GENERIC = ["hf_causal_lm", "hf_seq2seq_lm"]  # any hub LM: model.hub_id and model.params given on the command line


def _compose(*overrides, return_hydra_config=False):
    return config.compose("train", overrides, return_hydra_config=return_hydra_config)


def test_the_herd_is_table_3():
    assert sorted(p.stem for p in Path(CONF, "model").glob("*.yaml")) == sorted(HERD + TINY + REAL_OFFLINE + GENERIC)


@pytest.mark.parametrize("name", HERD + TINY)
def test_every_model_config_composes(name):
    from lamini_lm.models.backbone import build_family
    from lamini_lm.models.families import DecoderOnly, EncoderDecoder

    m = _compose(f"model={name}").model
    family = build_family(m)
    seq2seq = name.startswith(("t5", "flan_t5", "tiny_t5"))
    assert type(family) is (EncoderDecoder if seq2seq else DecoderOnly)
    assert family.style(m.prompt_style).name == ("raw" if seq2seq else "alpaca")  # the LaMini model cards
    get_class(m.fsdp_block)
    if name in HERD:
        assert m.hub_id and m.lamini_name.startswith("LaMini-") and m.init == "pretrained"
        assert m.architecture.model_type == ("t5" if seq2seq else "gpt_neo" if "neo" in name else "gpt2")
        assert m.lr == (5e-4 if seq2seq else 2e-5)
        assert m.tokenizer == m.hub_id and m.revision == "main"
    else:
        assert Path(m.tokenizer).is_dir() and m.init == "random"  # the real tokenizer from the offline assets


@pytest.mark.parametrize("name", GENERIC)
def test_the_generic_members_take_a_hub_id_and_name_themselves_after_it(name):
    from lamini_lm.errors import UserError
    from lamini_lm.models.spec import ModelSpec

    with pytest.raises(UserError, match=r"model.hub_id: missing a value.*\(model.hub_id=\.\.\.\)"):
        config.typed(_compose(f"model={name}", "model.params=1B").model, ModelSpec, "model")
    m = config.typed(_compose(f"model={name}", "model.hub_id=org/Some-Model-1B", "model.params=1B").model, ModelSpec,
                     "model")
    assert (m.name, m.lamini_name, m.tokenizer, m.fsdp_block) == ("Some-Model-1B", "LaMini-Some-Model-1B",
                                                                  "org/Some-Model-1B", "auto")
    assert m.prompt_style == ("chat" if name == "hf_causal_lm" else None)


@pytest.mark.parametrize("trainer", ["cpu", "gpu", "ddp", "ddp_cpu", "fsdp", "deepspeed"])
def test_every_trainer_config_names_real_classes(trainer):
    cfg = _compose(f"trainer={trainer}", "model=gpt2_xl")
    t = cfg.trainer
    get_class(t._target_)
    assert t.use_distributed_sampler is False
    if "strategy" in t:
        get_class(OmegaConf.to_container(t.strategy, resolve=True)["_target_"])
    if trainer == "fsdp":
        from hydra.utils import instantiate

        from transformers.models.gpt2.modeling_gpt2 import GPT2Block

        assert instantiate(cfg.trainer.strategy.auto_wrap_policy) == {GPT2Block}


def test_paper_experiment_is_the_papers_recipe():
    cfg = _compose("experiment=lamini_paper", "model=flan_t5_base")
    assert cfg.global_batch_size == 1024 and cfg.trainer.max_epochs == 5
    assert cfg.optim.lr == 5e-4 and cfg.data.reader.name == "MBZUAI/LaMini-instruction"
    assert _compose("experiment=lamini_paper", "model=gpt2_xl").optim.lr == 2e-5


def test_slurm_launcher_takes_its_shape_from_the_trainer():
    cfg = _compose("hydra/launcher=submitit_slurm", "trainer=ddp", "trainer.devices=8", "trainer.num_nodes=2",
                   return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher.nodes == 2 and launcher.tasks_per_node == 8 and launcher.gpus_per_node == 8
    get_class(launcher._target_)


def test_unknown_model_choice_lists_the_valid_ones():
    line = fails_with(run_entry("train.py", "model=gpt5"), "Could not find 'model/gpt5'", "gpt2_xl", "tiny_t5")
    choices = line.split("choose one of: ")[1].split(", ")
    assert not [c for c in choices if c.startswith(("base", "_"))]  # conf/model/base/'s abstract configs are no choice


@pytest.mark.parametrize("generic", GENERIC)
def test_a_generic_member_takes_a_gguf_file_on_the_command_line(generic):
    from lamini_lm.training.spec import TrainSpec

    cfg = _compose(f"model={generic}", "model.hub_id=${asset:smollm2}", "model.gguf_file=SmolLM2-135M-Instruct.Q4_1.gguf",
                   "model.params=135M", "paths.output_dir=/tmp/unused")
    assert config.typed(cfg, TrainSpec).model.gguf_file == "SmolLM2-135M-Instruct.Q4_1.gguf"
