"""Export the trained student as a Hugging Face folder: what pipeline(), lm-eval and evaluate.py load.

<run dir>/hf/: config.json, model.safetensors, tokenizer files, generation_config.json,
prompt_style.json, training_config.yaml, a README.md model card with the config and final metrics, and last
EXPORT_COMPLETE.json (export_marker): the folder appears under its name only whole.
"""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import HfApi

from lamini_lm.errors import UserError
from lamini_lm.export_marker import CARD, seal
from lamini_lm.files import DiskFull, is_full, replacing_dir
from lamini_lm.models.spec import ModelSpec

CARD_TEXT = """---
library_name: transformers
pipeline_tag: {pipeline_tag}
base_model: {base_model}
tags: [lamini-lm, instruction-tuning, distillation]
---

# {lamini_name} ({model_name})

{base} instruction-tuned with this repository's `train.py`, reproducing LaMini-LM (Wu et al., 2023).
Prompt style: `{style}` (saved in `prompt_style.json`; inference must wrap instructions the same way).

## Use

```python
{usage}
```

Evaluate with lm-eval: `lm_eval --model hf --model_args pretrained={path} --tasks piqa`
or with this repository: `python evaluate.py model={path}`.

## Final metrics

{metrics}

## Training configuration

```yaml
{config}```
"""


def shown_path(folder: Path) -> str:
    """How the card names its folder: relative to where train.py was launched (outputs/train/<time>/hf), or
    just the folder's name when it lies elsewhere; never an absolute path, which would publish the machine's
    layout with a pushed card."""
    try:
        return str(folder.relative_to(Path.cwd()))
    except ValueError:
        return folder.name


def portable(record, places: dict[str, str]):
    """``record`` (a resolved config) with every absolute path under one of ``places`` (folder -> the name
    shown instead: <run>, <cache>, ~) rewritten, and any other one shown as ``<path>/<its file name>``, so a
    saved config names data and assets by name and publishes none of the machine's folders."""
    if isinstance(record, dict):
        return {k: portable(v, places) for k, v in record.items()}
    if isinstance(record, list):
        return [portable(v, places) for v in record]
    if isinstance(record, str) and record.startswith("/"):
        for folder, name in sorted(places.items(), key=lambda p: -len(p[0])):  # the most specific first
            if record == folder or record.startswith(folder.rstrip("/") + "/"):
                return name + record[len(folder.rstrip("/")):]
        return f"<path>/{Path(record).name}"
    return record


def export(trainer, module, tokenizer, model_cfg: ModelSpec, config_yaml: str, out_dir: str | Path,
           metrics: dict) -> Path | None:
    """Gather the full weights (a collective under FSDP: every rank must call this) and write the
    folder on global rank 0. Returns the folder on rank 0, None elsewhere."""
    state = trainer.strategy.lightning_module_state_dict()
    if not trainer.is_global_zero:
        return None
    prefix = "model."
    weights = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    return write_export(module.model, tokenizer, module.family, module.style, out_dir, model_cfg=model_cfg,
                        metrics=metrics, config_yaml=config_yaml, state_dict=weights)


def write_export(model, tokenizer, family, style, out_dir: str | Path, *, model_cfg: ModelSpec, metrics: dict,
                 config_yaml: str | None = None, state_dict: dict | None = None) -> Path:
    """The export folder for ``model`` (with ``state_dict`` instead of its own weights, if given): written as
    ``<out_dir>.tmp-<pid>``, sealed with its marker (export_marker), then renamed into place, so ``out_dir`` is
    always either the old export or the whole new one."""
    out = Path(out_dir).resolve()
    try:
        with replacing_dir(out) as tmp:
            _write(tmp, out, model, tokenizer, family, style, model_cfg, metrics, config_yaml, state_dict)
            seal(tmp)
    except OSError as e:
        if not is_full(e):
            raise
        weights = (state_dict or model.state_dict()).values()
        raise DiskFull(out.parent, sum(t.numel() * t.element_size() for t in weights) + (16 << 20),
                       f"{out} is left as it was", "export again by running train.py on this run "
                       f"(python train.py hydra.run.dir={out.parent})") from None
    return out


def _write(tmp: Path, out: Path, model, tokenizer, family, style, model_cfg: ModelSpec, metrics: dict,
           config_yaml: str | None, state_dict: dict | None) -> None:
    """Every file of the export into ``tmp``; the card names the folder it will have, ``out``."""
    model.save_pretrained(tmp, state_dict=state_dict, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    gen = model.generation_config
    gen.pad_token_id = tokenizer.pad_token_id
    gen.eos_token_id = tokenizer.eos_token_id
    gen.max_new_tokens = 256
    gen.save_pretrained(tmp)
    style.save(tmp)
    if config_yaml is not None:
        (tmp / "training_config.yaml").write_text(config_yaml)
    instruction = ('instruction = "Please let me know your thoughts on the given place and why you think it '
                   'deserves to be visited: \\"Barcelona, Spain\\""')
    # a decoder-only snippet wraps exactly as in training: an f-string of the saved template
    shown = shown_path(out)
    usage = family.usage.format(path=shown, instruction=instruction, prompt="f" + repr(style.template))
    (tmp / CARD).write_text(CARD_TEXT.format(
        pipeline_tag=family.pipeline_tag,
        base_model=model_cfg.hub_id if model_cfg.init == "pretrained" else "none (randomly initialised)",
        lamini_name=model_cfg.lamini_name, model_name=model_cfg.name,
        base=model_cfg.hub_id if model_cfg.init == "pretrained" else
        f"A randomly initialised {model_cfg.architecture['model_type']}",
        style=style.name, path=shown, usage=usage,
        metrics="\n".join(f"- {k}: {v:.4f}" for k, v in sorted(metrics.items())) or "- none",
        config=config_yaml or "none: not trained by train.py\n",
    ))


def push(folder: Path, repo_id: str, private: bool = True) -> str:
    """Upload an export to a Hub model repo (created if missing, private unless told otherwise); the token
    comes from the environment only. A failure keeps the export and names the command that pushes it later."""
    api = HfApi()
    try:
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        api.upload_folder(repo_id=repo_id, folder_path=str(folder), repo_type="model",
                          commit_message="LaMini-LM student trained with lamini_lm train.py")
    except Exception as e:  # no network, no or a refused token, a bad id: the export stays whole
        first = (str(e).splitlines() or [type(e).__name__])[0][:160]
        raise UserError(f"export.push_to_hub={repo_id} failed ({type(e).__name__}: {first}); the export is kept in "
                        f"{folder}; check HF_TOKEN and the network, then push it with `hf upload {repo_id} "
                        f"{folder} . --repo-type model{' --private' if private else ''}`") from None
    return repo_id
