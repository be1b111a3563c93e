"""A user's mistake gets one line naming the file, line, key or id, and what to do; never a traceback."""

import json

import pytest

from tests.helpers.run import fails_with, run_entry

GOOD = {"instruction": "Say hi.", "response": "Hi!", "instruction_source": "alpaca"}


@pytest.mark.parametrize("bad_line,message", [
    ('{"instruction": "Say hi.", "response": ', "broken JSON"),
    (json.dumps({"instruction": "Say hi.", "instruction_source": "alpaca"}), "missing field 'response'"),
    (json.dumps({**GOOD, "instruction_source": "sharegpt"}), "'instruction_source' is 'sharegpt'"),
])
def test_a_broken_data_line_is_named_by_file_and_line(tmp_path, bad_line, message):
    data = tmp_path / "d_all.jsonl"
    data.write_text("\n".join([json.dumps(GOOD)] * 4 + [bad_line] + [json.dumps(GOOD)] * 3) + "\n")
    res = run_entry("train.py", "model=tiny_gpt2", "data=jsonl", f"data.path={data}", f"hydra.run.dir={tmp_path / 'run'}",
                    "logger=csv")
    fails_with(res, f"{data}:5", message)


def test_a_missing_data_file_is_named(tmp_path):
    res = run_entry("train.py", "model=tiny_gpt2", "data=jsonl", f"data.path={tmp_path / 'nope.jsonl'}", f"hydra.run.dir={tmp_path}",
                    "logger=csv")
    fails_with(res, "nope.jsonl", "does not exist")


@pytest.mark.parametrize("val_size,takes", [("0.99", 10), ("0.95", 10), ("10", 10)])
def test_a_val_size_that_leaves_nothing_to_train_on_is_one_line(tmp_path, val_size, takes):
    data = tmp_path / "d10.jsonl"
    data.write_text((json.dumps(GOOD) + "\n") * 10)
    res = run_entry("train.py", "model=tiny_gpt2", "data=jsonl", f"data.path={data}", f"data.val_size={val_size}",
                    f"hydra.run.dir={tmp_path / 'run'}", "logger=csv")
    fails_with(res, f"data.val_size={val_size} takes {takes} of the 10 records", "a count from 1 to 9")


def test_an_unreachable_hub_model_names_the_id_and_the_offline_way(tmp_path):
    res = run_entry("train.py", "model=tiny_gpt2", "model=gpt2_xl", f"hydra.run.dir={tmp_path}", "logger=csv")
    fails_with(res, "'openai-community/gpt2-xl'", "model.init=random", "model=tiny_gpt2")


def test_a_global_batch_the_devices_cannot_split_is_refused(tmp_path):
    res = run_entry("train.py", "model=tiny_gpt2", "global_batch_size=30", "micro_batch_size=8", f"hydra.run.dir={tmp_path}",
                    "logger=csv")
    fails_with(res, "global_batch_size=30", "micro_batch_size=8")


def test_an_unreachable_hub_dataset_names_the_id_and_the_local_file_way(tmp_path):
    res = run_entry("train.py", "model=tiny_gpt2", "data=lamini", f"hydra.run.dir={tmp_path}", "logger=csv")
    fails_with(res, "'MBZUAI/LaMini-instruction'", "data=jsonl")



def test_a_setting_the_data_reader_does_not_take_is_named_before_the_model_loads(tmp_path):
    res = run_entry("train.py", "model=tiny_gpt2", "+data.reader.bogus=1", f"hydra.run.dir={tmp_path}", "logger=csv")
    fails_with(res, "data.reader.bogus is not a setting of lamini_lm.data.readers.LocalFile", "path, subsets, limit")


@pytest.mark.parametrize("override,fragments", [
    ("+trainer.foo=1", ["trainer.foo is not a setting of lightning.pytorch.Trainer"]),
    ("trainer.precision=17", ["trainer: Precision 17 is invalid"]),
    ("+callbacks.x.y=1", ["callbacks.x has no _target_"]),
    ("~logger", ["no logger is configured", "logger=csv"]),
])
def test_a_trainer_logger_or_callback_lightning_refuses_is_one_line_before_the_model_loads(tmp_path, override, fragments):
    res = run_entry("train.py", "model=tiny_gpt2", "logger=csv", override, f"hydra.run.dir={tmp_path}")
    fails_with(res, *fragments)
    assert not (tmp_path / "checkpoints").exists()


def test_a_wrong_config_value_is_one_line_naming_the_key(tmp_path):
    # the in-process cases are in test_config.py; this is the entry point's path to exit 2
    res = run_entry("train.py", "model=tiny_gpt2", "model.lr=fast", f"hydra.run.dir={tmp_path}", "logger=csv")
    fails_with(res, "model.lr", "could not be converted to Float")


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
