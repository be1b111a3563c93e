"""Load a herd member's weights and tokenizer: from the Hub (or its cache) by id, or build a tiny model
from its config. An unreachable hub becomes one clear error naming the id."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from lamini_lm.errors import UserError

FAMILIES = ("decoder_only", "encoder_decoder")


def _hub_error(what: str, ident: str, e: Exception) -> UserError:
    return UserError(
        f"could not load the {what} '{ident}' ({type(e).__name__}): the Hugging Face Hub is unreachable or the "
        "id is wrong. Work offline by downloading it once elsewhere (`hf download <id>`) into HF_HOME, pointing "
        "model.hub_id / model.tokenizer at a local folder, or using a tiny offline model (model=tiny_gpt2, "
        "tiny_gpt_neo, tiny_t5)"
    )


def load_tokenizer(model_cfg: DictConfig):
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(model_cfg.tokenizer, revision=model_cfg.get("revision") or None)
    except OSError as e:
        raise _hub_error("tokenizer", model_cfg.tokenizer, e) from None
    if tok.pad_token is None:  # GPT-2 family: pad with EOS; padding is masked from attention and loss
        tok.pad_token = tok.eos_token
    return tok


def load_model(model_cfg: DictConfig):
    """A transformers model: pretrained from ``hub_id`` or randomly initialised from ``architecture``."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM

    if model_cfg.family not in FAMILIES:
        raise UserError(f"model.family is '{model_cfg.family}', expected one of {', '.join(FAMILIES)}")
    auto = AutoModelForSeq2SeqLM if model_cfg.family == "encoder_decoder" else AutoModelForCausalLM
    if model_cfg.get("architecture"):
        arch = OmegaConf.to_container(model_cfg.architecture, resolve=True)
        return auto.from_config(AutoConfig.for_model(**arch))
    if not model_cfg.get("hub_id"):
        raise UserError(f"model '{model_cfg.name}' has neither hub_id nor architecture")
    try:
        return auto.from_pretrained(model_cfg.hub_id, revision=model_cfg.get("revision") or None)
    except OSError as e:
        raise _hub_error("model", model_cfg.hub_id, e) from None
