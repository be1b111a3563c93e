"""An export is complete only with its marker, written last: ``EXPORT_COMPLETE.json`` lists every file of the
folder with its size in bytes and its sha256. Every reader of an export (evaluate.py, so also the model it hands
to lm-eval, and lamini_lm.inference.load) calls ``check`` first, which refuses an incomplete or damaged folder
in one line naming what is missing. The model card (README.md) is listed by name only: evaluate.py adds scores
to it.

A folder without the marker is accepted when it is whole as far as can be told without loading it: an export
written by train.py before the marker existed (its last file, README.md, present), or any Hugging Face model
folder. Whole means: config.json readable, every weight file its index lists present, each safetensors file as
long as its own header says, a pytorch_model.bin whose zip directory reads, and a tokenizer.
"""

from __future__ import annotations

import hashlib
import json
import struct
import zipfile
from pathlib import Path

from lamini_lm.assets import hash_file
from lamini_lm.errors import UserError
from lamini_lm.files import write_atomic

MARKER = "EXPORT_COMPLETE.json"
CARD = "README.md"
OURS = "prompt_style.json"  # train.py's exports hold it (lamini_lm.prompts.PROMPT_STYLE_FILE)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "spiece.model", "tokenizer.model")


def seal(folder: Path) -> None:
    """Write ``folder``'s marker: call it once every other file is written."""
    files = {p.name: {"bytes": p.stat().st_size, "sha256": sha256(p)}
             for p in sorted(Path(folder).iterdir()) if p.is_file() and p.name not in (MARKER, CARD)}
    write_atomic(Path(folder) / MARKER, json.dumps({"files": files, "card": CARD}, indent=1) + "\n")


def sha256(path: Path) -> str:
    return hash_file(hashlib.sha256(), path).hexdigest()


def redo(folder: Path) -> str:
    """How to write ``folder`` again."""
    if folder.name == "hf":  # train.py's <run>/hf
        return f"export it again by running train.py on its run (python train.py hydra.run.dir={folder.parent})"
    return "write, copy or download it again"


def interrupted(folder: Path) -> str | None:
    """When ``folder`` does not exist but an export into it was cut off (``<name>.tmp-<pid>`` beside it): why."""
    if folder.exists() or not folder.parent.is_dir():
        return None
    tmp = next((p for p in sorted(folder.parent.iterdir()) if p.name.startswith(f"{folder.name}.tmp-")), None)
    if tmp is None:
        return None
    return f"the export to {folder} was interrupted ({tmp.name} is incomplete and there is no {folder.name}/); " \
           f"{redo(folder)}"


def check(folder: str | Path, digests: dict[str, str] | None = None) -> None:
    """Refuse ``folder`` unless it is a whole export: one UserError naming what is missing or damaged and how to
    write it again. ``digests`` (file name -> sha256, from a caller that reads the files anyway) are compared with
    the marker's too."""
    folder = Path(folder)
    marker = folder / MARKER
    if marker.exists():
        problem = _against_marker(folder, marker, digests or {})
    else:
        problem = _unmarked(folder)
    if problem:
        raise UserError(f"{folder} is not a complete model export: {problem}; {redo(folder)}")


def _against_marker(folder: Path, marker: Path, digests: dict[str, str]) -> str | None:
    try:
        record = json.loads(marker.read_text())
        files, card = record["files"], record.get("card")
        sizes = {name: int(f["bytes"]) for name, f in files.items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        return f"its marker {MARKER} is unreadable"
    missing = [n for n in [*sizes, *([card] if card else [])] if not (folder / n).is_file()]
    if missing:
        return f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing"
    for name, size in sizes.items():
        actual = (folder / name).stat().st_size
        if actual != size:
            return f"{name} has {actual} bytes, its marker says {size} (cut short or changed since the export)"
    for name, digest in digests.items():
        if name in files and files[name].get("sha256") != digest:
            return f"{name} does not match its sha256 in {MARKER} (changed since the export)"
    return _weights(folder)


def _unmarked(folder: Path) -> str | None:
    if not (folder / "config.json").is_file():
        return "config.json is missing"
    try:
        config = json.loads((folder / "config.json").read_text())
    except (ValueError, UnicodeDecodeError):
        config = None
    if not isinstance(config, dict):
        return "config.json is not readable JSON"
    ours = (folder / OURS).exists() or (folder.parent / ".hydra").is_dir()  # train.py's, in its run folder
    if ours and not (folder / CARD).exists():  # train.py wrote the card last
        return f"{CARD} is missing, and with it the export's marker {MARKER} (the export was interrupted)"
    if not any((folder / n).exists() for n in TOKENIZER_FILES):
        return f"it has no tokenizer (none of {', '.join(TOKENIZER_FILES)})"
    return _weights(folder)


def _weights(folder: Path) -> str | None:
    """Whether every weight file is there and whole, as far as its own format tells."""
    for index in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        if (folder / index).exists():
            try:
                shards = sorted(set(json.loads((folder / index).read_text())["weight_map"].values()))
            except (ValueError, KeyError, TypeError, AttributeError):
                return f"{index} is unreadable"
            break
    else:
        shards = [n for n in ("model.safetensors", "pytorch_model.bin") if (folder / n).exists()][:1]
        if not shards:
            return "it has no weights (no model.safetensors, no pytorch_model.bin)"
    for name in shards:
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        problem = _safetensors(path) if name.endswith(".safetensors") else _zip(path)
        if problem:
            return f"{name} {problem}"
    return None


def _safetensors(path: Path) -> str | None:
    """A safetensors file is an 8-byte header length, a JSON header, then the tensors' bytes up to the last
    offset the header gives: a file cut short (a killed export, a full disk) is shorter than that."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            return f"is cut short ({size} bytes)"
        (n,) = struct.unpack("<Q", head)
        if n > size - 8:
            return f"is cut short ({size} bytes, its header alone is {n + 8})"
        try:
            header = json.loads(f.read(n))
            end = max((int(t["data_offsets"][1]) for k, t in header.items() if k != "__metadata__"), default=0)
        except (ValueError, KeyError, TypeError, IndexError, AttributeError):
            return "has a damaged header"
    if 8 + n + end != size:
        return f"is cut short ({size} bytes of {8 + n + end})" if size < 8 + n + end else "is damaged (too long)"
    return None


def _zip(path: Path) -> str | None:
    return None if zipfile.is_zipfile(path) else "is cut short or damaged (not a whole zip archive)"
