"""A user's mistake gets one line naming the file, line, key or id, and what to do; never a traceback. Most cases
are rows of tests/test_bad_input_tables.py; these need more than one config or a look inside the result."""

import json

import pytest

from tests.helpers.run import fails_with, run_entry, run_script_inprocess

GOOD = {"instruction": "Say hi.", "response": "Hi!", "instruction_source": "alpaca"}


@pytest.mark.slow
@pytest.mark.parametrize("val_size,takes", [("0.95", 10)])  # a fraction rounded up (a count: the tables)
def test_a_val_size_that_leaves_nothing_to_train_on_is_one_line(tmp_path, val_size, takes):
    data = tmp_path / "d10.jsonl"
    data.write_text((json.dumps(GOOD) + "\n") * 10)
    res = run_entry("train.py", "model=tiny_gpt2", "data=jsonl", f"data.path={data}", f"data.val_size={val_size}",
                    f"hydra.run.dir={tmp_path / 'run'}", "logger=csv")
    fails_with(res, f"data.val_size={val_size} takes {takes} of the 10 records", "a count from 1 to 9")


@pytest.mark.slow
def test_an_unreachable_hub_dataset_names_the_id_and_the_local_file_way(tmp_path):
    res = run_entry("train.py", "model=tiny_gpt2", "data=lamini", f"hydra.run.dir={tmp_path}", "logger=csv")
    fails_with(res, "'MBZUAI/LaMini-instruction'", "data=jsonl")


def test_an_empty_file_or_a_filter_that_keeps_nothing_is_one_line(tmp_path):
    from lamini_lm.data.readers import LocalFile
    from lamini_lm.errors import UserError

    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(UserError, match=r"empty.jsonl holds no records: give a file with records \(data.path\)"):
        LocalFile(str(empty)).load()
    one = tmp_path / "one.jsonl"
    one.write_text(json.dumps(GOOD) + "\n")
    with pytest.raises(UserError, match=r"holds no records of the subsets \['original_p3'\] \(data.subsets\)"):
        LocalFile(str(one), subsets=["original_p3"]).load()
    assert len(LocalFile(str(one)).load()) == 1


def test_a_refused_run_leaves_no_run_folder_but_a_resumed_one_stays(tmp_path, capfd, monkeypatch):
    def run(*argv):
        res = run_script_inprocess("train.py", "model=tiny_gpt2", "logger=csv", *argv, capfd=capfd,
                                   monkeypatch=monkeypatch, cwd=tmp_path)
        fails_with(res)

    earlier = tmp_path / "earlier"  # a run folder from before this command: a resume, kept whatever it holds
    earlier.mkdir()
    # refused by the config check, the data reader, Lightning's Trainer (after recipe.json); by a sweep's job; in a
    # folder named on the command line that this command made
    for argv in (["optim.lr=abc"], ["data=jsonl", f"data.path={tmp_path}/nope.jsonl"], ["trainer.max_epochs=-5"],
                 ["-m", "optim.lr=abc,fast"], [f"hydra.run.dir={tmp_path}/new", "optim.lr=abc"],
                 [f"hydra.run.dir={earlier}", "optim.lr=abc"]):
        run(*argv)
    assert [p.name for p in tmp_path.glob("*/train/*")] == [] and not (tmp_path / "new").exists()
    assert {p.name for p in earlier.iterdir()} == {".hydra", ".owner.lock", "train.log"}
