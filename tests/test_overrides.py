"""Command-line overrides that do not compose stop before Hydra runs anything: one line, exit 2, in every job of
a sweep; a misspelt key or choice gets the closest real ones. The entry points call the check
(tests/test_train_config.py runs one through train.py)."""

import pytest

from lamini_lm.overrides import check_overrides


def _line(capsys, name, *argv) -> str:
    with pytest.raises(SystemExit) as e:
        check_overrides(name, list(argv))
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1 and err.startswith("error: "), err
    return err


@pytest.mark.parametrize("name, argv, line", [
    ("train", ["trainer.max_epoch=2"], "no such key trainer.max_epoch; did you mean trainer.max_epochs?"),
    ("train", ["modle=gpt2"], "no such key modle; did you mean model?"),  # a misspelt group
    ("train", ["data=jsonl", "data.pth=x"], "no such key data.pth; did you mean data.path?"),  # the chosen data's key
    ("train", ["hydra.run.dri=x"],
     "no such key hydra.run.dri; did you mean hydra.run.dir, hydra.run or hydra.runtime?"),  # up to 3
    ("train", ["~trainer.max_epoch"], "no such key trainer.max_epoch; did you mean trainer.max_epochs?"),
    ("train", ["trainer.max_epoch=2", "data.pth=x"], "no such key trainer.max_epoch; did you mean trainer.max_epochs?"),
    ("train", ["teacher=openai"], "no such key teacher (--help says how to list every key)"),  # generate.py's group
    ("generate", ["instructions.n_example=3"],
     "no such key instructions.n_example; did you mean instructions.n_examples?"),
    ("evaluate", ["wraper=none"], "no such key wraper; did you mean wrapper?"),
])
def test_a_misspelt_key_gets_the_closest_real_keys_not_hydras_advice_to_add_it(capsys, name, argv, line):
    assert _line(capsys, name, *argv) == f"error: {line}"


def test_a_misspelt_choice_gets_the_closest_choice_then_the_list(capsys):
    line = _line(capsys, "train", "model=gpt2_x")
    assert "Could not find 'model/gpt2_x'; did you mean gpt2_xl? Else choose one of: cerebras_gpt_111m," in line
    assert line.endswith("tiny_llama, tiny_t5")
    assert "did you mean" not in _line(capsys, "generate", "teacher=gpt5")  # nothing close: the list alone


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
    check_overrides("train", ["--hydra-help"])
    check_overrides("train", ["model=tiny_gpt2,tiny_t5"], app=False)  # the planner plans each job without -m
    assert capsys.readouterr().err == ""


def test_a_dict_of_open_keys_is_told_how_to_add_one(capsys):
    # the launcher's additional_parameters is a dict of sbatch options: a new one is added with `+`, which is the
    # right advice here (docs/herd.md prints it)
    line = _line(capsys, "train", "hydra/launcher=submitit_slurm", "hydra.launcher.additional_parameters={requeue:true}")
    assert line == ("error: hydra.launcher.additional_parameters holds no key requeue: add it with "
                    "+hydra.launcher.additional_parameters.requeue=true")
    check_overrides("train", ["hydra/launcher=submitit_slurm", "+hydra.launcher.additional_parameters.requeue=true"])


def test_a_config_that_sweeps_needs_multirun_and_every_member_is_checked(capsys, monkeypatch):
    from lamini_lm import config

    line = _line(capsys, "train", "experiment=lamini_herd")
    assert "the config sweeps model=t5_small,t5_base," in line and "add -m" in line
    check_overrides("train", ["experiment=lamini_herd", "model=gpt2"])  # one member: a plain run
    composed = []
    compose = config.compose
    monkeypatch.setattr(config, "compose", lambda name, job=(), **kw: composed.append(list(job)) or compose(name, job, **kw))
    check_overrides("train", ["-m", "experiment=lamini_herd"])
    from tests.test_train_config import HERD

    assert {o for job in composed for o in job if o.startswith("model=")} == {f"model={m}" for m in HERD}
