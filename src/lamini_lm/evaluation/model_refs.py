"""What `model=` (the config key `models`) names: an export folder, a training run or multirun folder, or a Hugging Face Hub id."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from lamini_lm import export_marker, prompts
from lamini_lm.errors import UserError
from lamini_lm.models import families
from lamini_lm.models.families import Family

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


@dataclass
class ModelRef:
    name: str  # how results and tables call it
    location: str  # what HFLM loads: an absolute folder or a hub id
    local: bool
    family: Family | None = None  # None: unknown until loaded (hub ids)
    style: prompts.PromptStyle | None = None  # the export's prompt style (prompt_style.json)
    revision: str = "main"
    info: dict = field(default_factory=dict)

    def record(self) -> dict:
        """Provenance written next to every result: where the model came from, which weights exactly."""
        return {"name": self.name, "location": self.location, "local": self.local, "revision": self.revision,
                "architecture": self.family.architecture if self.family else None,
                "prompt_style": self.style.name if self.style else None, **self.info}


def weights_sha256(folder: Path) -> tuple[str, dict[str, str]]:
    """One digest over the weight files (sorted), so a result names the exact weights it came from, and each
    file's own (read in the same pass), which the export's marker is checked against."""
    h, each = hashlib.sha256(), {}
    files = sorted(p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin") and p.is_file())
    for p in files:
        h.update(p.name.encode())
        own = hashlib.sha256()
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
                own.update(chunk)
        each[p.name] = own.hexdigest()
    return h.hexdigest(), each


def _training_run(folder: Path) -> dict:
    """The W&B run that trained the export (train.py writes wandb_run.json beside the weights)."""
    f = folder / "wandb_run.json"
    return {"training_wandb": json.loads(f.read_text())} if f.exists() else {}


def _training_model(folder: Path) -> dict:
    """train.py's export carries its config: which herd member (Table 3 name) and base model it is."""
    f = folder / "training_config.yaml"
    model = (yaml.safe_load(f.read_text()) or {}).get("model", {}) if f.exists() else {}
    return {k: model[k] for k in ("lamini_name", "hub_id") if isinstance(model, dict) and model.get(k)}


def _export(folder: Path, name: str) -> ModelRef:
    try:  # a damaged or foreign folder: its config.json, training_config.yaml or model type unreadable
        config = json.loads((folder / "config.json").read_text())
        family, trained = families.of_export(folder), _training_model(folder)
    except (json.JSONDecodeError, yaml.YAMLError, ValueError, OSError) as e:
        why = " ".join(str(e).split())[:200]
        raise UserError(f"{folder} is not a readable model export ({type(e).__name__}: {why}): give train.py's "
                        "<run>/hf folder or a hub id (model=...)") from None
    digest, each = weights_sha256(folder)
    export_marker.check(folder, each)  # what lm-eval is handed is whole: every file its marker lists, intact
    style = prompts.load(folder) if (folder / prompts.PROMPT_STYLE_FILE).exists() else None
    return ModelRef(name=name, location=str(folder.resolve()), local=True, family=family, style=style,
                    revision="local", info={"weights_sha256": digest,
                                            "model_type": config.get("model_type"), **trained,
                                            **_training_run(folder)})


def _name_for(run_dir: Path, root: Path) -> str:
    rel = run_dir.resolve().relative_to(root.resolve()) if run_dir.resolve() != root.resolve() else Path()
    return "/".join([root.resolve().name, *rel.parts])


def resolve(spec: str, revision: str = "main") -> list[ModelRef]:
    """Every model ``spec`` names; a folder holding no export is an error, never an empty evaluation."""
    path = Path(str(spec)).expanduser()
    cut_off = export_marker.interrupted(path)
    if cut_off:
        raise UserError(f"model={spec}: {cut_off}")
    if path.exists():
        _refuse_interrupted(path, spec)
        if not path.is_dir():
            raise UserError(f"model={spec} is a file; give an export folder (with config.json), a training run "
                            "or multirun folder, or a Hugging Face Hub id")
        if (path / "config.json").exists():
            name = path.resolve().parent.name if path.name == "hf" else path.resolve().name
            return [_export(path, name)]
        if (path / "hf" / "config.json").exists():
            return [_export(path / "hf", path.resolve().name)]
        exports = sorted(p.parent for p in path.rglob("hf/config.json"))
        if not exports:
            raise UserError(f"model={spec} is not a model export: no config.json in it, no hf/ export and no "
                            "*/hf exports below it (train.py writes <run dir>/hf/)")
        return [_export(e, _name_for(e.parent, path)) for e in exports]
    if str(spec).startswith((".", "/", "~")) or not _HUB_ID.match(str(spec)):
        raise UserError(f"model={spec} does not exist (not a folder) and is not a Hugging Face Hub id")
    return [ModelRef(name=str(spec), location=str(spec), local=False, revision=revision)]


def _refuse_interrupted(path: Path, spec) -> None:
    """An export killed while written leaves ``hf.tmp-<pid>`` and no ``hf`` (export_marker): say so, instead of
    evaluating the others of a sweep or finding no export at all."""
    if not path.is_dir() or (path / "config.json").exists():
        return
    for tmp in sorted(path.rglob("hf.tmp-*")):
        cut_off = export_marker.interrupted(tmp.parent / "hf")
        if cut_off:
            raise UserError(f"model={spec}: {cut_off}")


def resolve_all(specs, revision: str = "main") -> list[ModelRef]:
    if specs is None or specs == "" or (not isinstance(specs, str) and len(specs) == 0):
        raise UserError("no model given: pass model=<export dir | training multirun dir | hub id>")
    specs = [specs] if isinstance(specs, str) else list(specs)
    refs = [r for s in specs for r in resolve(s, revision)]
    names = [r.name for r in refs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise UserError(f"two models would share the result name(s) {', '.join(dup)}; evaluate them in separate runs")
    return refs
