"""An API key given on the command line is refused before anything is written, and never echoed."""

import pytest

from lamini_lm.secret_keys import redacted, refuse_secret_overrides
from tests.helpers.run import run_entry

KEY = "sk-proj-" + "a1B2" * 8


@pytest.mark.parametrize("arg", [f"+teacher.api_key={KEY}", f"teacher.api_key={KEY}", "++hub_token=x",
                                 f"teacher.base_url={KEY}", f"-m model=gpt2,{KEY}".split(" ", 1)[1],
                                 "~wandb.password=x", "+secret=x"])
def test_secret_looking_overrides_are_refused_without_echo(arg, capsys):
    with pytest.raises(SystemExit) as e:
        refuse_secret_overrides(["model=tiny_t5", arg])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and err.startswith("error: the override ")
    assert KEY not in err and "a1B2" not in err


@pytest.mark.parametrize("arg", ["teacher.api_key_env=MY_KEY", "revision=" + "ab12" * 10, "model=gpt2",
                                 "-m", "hydra.run.dir=outputs/x", "tokenizer=gpt2_tokenizer"])
def test_ordinary_overrides_pass(arg):
    refuse_secret_overrides([arg])


def test_saved_configs_are_redacted():
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"teacher": {"api_key": KEY, "api_key_env": "OPENAI_API_KEY"}, "hub_token": "x", "n": 1})
    out = redacted(cfg)
    assert out["teacher"]["api_key"] == out["hub_token"] == "<redacted>" and KEY not in str(out)
    assert out["teacher"]["api_key_env"] == "OPENAI_API_KEY" and out["n"] == 1


def test_the_entry_points_refuse_before_hydra_writes_anything(tmp_path):
    for script in ("train.py", "generate.py", "evaluate.py"):
        res = run_entry(script, f"+teacher.api_key={KEY}", f"hydra.run.dir={tmp_path / script}", timeout=120)
        assert res.returncode == 2 and "Traceback" not in res.stderr and KEY not in res.stderr + res.stdout
        assert not (tmp_path / script).exists()  # no .hydra/overrides.yaml, no log
