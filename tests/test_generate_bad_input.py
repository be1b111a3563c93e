"""generate.py's config is checked once at its entry: a wrong key or value is one line naming the key, before a
teacher is built, a file is read or anything is sent."""

import pytest

from lamini_lm.errors import UserError
from tests.helpers.generate_kit import spec
from tests.helpers.run import fails_with, run_entry

SUBSET_NAMES = "self_instruct_without_topic, self_instruct_with_topic, generated_p3"


@pytest.mark.parametrize("overrides,key,fragment", [
    (["instructions.n_examples=three"], "instructions.n_examples", "could not be converted to Integer"),  # a type
    (["seed=abc"], "seed", "could not be converted to Integer"),
    (["+instructions.per_cal=5"], "instructions.per_cal", "no such key (a typo? InstructionsSpec has per_call"),
    (["+sizes.alpaca=3"], "sizes", "no such key (a typo? GenerateSpec has"),  # a typo of a top-level key
    (["size.alpaca=-5"], "size.alpaca", "-5 is negative"),
    (["+size.sharegpt=10"], "size.sharegpt", f"no such key (a typo? Sizes has {SUBSET_NAMES}"),  # not a subset
    (["instructions.per_call.generated_p3=0"], "instructions.per_call.generated_p3", "0 must be at least 1"),
    (["instructions.overgenerate=0.5"], "instructions.overgenerate", "0.5 must be at least 1"),
    (["instructions.max_rounds=0"], "instructions.max_rounds", "0 must be at least 1"),
    (["seed_pools.alpaca.path=/nowhere/alpaca_data.json"], "seed_pools.alpaca.path",
     "the seed file /nowhere/alpaca_data.json does not exist"),
    (["seed_pools.p3.hub_configs=[]"], "seed_pools.p3.hub_configs", "is empty"),
    (["prompts.example_guided=/nowhere/figure2.txt"], "prompts.example_guided", "/nowhere/figure2.txt does not exist"),
    (["prompts.example_line='<example></example>'"], "prompts.example_line", "has no {instruction}"),
    (["+filters.profanity={}"], "filters.profanity", "not a known filter (known: length, blacklist"),
    (["+filters.mine={_target_: nowhere.f}"], "filters.mine._target_", "nowhere.f cannot be imported"),
    (["+filters.length.min_word=3"], "filters.length.min_word", "its settings: min_words, max_words"),
    (["dedup.threshold=1.5"], "dedup.threshold", "1.5 must be in (0, 1]"),
    (["decontam.n=-1"], "decontam.n", "-1 must be a positive n-gram size"),
    (["dry_run_estimates.response_tokens.alpaca=-3"], "dry_run_estimates.response_tokens.alpaca", "is negative"),
    (["max_rejected=-1"], "max_rejected", "must be a share"),
    (["stage=everything"], "stage", "'everything' is not a stage; choose one of all, instructions"),
    (["topics=wikipedia_dump"], "topics.dump", "missing a value"),
])
def test_a_wrong_generate_config_is_one_line_naming_the_key(tmp_path, overrides, key, fragment):
    with pytest.raises(UserError) as e:
        spec([f"out_dir={tmp_path / 'out'}", *overrides])
    message = str(e.value)
    assert "\n" not in message and message.startswith(f"{key}: ") and fragment in message, message
    assert not (tmp_path / "out").exists()


def test_the_typed_config_holds_plain_values(tmp_path):
    s = spec([f"out_dir={tmp_path}", "size=smoke", "size.alpaca=3", "~size.original_flan"])
    assert s.size["self_instruct_without_topic"] == 20 and s.size["alpaca"] == 3
    assert s.size["original_flan"] == 0  # a subset the size config leaves out is not wanted
    assert s.instructions.calls("generated_p3", 100) == 15  # 100 * 1.5 / 10
    assert s.seed_pools.pool("p3").hub_configs[0] == "adversarial_qa_dbert_answer_the_following_q"
    assert s.prompts.example_guided.endswith("figure2_example_guided.txt") and isinstance(s.teacher, dict)


def test_generate_py_stops_a_wrong_value_with_exit_2_and_one_line(tmp_path):
    res = run_entry("generate.py", "size.self_instruct_with_topic=-5", f"out_dir={tmp_path / 'out'}",
                    f"hydra.run.dir={tmp_path / 'h'}", timeout=300)
    line = fails_with(res, "size.self_instruct_with_topic: -5 is negative")
    assert line == "error: size.self_instruct_with_topic: -5 is negative: a size is a number of pairs " \
                   "(0 leaves the subset out)"
    assert not (tmp_path / "out").exists()
