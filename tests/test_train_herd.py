"""Every herd member at its true shape, offline: built from the architecture its config carries (the hub
model's config.json) on the meta device, which allocates nothing, and measured against its LaMini name."""

import pytest
import torch

from lamini_lm import config
from lamini_lm.models.backbone import build_family, build_random, load_model
from lamini_lm.models.size import parse_size
from lamini_lm.models.spec import ModelSpec
from lamini_lm.training.spec import TrainSpec
from tests.test_train_config import HERD

# Table 3's families: the tokenizer's vocabulary (T5's 32100 pieces padded to 32128; the GPT-2 BPE) and the
# context length (absolute position embeddings; T5 has relative positions, so none)
VOCAB = {"t5": 32128, "gpt2": 50257, "gpt_neo": 50257}
CONTEXT = {"gpt2": 1024, "cerebras": 2048, "gpt_neo": 2048}


def _random_spec(name: str, *overrides: str) -> ModelSpec:
    return config.typed(config.compose("train", [f"model={name}", "model.init=random", *overrides]).model,
                        ModelSpec, "model")


def _on_meta(spec: ModelSpec):
    with torch.device("meta"):
        return load_model(spec, build_family(spec))  # load_model checks model.params (models/size.py)


@pytest.mark.parametrize("name", HERD)
def test_every_herd_member_builds_at_its_true_size_on_the_meta_device(name):
    spec = _random_spec(name)
    model = _on_meta(spec)
    assert all(p.device.type == "meta" for p in model.parameters())  # nothing allocated
    n = model.num_parameters()
    stated, unit = parse_size(spec.lamini_name.rsplit("-", 1)[1])  # the size in the LaMini name itself
    assert abs(n - stated) <= min(unit, 0.1 * stated), f"{spec.lamini_name}: {n:,} parameters"
    kind = spec.architecture["model_type"]
    assert model.config.vocab_size == VOCAB[kind] == model.get_input_embeddings().weight.shape[0]
    assert model.get_output_embeddings().weight.shape[0] == VOCAB[kind]
    if kind == "t5":
        assert not any(hasattr(model.config, k) for k in ("n_positions", "max_position_embeddings"))
    else:
        context = CONTEXT["cerebras" if name.startswith("cerebras") else kind]
        assert model.config.max_position_embeddings == context  # n_positions for GPT-2 (an alias)
        wpe = model.transformer.wpe.weight
        assert wpe.shape[0] == context  # the position table really has that many rows


@pytest.mark.parametrize("name,tied", [("t5_small", True), ("flan_t5_small", False)])
def test_flan_t5_keeps_an_lm_head_of_its_own(name, tied):
    # transformers 5 ties T5's lm_head whatever the config says; T5 v1.1 (Flan-T5) checkpoints have their own
    model = _on_meta(_random_spec(name))
    assert (model.lm_head.weight is model.shared.weight) is tied


def test_an_untied_random_t5_saves_and_reloads_its_own_lm_head(tmp_path):
    from transformers import AutoModelForSeq2SeqLM

    arch = dict(model_type="t5", vocab_size=128, d_model=16, d_ff=32, d_kv=8, num_layers=1, num_heads=2,
                feed_forward_proj="gated-gelu", tie_word_embeddings=False, decoder_start_token_id=0)
    model = build_random(AutoModelForSeq2SeqLM, arch)
    with torch.no_grad():
        model.lm_head.weight.mul_(3.0)  # no longer the input embeddings' values
    model.save_pretrained(tmp_path)
    again = AutoModelForSeq2SeqLM.from_pretrained(tmp_path)
    assert torch.equal(again.lm_head.weight, model.lm_head.weight)
    assert torch.equal(again.shared.weight, model.shared.weight)
    assert again.num_parameters() == model.num_parameters()
    x, y = torch.tensor([[5, 6, 7, 1]]), torch.tensor([[0, 8, 9]])  # and it computes the same (no output scaling)
    assert torch.equal(again.eval()(input_ids=x, decoder_input_ids=y).logits,
                       model.eval()(input_ids=x, decoder_input_ids=y).logits)


def test_the_largest_member_composes_and_builds_offline_with_random_init():
    # python train.py model=gpt2_xl model.init=random experiment=lamini_paper: the whole config checks, the model
    # builds without the Hub (on the meta device here: 1.56B parameters would take 6 GB)
    cfg = config.compose("train", ["model=gpt2_xl", "model.init=random", "experiment=lamini_paper",
                                   "paths.output_dir=/tmp/unused"])
    spec = config.typed(cfg, TrainSpec)
    assert spec.model.init == "random" and spec.model.hub_id == "openai-community/gpt2-xl"
    assert abs(_on_meta(spec.model).num_parameters() - 1.5e9) <= 0.1e9  # LaMini-GPT-1.5B
    assert config.compose("train", ["model=gpt2_xl"]).model.init == "pretrained"  # the real weights stay the default


def test_the_herd_sweep_is_the_fifteen_members_of_table_3():
    params = config.compose("train", ["experiment=lamini_herd"], return_hydra_config=True).hydra.sweeper.params
    assert sorted(params.model.split(",")) == sorted(HERD)


@pytest.fixture(scope="module")
def herd_plan():
    """python -m lamini_lm.training.plan experiment=lamini_herd, as plain rows (one per member)."""
    from lamini_lm.training import sweep_plan

    jobs = sweep_plan.jobs(["experiment=lamini_herd"])
    return {r["model"]: r for r in (sweep_plan.row(config.compose("train", ["paths.output_dir=/tmp/u", *job]))
                                    for job in jobs)}


@pytest.mark.parametrize("name", HERD)
def test_each_member_carries_the_planners_setting_for_the_papers_hardware(name, herd_plan):
    # under experiment=lamini_paper every member trains with DDP on 8 x 40 GB in bf16 at its own micro-batch and
    # activation checkpointing; both are re-derived here, so a change to the planner or a default (fast_gelu once
    # changed four of them) fails until the configs follow
    row = herd_plan[name]
    assert (row["strategy"], row["devices"], row["precision"]) == ("ddp", 8, "bf16-mixed")
    assert row["fits"] and row["peak"] <= 40 - 4, f"{name}: {row['peak']:.1f} GB"
    mine = {"micro_batch": row["micro_batch"], "accumulation": row["accumulation"],
            "checkpointing": row["checkpointing"]}
    assert mine == row["planner"], f"conf/model/{name}.yaml should say {row['planner']}"


def test_the_preflight_stops_a_plan_over_the_gpu_and_names_a_setting_that_fits():
    from lamini_lm.errors import UserError
    from lamini_lm.training import preflight
    from lamini_lm.training.spec import PlanSpec

    def verdict(*overrides, device_gb=40):
        cfg = config.compose("train", ["paths.output_dir=/tmp/u", "experiment=lamini_paper", *overrides])
        preflight.verdict(cfg, config.typed(cfg.plan, PlanSpec, "plan"), device_gb * 10**9, 8)

    verdict("model=gpt2_xl")  # its own setting fits 40 GB
    # the mission command's old mistake: gpt2_xl under DDP at FSDP's micro-batch of 32
    with pytest.raises(UserError, match=r"gpt2_xl: the planner puts the peak at 89\.1 GB per device .* this 40\.0 GB "
                                         r"GPU leaves 36\.0 GB .*set micro_batch_size=8 activation_checkpointing=true"):
        verdict("model=gpt2_xl", "micro_batch_size=32", "activation_checkpointing=false")
    with pytest.raises(UserError, match="set micro_batch_size=16 activation_checkpointing=false"):
        verdict("model=gpt2", device_gb=16)  # a smaller GPU: a smaller micro-batch, no checkpointing needed
    verdict("model=gpt2", "plan.reserve_gb=0", device_gb=34)  # the reserve is part of the capacity: 33.9 GB fit
    with pytest.raises(UserError, match="leaves 30.0 GB"):
        verdict("model=gpt2", device_gb=34)
