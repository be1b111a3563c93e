"""What every stage shares: the one W&B rule, composing the package's configs."""

import dataclasses

import pytest

from lamini_lm import config
from lamini_lm.errors import UserError


@pytest.fixture
def clean_wandb_env(monkeypatch, tmp_path):
    for k in ("WANDB_MODE", "WANDB_API_KEY", "NETRC"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    return tmp_path


def test_wandb_mode_is_offline_without_a_login_and_online_with_one(clean_wandb_env, monkeypatch):
    assert config.wandb_mode() == "offline"
    netrc = clean_wandb_env / ".netrc"  # what `wandb login` writes
    netrc.write_text("machine api.wandb.ai\n  login user\n  password k\n")
    netrc.chmod(0o600)
    assert config.wandb_mode() == "online"
    monkeypatch.setenv("WANDB_MODE", "dryrun")  # the environment wins; wandb's old name for offline
    assert config.wandb_mode() == "offline"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert config.wandb_mode() == "disabled"


def test_every_stage_reads_the_same_wandb_key_and_rule(clean_wandb_env, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    modes = {config.compose("train").logger.wandb.mode, config.compose("generate").analysis.wandb.mode,
             config.compose("evaluate").wandb.mode}
    assert modes == {"online"}
    assert config.compose("evaluate", ["wandb.mode=disabled"]).wandb.mode == "disabled"


@pytest.mark.parametrize("overrides,fragments", [
    (["model.lr=fast"], ["model.lr", "could not be converted to Float"]),
    (["+model.learning_rate=1e-4"], ["model.learning_rate", "no such key"]),
    (["data.val_size=0"], ["val_size=0", "fraction in (0, 1) or a positive number"]),
    (["data.val_size=1.5"], ["val_size=1.5"]),
    (["optim.betas=[0.9]"], ["betas=[0.9]", "two numbers"]),
    (["data=jsonl"], ["data.path: missing a value"]),
    (["data.subsets=[sharegpt]"], ["sharegpt", "self_instruct_without_topic"]),
    (["model=tiny_gpt2", "model.architecture=null"], ["model.init=random needs model.architecture"]),
    (["model=tiny_gpt2", "model.init=pretrained"], ["model.init=pretrained needs model.hub_id"]),
    (["model=gpt2_xl", "model.init=scratch"], ["model.init=scratch", "pretrained, random"]),
    (["global_batch_size=0"], ["global_batch_size"]),
    (["logger=wandb", "logger.wandb.mode=onlin"], ["logger.wandb.mode: 'onlin' is not one of online, offline, disabled"]),
])
def test_train_config_is_checked_once_with_one_line_naming_the_key(overrides, fragments):
    from lamini_lm.training.spec import TrainSpec

    cfg = config.compose("train", ["paths.output_dir=/tmp/unused", *overrides])
    with pytest.raises(UserError) as e:
        config.typed(cfg, TrainSpec)
    assert "\n" not in str(e.value) and all(f in str(e.value) for f in fragments), str(e.value)


def test_the_typed_train_config_holds_plain_values():
    from lamini_lm.training.spec import TrainSpec

    spec = config.typed(config.compose("train", ["paths.output_dir=/tmp/unused", "model=tiny_t5"]), TrainSpec)
    assert spec.optim.lr == spec.model.lr == 2e-3  # interpolations resolved
    assert spec.data.val_size == 16 and isinstance(spec.data.val_size, int)  # a count stays a count
    assert spec.model.architecture["model_type"] == "t5" and spec.model.family["_target_"].endswith("EncoderDecoder")


def test_a_model_of_another_size_than_its_config_says_is_refused():
    from lamini_lm.models.backbone import build_family, load_model
    from lamini_lm.models.spec import ModelSpec

    model = config.typed(config.compose("train", ["model=tiny_gpt2", "model.params=1B"]).model, ModelSpec, "model")
    with pytest.raises(UserError, match=r"model.params=1B but model 'tiny_gpt2' has 3.3M parameters"):
        load_model(model, build_family(model))


@dataclasses.dataclass
class _Inner:
    rounds: int = 1
    share: float = 0.5

    def __post_init__(self):
        if self.rounds < 1:
            raise config.BadValue("rounds", f"{self.rounds} is below 1")
        if not 0 < self.share < 1:
            raise ValueError(f"share={self.share} must be in (0, 1)")


@dataclasses.dataclass
class _Outer:
    inner: _Inner = dataclasses.field(default_factory=_Inner)
    size: int = 0

    def __post_init__(self):
        if self.size < 0:
            raise config.BadValue("size", "is negative")


@pytest.mark.parametrize("values,where,message", [
    ({"inner": {"rounds": 0}}, "", "inner.rounds: 0 is below 1"),  # a nested check names its key in full
    ({"inner": {"rounds": 0}}, "stage", "stage.inner.rounds: 0 is below 1"),
    ({"inner": {"share": 2}}, "", "inner: share=2.0 must be in (0, 1)"),  # a plain ValueError: its schema's key
    ({"size": -1}, "", "size: is negative"),
    ({"inner": {"round": 2}}, "", "inner.round: no such key (a typo? _Inner has rounds, share)"),  # the nested schema
])
def test_typed_names_the_key_of_a_nested_schema(values, where, message):
    with pytest.raises(UserError) as e:
        config.typed(values, _Outer, where)
    assert str(e.value) == message


def test_typed_checks_only_the_keys_it_is_given():
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"inner": {"rounds": "${b}"}, "b": 3, "size": "${oc.env:SURELY_UNSET_VARIABLE_123}"})
    assert config.typed(cfg, _Outer, keys=["inner"]) == _Outer(_Inner(rounds=3))  # size, left out, is not resolved
    with pytest.raises(UserError, match="b: no such key"):
        config.typed(cfg, _Outer, keys=["inner", "b"])
