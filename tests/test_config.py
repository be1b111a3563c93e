"""What every stage shares: the one W&B rule, composing the package's configs."""

import pytest

from lamini_lm import config


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
