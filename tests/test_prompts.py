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


def _tokenizer(chat_template):
    from transformers import AutoTokenizer

    from lamini_lm import assets

    tok = AutoTokenizer.from_pretrained(assets.path("gpt2_tokenizer"))
    tok.chat_template = chat_template
    return tok


def test_chat_style_is_the_tokenizers_template_around_one_user_turn():
    import pytest

    from lamini_lm.errors import UserError

    # a template whose text has braces of its own: they must survive str.format
    tok = _tokenizer("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{json}\n{% endfor %}"
                     "{% if add_generation_prompt %}<|assistant|>{% endif %}")
    style = prompts.get("chat", tok)
    instruction = "Write {x} in JSON."
    assert style.name == "chat" and style.template == "<|user|>{instruction}{{json}}\n<|assistant|>"
    expected = tok.apply_chat_template([{"role": "user", "content": instruction}], tokenize=False,
                                       add_generation_prompt=True)
    assert style.apply(instruction) == expected == "<|user|>Write {x} in JSON.{json}\n<|assistant|>"
    with pytest.raises(UserError, match="no chat template"):
        prompts.get("chat", _tokenizer(None))
    with pytest.raises(UserError, match="needs the model's tokenizer"):
        prompts.get("chat")
