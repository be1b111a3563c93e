"""Load a student's weights and tokenizer: from the Hub (or its cache) by id, or built with random
weights from the architecture its config carries. The model's family names the Auto class. An
unreachable hub becomes one clear error naming the id."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from lamini_lm.errors import UserError
from lamini_lm.models.families import Family
from lamini_lm.models.size import check_size


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


def load_model(model_cfg: DictConfig, family: Family):
    """A transformers model: pretrained from ``hub_id`` or randomly initialised from ``architecture``; its size
    checked against ``model.params``."""
    model = _load(model_cfg, family)
    check_size(model, model_cfg)
    return model


def _load(model_cfg: DictConfig, family: Family):
    from transformers import AutoConfig

    auto = family.auto()
    if model_cfg.get("architecture"):
        arch = OmegaConf.to_container(model_cfg.architecture, resolve=True)
        return auto.from_config(AutoConfig.for_model(**arch))
    if not model_cfg.get("hub_id"):
        raise UserError(f"model '{model_cfg.name}' has neither hub_id nor architecture")
    try:
        return auto.from_pretrained(model_cfg.hub_id, revision=model_cfg.get("revision") or None)
    except OSError as e:
        raise _hub_error("model", model_cfg.hub_id, e) from None


def build_family(model_cfg: DictConfig) -> Family:
    """The model config's ``family`` node (``_target_``: a Family class) as an object."""
    from hydra.utils import instantiate

    node = model_cfg.get("family")
    if not isinstance(node, DictConfig) or "_target_" not in node:
        raise UserError(f"model.family must name a family class, e.g. {{_target_: lamini_lm.models.families."
                        f"DecoderOnly}}; got {node!r} (model '{model_cfg.get('name')}')")
    try:
        family = instantiate(node)
    except Exception as e:  # hydra wraps the import or constructor error
        raise UserError(f"model.family._target_={node._target_} cannot be built: {str(e).splitlines()[0]}") from None
    if not isinstance(family, Family):
        raise UserError(f"model.family._target_={node._target_} is not a lamini_lm.models.families.Family")
    return family
