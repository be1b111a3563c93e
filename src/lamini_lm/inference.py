"""Load a student (an export, or any hub model) and answer instructions in its own prompt style:
sample tables, human-evaluation responses, demos."""

from __future__ import annotations

from pathlib import Path

from lamini_lm import export_marker, prompts
from lamini_lm.errors import UserError
from lamini_lm.models import families

# transformers is imported inside the functions that load models: it costs seconds at import


def load(location: str | Path, revision: str | None = None):
    """(model, tokenizer, family, prompt style) of an export written by train.py, or of a hub id / foreign
    folder, which gets its family's default style (LaMini's convention for its released models)."""
    from safetensors import SafetensorError
    from transformers import AutoConfig, AutoTokenizer

    folder = Path(location)
    cut_off = export_marker.interrupted(folder)
    if cut_off:
        raise UserError(cut_off)
    if folder.is_dir():
        if not (folder / "config.json").exists():
            raise UserError(f"{folder} is not a model export (no config.json); train.py writes one to <run dir>/hf/")
        export_marker.check(folder)  # an interrupted or cut-short export is one line, not a loader's traceback
        family = families.of_export(folder)
        style = prompts.load(folder) if (folder / prompts.PROMPT_STYLE_FILE).exists() else family.style()
        try:
            return family.auto().from_pretrained(folder), AutoTokenizer.from_pretrained(folder), family, style
        except (OSError, ValueError, SafetensorError) as e:  # damaged inside, though whole by its sizes
            first = (str(e).splitlines() or [type(e).__name__])[0][:200]
            raise UserError(f"{folder} is a damaged model export ({type(e).__name__}: {first}); "
                            f"{export_marker.redo(folder)}") from None
    try:
        family = families.from_hf_config(AutoConfig.from_pretrained(location, revision=revision))
        model = family.auto().from_pretrained(location, revision=revision)
        tok = AutoTokenizer.from_pretrained(location, revision=revision)
    except OSError as e:
        raise UserError(f"cannot load model '{location}': {str(e).splitlines()[0]}") from None
    return model, tok, family, family.style()


def generate(model, tokenizer, family: families.Family, style: prompts.PromptStyle, instructions: list[str], *,
             batch_size: int = 8, max_new_tokens: int = 128, **generate_kwargs) -> list[str]:
    """Responses to ``instructions``, wrapped in ``style``; greedy unless generate_kwargs say otherwise."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    max_new_tokens = family.new_tokens(model, max_new_tokens)  # capped, and warned about, once for all batches
    was_training = model.training
    model.eval()
    out: list[str] = []
    try:
        for i in range(0, len(instructions), batch_size):
            batch = [style.apply(x) for x in instructions[i : i + batch_size]]
            out += family.generate(model, tokenizer, batch, max_new_tokens=max_new_tokens, **generate_kwargs)
    finally:
        model.train(was_training)
    return out
