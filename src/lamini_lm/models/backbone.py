"""Load a student's weights and tokenizer: from the Hub (or its cache) by id, or built with random
weights from the architecture its config carries. The model's family names the Auto class. An
unreachable hub becomes one clear error naming the id."""

from __future__ import annotations

import copy
import inspect
from pathlib import Path

from hydra.utils import get_class

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
        "model.hub_id / model.tokenizer at a local folder, building the config's architecture with random weights "
        "(model.init=random model.tokenizer='${asset:gpt2_tokenizer}' or '${asset:t5_tokenizer}'), or using a tiny "
        "offline model (model=tiny_gpt2, tiny_gpt_neo, tiny_t5)"
    )


def check_gguf(spec: ModelSpec) -> None:
    """``model.gguf_file`` missing from the model folder: said so, with the GGUF files the folder has (transformers
    would report it as an unreachable Hub or a wrong id)."""
    folder = Path(spec.hub_id) if spec.hub_id else None
    if spec.gguf_file and folder is not None and folder.is_dir() and not (folder / spec.gguf_file).is_file():
        have = sorted(p.name for p in folder.glob("*.gguf"))
        raise UserError(f"model.gguf_file={spec.gguf_file} is not in the model folder {folder} ("
                        + (f"it has {', '.join(have)}" if have else "it has no .gguf file")
                        + "): give one of its files, or model.gguf_file=null for a regular model folder")


def build_family(spec: ModelSpec) -> Family:
    """The model config's ``family`` (``_target_``: a Family class) as an object."""
    return targets.build(spec.family, "model.family", base=Family)


def load_tokenizer(spec: ModelSpec):
    from transformers import AutoTokenizer

    check_gguf(spec)
    try:
        # a GGUF file carries its tokenizer too: read it from there when the tokenizer is the model's folder
        gguf = {"gguf_file": spec.gguf_file} if spec.gguf_file and spec.tokenizer == spec.hub_id else {}
        tok = AutoTokenizer.from_pretrained(spec.tokenizer, revision=spec.revision, **gguf)
    except OSError as e:
        raise _hub_error("tokenizer", spec.tokenizer, e) from None
    if tok.pad_token is None:  # GPT-2 family: pad with EOS; padding is masked from attention and loss
        tok.pad_token = tok.eos_token
    return tok


def load_model(spec: ModelSpec, family: Family):
    """A transformers model: pretrained from ``hub_id`` (``init: pretrained``) or randomly initialised from
    ``architecture`` (``init: random``; under ``with torch.device("meta")`` it is built without memory); its size
    checked against ``model.params``."""
    from lamini_lm.models import attention

    attention.register()
    auto = family.auto()
    attn = {"attn_implementation": spec.attn_implementation} if spec.attn_implementation else {}
    if spec.init == "random":
        try:
            model = build_random(auto, spec.architecture, **attn)
        except (ImportError, ValueError) as e:  # transformers refusing the attention implementation
            raise UserError(f"model.attn_implementation={spec.attn_implementation}: "
                            f"{str(e).strip().splitlines()[0]}") from None
    else:
        check_gguf(spec)
        try:
            model = auto.from_pretrained(spec.hub_id, revision=spec.revision,
                                         **({"gguf_file": spec.gguf_file} if spec.gguf_file else {}), **attn)
        except OSError as e:
            raise _hub_error("model", spec.hub_id, e) from None
        if spec.gguf_file:
            model = _plain(auto, model, **attn)
    check_size(model, spec)
    return model


def find_fsdp_block(spec: ModelSpec, family: Family) -> str:
    """``model.fsdp_block`` as a dotted class name; ``auto`` finds it in the model class: the first of its own
    ``_no_split_modules`` (the blocks transformers keeps whole on one device), looked up on the model built on the
    meta device from its config (no weights read)."""
    if spec.fsdp_block != "auto":
        return spec.fsdp_block
    import torch
    from transformers import AutoConfig

    if spec.architecture:  # the hub model's own shape, carried in the config: no file read
        config = AutoConfig.for_model(**spec.architecture)
    else:
        check_gguf(spec)
        try:
            config = AutoConfig.from_pretrained(spec.hub_id, revision=spec.revision,
                                                **({"gguf_file": spec.gguf_file} if spec.gguf_file else {}))
        except OSError as e:
            raise _hub_error("model config", spec.hub_id, e) from None
    with torch.device("meta"):
        model = family.auto().from_config(config)
    names = list(getattr(model, "_no_split_modules", None) or [])
    found = {type(m).__name__: type(m) for m in model.modules() if type(m).__name__ in names}
    if not found:
        raise UserError(f"model.fsdp_block=auto: {type(model).__name__} names no block class (_no_split_modules); "
                        "set model.fsdp_block to its transformer block class, e.g. "
                        "transformers.models.llama.modeling_llama.LlamaDecoderLayer")
    cls = found[next(n for n in names if n in found)]
    return f"{cls.__module__}.{cls.__qualname__}"


def checkpoint_blocks(model) -> None:
    """Activation checkpointing through transformers' own switch: each transformer block keeps only its input and
    recomputes the rest in the backward (torch's non-reentrant checkpoint, which replays the dropout masks), so
    the gradient is the plain one's. The FSDP strategy checkpoints the same blocks through its policy instead."""
    model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})


def compile_blocks(model, block: str) -> int:
    """torch.compile every transformer block (the ``block`` class, model.fsdp_block) in place, dynamic shapes:
    one compiled code shared by all layers, micro-batch lengths without a recompile each; the output layer, whose
    rows change with the targets, stays eager. Returns how many blocks were compiled."""
    cls = get_class(block)
    blocks = [m for m in model.modules() if isinstance(m, cls)]
    for m in blocks:
        m.compile(dynamic=True)
    return len(blocks)


def fuse_gelu(model) -> int:
    """Swap every gelu_new activation (GPT-2, GPT-Neo, Cerebras-GPT, Flan-T5's gated GELU) for transformers' GELUTanh,
    torch's one-kernel tanh GELU: the same function to float rounding (GELUTanh's own docstring), where gelu_new is
    eight element-wise ops, each keeping its input for the backward. On the idle 2-core CPU this made a gpt2-124M
    training step up to 16% faster and what its forward keeps 30% smaller (bench/README.md). The config still says
    gelu_new, so an export loads as the hub model does. Returns how many activations were swapped."""
    from transformers.activations import GELUTanh, NewGELUActivation

    swapped = 0
    for parent in model.modules():
        for name, child in parent.named_children():
            if type(child) is NewGELUActivation:
                setattr(parent, name, GELUTanh())
                swapped += 1
    return swapped


def _plain(auto, model, **kwargs):
    """A GGUF-loaded model as a plain one with the same (dequantized) weights: transformers refuses to
    save_pretrained a model it loaded from GGUF, and the export must be an ordinary safetensors folder."""
    config = copy.deepcopy(model.config)
    del config.quantization_config  # the weights are plain fp32 now
    plain = auto.from_config(config, **kwargs)
    plain.load_state_dict(model.state_dict())
    return plain


def build_random(auto, architecture: dict, **kwargs):
    """``auto.from_config`` of the architecture, with the output embeddings kept apart from the input ones when
    the architecture says ``tie_word_embeddings: false`` (Flan-T5). transformers 5 ties T5's lm_head to its
    input embeddings whatever the config says (it reads the flag as "do not scale the decoder output"), so a
    random Flan-T5 would otherwise lack the separate lm_head its checkpoints have (783M, not 750M)."""
    import torch
    from transformers import AutoConfig, GenerationConfig, PretrainedConfig

    try:
        config = AutoConfig.for_model(**architecture)
    except ValueError:  # an unknown model_type (transformers' message lists every type it knows)
        raise UserError(f"model.architecture.model_type={architecture.get('model_type')} is not a model type "
                        "transformers knows (the herd's: gpt2, gpt_neo, llama, t5)") from None
    base = {*inspect.signature(PretrainedConfig.__init__).parameters, *PretrainedConfig().to_dict()}
    own = [n for n in type(config)().to_dict() if n not in base]
    # generation settings (T5's decoder_start_token_id) are read from the model config too
    known = {*own, *base, *GenerationConfig().to_dict(), *getattr(config, "attribute_map", {})}
    unknown = sorted(k for k in architecture if k not in known)
    if unknown:  # AutoConfig keeps any name silently: a typo would train a model other than the one meant
        raise UserError(f"model.architecture.{unknown[0]} is not a field of {type(config).__name__}: check the "
                        f"name (its own fields: {', '.join(own)})")
    model = auto.from_config(config, **kwargs)
    out, inp = model.get_output_embeddings(), model.get_input_embeddings()
    if architecture.get("tie_word_embeddings") is False and out is not None and out.weight is inp.weight:
        # its own matrix, starting from the same random draw as the input embeddings (T5 v1.1 draws both from
        # one distribution); save_pretrained must then keep it, so it leaves the tied-keys map
        out.weight = torch.nn.Parameter(inp.weight.detach().clone())
        tied = getattr(model, "all_tied_weights_keys", None) or {}
        for key in [k for k in tied if k.startswith("lm_head.")]:
            tied.pop(key)
    return model
