"""Load a student's weights and tokenizer: from the Hub (or its cache) by id, or built with random
weights from the architecture its config carries. The model's family names the Auto class. An
unreachable hub becomes one clear error naming the id."""

from __future__ import annotations

from lamini_lm import targets
from lamini_lm.errors import UserError
from lamini_lm.models.families import Family
from lamini_lm.models.size import check_size
from lamini_lm.models.spec import ModelSpec

# transformers is imported inside the loaders: train.py checks its config before paying for it


def _hub_error(what: str, ident: str, e: Exception) -> UserError:
    return UserError(
        f"could not load the {what} '{ident}' ({type(e).__name__}): the Hugging Face Hub is unreachable or the "
        "id is wrong. Work offline by downloading it once elsewhere (`hf download <id>`) into HF_HOME, pointing "
        "model.hub_id / model.tokenizer at a local folder, or using a tiny offline model (model=tiny_gpt2, "
        "tiny_gpt_neo, tiny_t5)"
    )


def build_family(spec: ModelSpec) -> Family:
    """The model config's ``family`` (``_target_``: a Family class) as an object."""
    return targets.build(spec.family, "model.family", base=Family)


def load_tokenizer(spec: ModelSpec):
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(spec.tokenizer, revision=spec.revision)
    except OSError as e:
        raise _hub_error("tokenizer", spec.tokenizer, e) from None
    if tok.pad_token is None:  # GPT-2 family: pad with EOS; padding is masked from attention and loss
        tok.pad_token = tok.eos_token
    return tok


def load_model(spec: ModelSpec, family: Family):
    """A transformers model: randomly initialised from ``architecture``, else pretrained from ``hub_id``;
    its size checked against ``model.params``."""
    from transformers import AutoConfig

    auto = family.auto()
    if spec.architecture:
        model = auto.from_config(AutoConfig.for_model(**spec.architecture))
    else:
        try:
            model = auto.from_pretrained(spec.hub_id, revision=spec.revision)
        except OSError as e:
            raise _hub_error("model", spec.hub_id, e) from None
    check_size(model, spec)
    return model
