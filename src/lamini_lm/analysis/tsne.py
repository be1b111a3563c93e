"""Figure 3: t-SNE of instruction sentence embeddings, two subsets per PNG (3a X̂_SI vs X̂_A, 3b X̂_P3 vs X_P3)."""

from __future__ import annotations

import csv
import logging
import time
from pathlib import Path

import numpy as np

from lamini_lm.analysis.embeddings import OFFLINE_PACKAGE, EmbeddingCache, load_model
from lamini_lm.analysis.spec import Figure3Spec
from lamini_lm.errors import UserError
from lamini_lm.files import open_atomic, save_figure
from lamini_lm.subsets import SUBSETS

log = logging.getLogger(__name__)

# The paper's comparisons; FLAN is left out "as it yields the same results" as P3 (§3.3.2).
PAPER_PAIRS = [("self_instruct_without_topic", "alpaca"), ("generated_p3", "original_p3")]


def figure3(samples: dict[str, list[str]], pairs: list[tuple[str, str]], spec: Figure3Spec, out_dir: Path,
            seed: int) -> list[Path]:
    """One PNG (and a CSV of its points) per pair; ``samples`` maps a subset to its sampled instructions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    model_name, model = load_model(list(spec.models))
    shown_name = "all-MiniLM-L6-v2 (offline package)" if model_name == OFFLINE_PACKAGE else model_name
    cache = EmbeddingCache(spec.cache_dir, model_name)

    def encode(texts):
        return model.encode(
            texts, batch_size=spec.batch_size, normalize_embeddings=True, convert_to_numpy=True,
            show_progress_bar=False,
        )

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for k, (a, b) in enumerate(pairs):
        ta, tb = samples[a], samples[b]
        if len(ta) + len(tb) < 5:
            raise UserError(f"figure 3 ({a} vs {b}): {len(ta) + len(tb)} instructions, t-SNE needs at least 5")
        t0 = time.perf_counter()
        x = cache.embed(ta + tb, encode)
        t1 = time.perf_counter()
        y, perplexity = embed_2d(x, spec, seed)
        log.info("figure 3%s: %d points, embeddings %.0f s, t-SNE %.0f s (KL %.3f)", chr(97 + k), len(x), t1 - t0,
                 time.perf_counter() - t1, y.kl_divergence)
        sa, sb = SUBSETS[a], SUBSETS[b]
        fig, ax = plt.subplots(figsize=(6.4, 6.4))
        size = float(np.clip(20000 / len(x), 1, 12))
        for sub, pts in ((sa, y[: len(ta)]), (sb, y[len(ta):])):
            label = f"{sub.latex('X')} (n={len(pts):,})"
            ax.scatter(pts[:, 0], pts[:, 1], s=size, alpha=0.5, linewidths=0, label=label)
        ax.legend(markerscale=max(1.0, 6 / size), loc="best")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"({chr(97 + k)}) t-SNE of instruction embeddings\n{shown_name}, perplexity {perplexity:g}")
        stem = out_dir / f"figure3{chr(97 + k)}_{a}_vs_{b}"
        fig.tight_layout()
        save_figure(fig, stem.with_suffix(".png"), dpi=150)
        plt.close(fig)
        with open_atomic(stem.with_suffix(".csv")) as f:
            w = csv.writer(f)
            w.writerow(["source", "x", "y", "instruction"])
            for src, texts, pts in ((a, ta, y[: len(ta)]), (b, tb, y[len(ta):])):
                w.writerows((src, f"{p[0]:.4f}", f"{p[1]:.4f}", t) for t, p in zip(texts, pts))
        written.append(stem.with_suffix(".png"))
        log.info("figure 3%s: %s", chr(97 + k), stem.with_suffix(".png"))
    return written


def embed_2d(x: np.ndarray, spec: Figure3Spec, seed: int):
    """(2-D openTSNE embedding of the rows of ``x``, the perplexity used). Its FFT-interpolated gradients
    (Linderman et al., 2019) cost O(n) per iteration against Barnes-Hut's O(n log n): the paper's 100K
    points take minutes (bench/figure3_tsne.py)."""
    from openTSNE import TSNE
    from threadpoolctl import threadpool_limits

    # each point's 3 x perplexity nearest neighbours must exist
    perplexity = min(spec.perplexity, (len(x) - 1) / 3)
    tsne = TSNE(n_components=2, perplexity=perplexity, initialization="pca", metric=spec.metric,
                negative_gradient_method=spec.gradient, n_jobs=spec.threads or -1, random_state=seed)
    with threadpool_limits(spec.threads):  # the BLAS of the PCA initialisation too
        return tsne.fit(x), perplexity
