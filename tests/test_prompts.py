from lamini_lm import prompts

ALPACA = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the "
    "request.\n\n### Instruction:\nName three primary colours.\n\n### Response:"
)


def test_alpaca_wrapper_is_the_exact_no_input_string():
    # stanford_alpaca PROMPT_DICT["prompt_no_input"]: no newline after "### Response:"
    assert prompts.get("alpaca").apply("Name three primary colours.") == ALPACA


def test_raw_style_passes_the_instruction_through():
    assert prompts.get("raw").apply("Translate: cat") == "Translate: cat"


def test_style_round_trips_through_a_folder(tmp_path):
    prompts.get("alpaca").save(tmp_path)
    assert prompts.load(tmp_path) == prompts.get("alpaca")
