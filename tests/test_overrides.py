"""Command-line overrides that do not compose stop before Hydra runs anything: one line, exit 2, in every job of
a sweep. The entry points call the check (tests/test_train_config.py runs one through train.py)."""

import pytest

from lamini_lm.overrides import check_overrides


def _line(capsys, name, *argv) -> str:
    with pytest.raises(SystemExit) as e:
        check_overrides(name, list(argv))
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1 and err.startswith("error: "), err
    return err


def test_a_misspelt_key_is_named_with_the_way_to_add_it(capsys):
    line = _line(capsys, "train", "model=tiny_gpt2", "trainer.max_step=5")
    assert "trainer.max_step" in line and "+trainer.max_step=5" in line


def test_an_unknown_choice_lists_the_choices_without_private_bases(capsys):
    line = _line(capsys, "generate", "teacher=gpt5")
    assert "teacher/gpt5" in line and "hf_local, openai, openai_batch" in line and "_openai_api" not in line


def test_a_group_set_to_null_names_the_group(capsys):
    assert "(trainer=null): a config group takes a config's name" in _line(capsys, "train", "trainer=null")


def test_a_flag_after_the_overrides_is_one_line_saying_where_flags_go(capsys):
    line = _line(capsys, "train", "model=tiny_gpt2", "-m", "seed=1,2")
    assert "unrecognized arguments: seed=1,2" in line and "flags such as -m go before the overrides" in line


def test_broken_syntax_is_one_line(capsys):
    assert "seed=1=" in _line(capsys, "train", "seed=1=")


def test_a_sweep_needs_multirun_and_every_value_is_checked(capsys):
    assert "add -m" in _line(capsys, "train", "model=tiny_gpt2,tiny_t5")
    # the bad value is the sweep's last: the first job alone would compose
    assert "model/tiny_t6" in _line(capsys, "train", "-m", "seed=1,2", "model=tiny_gpt2,tiny_t5,tiny_t6")
    assert "eval/nope" in _line(capsys, "evaluate", "-m", "models=[a],[b]", "eval=lamini15_local,nope")


def test_good_overrides_and_hydras_own_flags_pass(capsys):
    check_overrides("train", ["-m", "model=tiny_gpt2,tiny_t5", "trainer=ddp_cpu", "hydra/launcher=submitit_slurm",
                              "hydra.sweep.dir=/tmp/s", "experiment=lamini_paper"])
    check_overrides("train", ["--cfg", "job", "model=tiny_t5"])
    check_overrides("train", ["--help"])
    assert capsys.readouterr().err == ""
