"""The paper's prompt-wrapper ablation, through lm-eval's chat-template hook.

LaMini-LM's evaluation fork (afaji/lm-evaluation-harness, commit 2e5dac4) wrapped the context of every
request, for every model class, in the Alpaca no-input prompt and scored the usual continuation
(" " + choice) after "### Response:". lm-eval 0.4.13 has no wrapper hook; its supported route is
``apply_chat_template`` with a Jinja ``chat_template``. Two details of 0.4.13 (read from its source):

* ``ConfigurableTask.fewshot_context`` hands the template one user message whose content is exactly
  ``doc_to_text(doc)`` (zero-shot, no system prompt), with ``add_generation_prompt=True``;
* ``construct_requests`` then drops the target delimiter (" ") of multiple-choice continuations, so
  "### Response:" would be followed by "negative" instead of the fork's " negative".

So the template renders the style's text exactly and, as its generation prompt, the delimiter " ";
``HFLM._encode_pair`` moves a context's trailing whitespace into the continuation, which gives token
for token the fork's (context, continuation) pair, for causal and seq2seq models alike.
"""

from __future__ import annotations

from lamini_lm import prompts
from lamini_lm.errors import UserError

WRAPPERS = ("alpaca", "none", "export")
TARGET_DELIMITER = " "  # lm-eval's default target_delimiter, which the chat-template path drops


def chat_template(style: prompts.PromptStyle) -> str:
    """A Jinja chat template that renders one user message as ``style.apply(content)``."""
    prefix, sep, suffix = style.template.partition("{instruction}")
    if not sep or "{" in prefix + suffix or "}" in prefix + suffix:
        raise UserError(f"prompt style '{style.name}' cannot become a chat template: {style.template!r}")
    return (
        "{% if messages | length != 1 or messages[0]['role'] != 'user' %}"
        "{{ raise_exception('the " + style.name + " wrapper takes exactly one user message (zero-shot, "
        "no system instruction)') }}{% endif %}"
        + prefix + "{{ messages[0]['content'] }}" + suffix
        + "{% if add_generation_prompt %}" + TARGET_DELIMITER + "{% endif %}"
    )


def resolve(wrapper: str, export_style: prompts.PromptStyle | None) -> prompts.PromptStyle | None:
    """The style every request is wrapped in (None: no wrapper) for the config value ``wrapper``."""
    if wrapper not in WRAPPERS:
        raise UserError(f"unknown wrapper '{wrapper}'; choose one of {', '.join(WRAPPERS)}")
    if wrapper == "none":
        return None
    if wrapper == "alpaca":
        return prompts.get("alpaca")
    # export: the model's own training-time style; 'raw' means no wrapper at all
    return None if export_style is None or export_style.name == "raw" else export_style
