"""Training on a user's own data (data.fields, conf/data/base/records.yaml): other field names, an Alpaca input,
chat messages, records without a subset; as JSONL, JSON, Parquet or a hub dataset; every bad record one line
naming it and what to set."""

import json

import pytest

from lamini_lm import config
from lamini_lm.data.fields import UNSPECIFIED, Fields, to_record
from lamini_lm.errors import UserError
from lamini_lm.rows import iter_rows
from tests.helpers.run import run_entry

ALPACA = [{"instruction": "Add.", "input": "2 and 3", "output": "5"},
          {"instruction": "Say hi.", "input": "", "output": "Hi!"}]


def _turns(*pairs):
    return [{"role": r, "content": c} for r, c in pairs]


def _jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def _record(row, **fields):
    return to_record(row, "d.jsonl:1", Fields(**fields))


# the formats: every row named by the line it starts on (JSON, JSONL) or its row (Parquet)

def test_a_json_list_names_each_record_by_the_line_it_starts_on(tmp_path):
    path = tmp_path / "alpaca_data.json"
    path.write_text(json.dumps(ALPACA, indent=4))  # Alpaca's own layout: one key per line
    assert [(w, r) for w, r in iter_rows(path)] == [(f"{path}:2", ALPACA[0]), (f"{path}:7", ALPACA[1])]
    path.write_text(" [ ] ")
    assert list(iter_rows(path)) == []


def test_a_json_file_may_hold_json_lines(tmp_path):
    path = _jsonl(tmp_path / "d.json", ALPACA)
    assert list(iter_rows(path)) == [(f"{path}:1", ALPACA[0]), (f"{path}:2", ALPACA[1])]


@pytest.mark.parametrize("content, message", [
    (b'[\n  {"instruction": "ok"},\n  {"instruction": broken}\n]',
     r"d.json:3: broken JSON \(Expecting value at column 19\)"),
    (b'[\n  {"instruction": "ok"}\n  {"instruction": "x"}\n]', r"d.json:3: broken JSON \(Expecting ',' delimiter"),
    (b'[\n {"instruction": "caf\xe9"}]', r"d.json:2: not valid UTF-8"),
    (b'{"instruction": "ok"}\n{broken\n', r"d.json:2: broken JSON"),
])
def test_a_broken_json_file_is_one_line_naming_the_line(tmp_path, content, message):
    (tmp_path / "d.json").write_bytes(content)
    with pytest.raises(UserError, match=message):
        list(iter_rows(tmp_path / "d.json"))


def test_parquet_rows_are_named_by_row(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(ALPACA), tmp_path / "d.parquet")
    assert [w for w, _ in iter_rows(tmp_path / "d.parquet")] == [f"{tmp_path}/d.parquet row {i}" for i in (1, 2)]
    (tmp_path / "x.parquet").write_text("not parquet")
    with pytest.raises(UserError, match=r"x.parquet is not a readable Parquet file"):
        list(iter_rows(tmp_path / "x.parquet"))


def test_generate_seed_pools_read_json_lists_through_the_same_reader(tmp_path):
    from lamini_lm.distill.seed_pools import SeedPoolsSpec, load_pool

    path = tmp_path / "alpaca.json"
    path.write_text(json.dumps([{"instruction": "Name a colour."}, {"text": "no instruction"}], indent=2))
    pools = config.typed(config.compose("generate", [f"seed_pools.alpaca.path={path}"]).seed_pools, SeedPoolsSpec)
    with pytest.raises(UserError, match=rf"{path}:5: missing field 'instruction' \(seed_pools.alpaca"):
        load_pool("alpaca", pools, 0)


def test_the_analysis_still_needs_the_seven_subsets(tmp_path):
    from lamini_lm.data.records import read_records

    path = tmp_path / "d.json"  # the analysis reads through the same rows, but groups records by subset
    path.write_text(json.dumps([{"instruction": "Q", "response": "A"}]))
    with pytest.raises(UserError, match=rf"{path}:1: missing field 'instruction_source'"):
        list(read_records(path))


# the mapping

def test_fields_map_other_names_and_join_an_alpaca_input_after_a_blank_line():
    assert _record(ALPACA[0], response="output") == {"instruction": "Add.\n\n2 and 3", "response": "5",
                                                     "instruction_source": UNSPECIFIED, "id": None}
    assert _record(ALPACA[1], response="output")["instruction"] == "Say hi."  # an empty input adds nothing
    assert _record(ALPACA[0], response="output", input=None)["instruction"] == "Add."
    row = {"prompt": "Q", "completion": "A", "origin": "alpaca", "key": 7}
    assert _record(row, instruction="prompt", response="completion", instruction_source="origin", id="key") == {
        "instruction": "Q", "response": "A", "instruction_source": "alpaca", "id": "7"}  # an id is kept as text
    assert _record({**row, "id": "x"}, instruction="prompt", response="completion", id=None)["id"] is None


def test_instruction_source_is_optional_but_checked_when_given():
    good = {"instruction": "Q", "response": "A"}
    assert _record(good)["instruction_source"] == UNSPECIFIED
    assert _record({**good, "instruction_source": None})["instruction_source"] == UNSPECIFIED  # a Parquet gap
    assert _record({**good, "instruction_source": "generated_p3"})["instruction_source"] == "generated_p3"
    with pytest.raises(UserError, match=r"d.jsonl:1: field 'instruction_source' is 'sharegpt', expected one of "
                                        r"self_instruct_without_topic.*data.fields.instruction_source=null"):
        _record({**good, "instruction_source": "sharegpt"})
    ignored = _record({**good, "instruction_source": "sharegpt"}, instruction_source=None)
    assert ignored["instruction_source"] == UNSPECIFIED


@pytest.mark.parametrize("row, fields, message", [
    ({"prompt": "Q"}, dict(instruction="prompt", response="output"),
     "d.jsonl:1: missing field 'output' (data.fields.response=output)"),
    ({"output": "A"}, dict(instruction="prompt", response="output"),
     "d.jsonl:1: missing field 'prompt' (data.fields.instruction=prompt)"),
    ({"instruction": "Q", "response": 3}, {}, "d.jsonl:1: field 'response' must be a string, got int"),
    ({"instruction": "Q", "response": "A", "input": ["x"]}, {}, "d.jsonl:1: field 'input' must be a string, got list"),
    ({"prompt": "Q", "output": "A"}, {},
     "d.jsonl:1: no 'instruction' and 'response' fields and no 'messages' list (the record has prompt, output): "
     "name the fields that hold the instruction and the response (data.fields.instruction=<field> "
     "data.fields.response=<field>), or give chat messages (data.fields.messages=<field>)"),
    (["Q", "A"], {}, "d.jsonl:1: expected a JSON object, got list"),
])
def test_a_record_that_does_not_map_is_one_line_naming_the_key_to_set(row, fields, message):
    with pytest.raises(UserError) as e:
        _record(row, **fields)
    assert str(e.value).startswith(message), str(e.value)


# chat messages

def test_one_user_turn_is_the_instruction_and_the_last_assistant_turn_the_response():
    row = {"messages": _turns(("user", "Name a colour."), ("assistant", "Blue."))}
    assert _record(row) == {"instruction": "Name a colour.", "response": "Blue.", "instruction_source": UNSPECIFIED,
                            "id": None}


def test_a_system_turn_comes_first_separated_by_a_blank_line():
    row = {"messages": _turns(("system", "Be brief."), ("user", "Name a colour."), ("assistant", "Blue."))}
    assert _record(row)["instruction"] == "Be brief.\n\nName a colour."


def test_more_turns_are_a_transcript_ending_with_the_last_user_turn():
    row = {"conversation": _turns(("system", "Be brief."), ("user", "Hi."), ("assistant", "Hello."),
                                  ("user", "Name a colour."), ("assistant", "Blue.")), "instruction_source": "alpaca"}
    assert _record(row, messages="conversation") == {
        "instruction": "Be brief.\n\nUser: Hi.\n\nAssistant: Hello.\n\nUser: Name a colour.", "response": "Blue.",
        "instruction_source": "alpaca", "id": None}


def test_mapped_fields_come_before_messages():
    row = {"instruction": "Q", "response": "A", "messages": _turns(("user", "x"), ("assistant", "y"))}
    assert _record(row)["instruction"] == "Q"


@pytest.mark.parametrize("messages, message", [
    (_turns(("user", "Hi.")), "d.jsonl:1: 'messages' has no assistant turn"),
    (_turns(("user", "Hi."), ("assistant", "Hello."), ("user", "Bye.")),
     "d.jsonl:1: 'messages' ends with a user turn: a conversation must end with the assistant's response"),
    (_turns(("system", "Be brief."), ("assistant", "Hello.")),
     "d.jsonl:1: the last turn of 'messages' answers no user turn"),
    ([{"role": "user"}, {"role": "assistant", "content": "x"}],
     "d.jsonl:1: turn 1 of 'messages' needs a 'role' and a 'content'"),
    ([{"content": "x"}], "d.jsonl:1: turn 1 of 'messages' needs a 'role' and a 'content'"),
    (_turns(("user", "Hi."), ("tool", "x")),
     "d.jsonl:1: turn 2 of 'messages' has the role 'tool': use system, user or assistant"),
    ([{"role": "user", "content": [{"type": "text", "text": "Hi."}]}],
     "d.jsonl:1: turn 1 of 'messages' has a 'content' of type list: give its text as a string"),
    ([], "d.jsonl:1: field 'messages' must be a list of {\"role\""),
    ("Hi.", "d.jsonl:1: field 'messages' must be a list of"),
])
def test_a_bad_conversation_is_one_line_naming_the_record_and_the_fix(messages, message):
    with pytest.raises(UserError) as e:
        _record({"messages": messages})
    assert str(e.value).startswith(message) and "\n" not in str(e.value), str(e.value)


# the readers and the configs

def test_every_local_format_trains_through_the_same_mapping(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lamini_lm.data.readers import LocalFile

    want = {"instruction": ["Add.\n\n2 and 3", "Say hi."], "response": ["5", "Hi!"],
            "instruction_source": [UNSPECIFIED] * 2, "id": [None, None]}
    (tmp_path / "d.json").write_text(json.dumps(ALPACA, indent=2))
    _jsonl(tmp_path / "d.jsonl", ALPACA)
    pq.write_table(pa.Table.from_pylist(ALPACA), tmp_path / "d.parquet")
    for name in ("d.json", "d.jsonl", "d.parquet"):
        assert LocalFile(str(tmp_path / name), fields={"response": "output"}).load().to_dict() == want, name


def test_a_changed_mapping_or_subset_is_not_served_from_the_cache(tmp_path):
    from lamini_lm.data.readers import LocalFile

    path = _jsonl(tmp_path / "d.jsonl", [{"q": "Q", "a": "A", "b": "B", "instruction_source": "alpaca"},
                                         {"q": "R", "a": "C", "b": "D"}])
    assert LocalFile(str(path), fields={"instruction": "q", "response": "a"}).load()["response"] == ["A", "C"]
    assert LocalFile(str(path), fields={"instruction": "q", "response": "b"}).load()["response"] == ["B", "D"]
    only = LocalFile(str(path), subsets=["unspecified"], fields={"instruction": "q", "response": "a"}).load()
    assert only["instruction"] == ["R"]
    with pytest.raises(UserError, match=r"d.jsonl:1: missing field 'z' \(data.fields.response=z\)"):
        LocalFile(str(path), fields={"instruction": "q", "response": "z"}).load()


def test_a_hub_dataset_maps_its_rows_and_names_a_bad_one(tmp_path):
    from lamini_lm.data.readers import HubDataset

    repo = tmp_path / "my-chats"  # laid out like a hub dataset: its data files in a folder
    repo.mkdir()
    _jsonl(repo / "train.jsonl", [{"messages": _turns(("user", "Hi."), ("assistant", "Hello."))},
                                  {"messages": _turns(("user", "Bye."), ("assistant", "Bye!")),
                                   "instruction_source": "alpaca"}])
    ds = HubDataset(str(repo), subsets=["unspecified"]).load()
    assert ds.to_dict() == {"instruction": ["Hi."], "response": ["Hello."], "instruction_source": [UNSPECIFIED],
                            "id": [None]}
    assert HubDataset(str(repo), limit=1).load()["instruction"] == ["Hi."]
    _jsonl(repo / "train.jsonl", [{"messages": _turns(("user", "Hi."), ("assistant", "Hello."))},
                                  {"messages": _turns(("user", "Bye."))}])
    with pytest.raises(UserError, match=rf"{repo} row 2: 'messages' has no assistant turn"):
        HubDataset(str(repo)).load()


def _train_spec(*overrides):
    from lamini_lm.training.spec import TrainSpec

    return config.typed(config.compose("train", ["paths.output_dir=/tmp/unused", *overrides]), TrainSpec)


def test_data_hub_and_lamini_build_a_hub_reader_with_the_mapping():
    from lamini_lm import targets
    from lamini_lm.data.readers import HubDataset

    reader = targets.build(_train_spec("data=hub", "data.name=tatsu-lab/alpaca", "data.fields.response=output")
                           .data.reader, "data.reader")
    assert isinstance(reader, HubDataset) and reader.name == "tatsu-lab/alpaca" and reader.split == "train"
    assert reader.fields == Fields(response="output")
    reader = targets.build(_train_spec("data=lamini", "data.subsets=[alpaca]").data.reader, "data.reader")
    assert reader.name == "MBZUAI/LaMini-instruction" and reader.subsets == ["alpaca"] and reader.fields == Fields()


@pytest.mark.parametrize("overrides, message", [
    (["data=hub"], "data.name: missing a value"),
    (["+data.fields.prompt=x"], "data.fields.prompt: no such key (a typo? Fields has instruction, response, input, "
                                "instruction_source, messages, id)"),
    (["data.fields.response=instruction"],
     "data.fields.response: names the field 'instruction', as data.fields.instruction does"),
    (["data.fields.instruction="], "data.fields.instruction: is empty"),
    (["data.subsets=[sharegpt]"],
     "data: subsets has unknown value(s) ['sharegpt']; known: self_instruct_without_topic"),
])
def test_a_wrong_data_config_is_one_line_naming_the_key(overrides, message):
    with pytest.raises(UserError) as e:
        _train_spec(*overrides)
    assert str(e.value).startswith(message), str(e.value)


def test_data_subsets_may_select_the_records_without_a_subset():
    assert _train_spec("data.subsets=[unspecified,alpaca]").data.subsets == ["unspecified", "alpaca"]


# train.py end to end: a tiny student on a handful of the user's records

TINY = ["model=tiny_gpt2", "logger=csv", "trainer.max_epochs=1", "data.val_size=2", "global_batch_size=4",
        "micro_batch_size=4", "callbacks.sample_generations.max_new_tokens=4", "export.enabled=false"]


def _train(tmp_path, data, *overrides):
    out = tmp_path / "run"
    res = run_entry("train.py", *TINY, "data=jsonl", f"data.path={data}", *overrides, f"hydra.run.dir={out}")
    assert res.returncode == 0, res.stderr[-3000:]
    assert json.loads((out / "metrics.json").read_text())["global_step"] == 1
    return [json.loads(x)["instruction"] for x in (out / "samples.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_train_py_trains_on_chat_messages(tmp_path):
    chats = [{"messages": _turns(("system", "Be brief."), ("user", f"Hi {i}."), ("assistant", "Hello."),
                                 ("user", f"Count to {i}."), ("assistant", " ".join(map(str, range(1, i + 1)))))}
             for i in range(1, 7)]
    seen = _train(tmp_path, _jsonl(tmp_path / "chats.jsonl", chats))
    assert len(seen) == 2 and all(s.startswith("Be brief.\n\nUser: Hi ") and "\n\nUser: Count to" in s for s in seen)


@pytest.mark.slow
def test_train_py_trains_on_other_field_names(tmp_path):
    rows = [{"prompt": f"Add {i} and {i}.", "output": str(2 * i), "origin": "alpaca" if i % 2 else None}
            for i in range(1, 7)]
    seen = _train(tmp_path, _jsonl(tmp_path / "mine.jsonl", rows), "data.fields.instruction=prompt",
                  "data.fields.response=output", "data.fields.instruction_source=origin")
    assert len(seen) == 2 and all(s.startswith("Add ") for s in seen)
