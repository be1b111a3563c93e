"""Benchmark: Table 1 + Table 2 (one streaming pass) over 1,000,000 generated rows of LaMini-like length.

    python bench/analysis_throughput.py [--rows 1000000] [--batch-size 2048]

Rows are generated on the fly (never all held): each subset gets the paper's share of D_ALL and its
Table 1 average instruction/response length in GPT-2 tokens, built from Zipf-distributed GPT-2 vocabulary
words. Prints rows/s and the process's peak resident memory (targets: < 5 min and < 2 GB).
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np

from lamini_lm import assets
from lamini_lm.analysis import tables
from lamini_lm.analysis.mattr import DEFAULT_PATTERN, Tokenizer
from lamini_lm.analysis.stats import DatasetStats, TokenCounter
from lamini_lm.subsets import SUBSETS


def generator(rows: int, batch_size: int, seed: int = 0):
    """Batches of records shaped like the paper's D_ALL (Table 1 shares and lengths)."""
    paper = tables.paper_numbers()
    vocab = json.loads((assets.path("gpt2_tokenizer") / "vocab.json").read_text())
    words = np.array([w[1:] for w, _ in sorted(vocab.items(), key=lambda kv: kv[1]) if w[:1] == "Ġ" and w[1:].isalpha()])
    rng = np.random.default_rng(seed)
    sources = list(SUBSETS)
    share = np.array([paper[s]["samples_M"] for s in sources])
    share /= share.sum()
    # pools of half-texts per subset and field; a text joins two random halves (GPT-2 ~1.1 tokens per word here)
    pools = {}
    for s in sources:
        for field, key in (("instruction", "avg_ins_len"), ("response", "avg_res_len")):
            half = max(1, round(paper[s][key] / 2 / 1.1))
            lens = rng.poisson(half, 4000) + 1
            idx = np.minimum(rng.zipf(1.2, lens.sum()), len(words)) - 1
            flat, pool, o = words[idx], [], 0
            for n in lens:
                pool.append(" ".join(flat[o:o + n]))
                o += n
            pools[s, field] = pool
    done = 0
    while done < rows:
        n = min(batch_size, rows - done)
        src = rng.choice(len(sources), n, p=share)
        picks = rng.integers(0, 4000, (n, 4))
        batch = []
        for k in range(n):
            s = sources[src[k]]
            pi, pr = pools[s, "instruction"], pools[s, "response"]
            batch.append({
                "instruction": f"{pi[picks[k, 0]]} {pi[picks[k, 1]]}?",
                "response": f"{pr[picks[k, 2]]}, {pr[picks[k, 3]]}.",
                "instruction_source": s,
            })
        done += n
        yield batch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--batch-size", type=int, default=2048)
    args = p.parse_args()

    t0 = time.perf_counter()
    gen_rows = sum(len(b) for b in generator(min(args.rows, 100_000), args.batch_size))
    gen_s = (time.perf_counter() - t0) * args.rows / gen_rows
    stats = DatasetStats(TokenCounter("gpt2_tokenizer"), Tokenizer(DEFAULT_PATTERN), window=50)
    t0 = time.perf_counter()
    stats.consume(generator(args.rows, args.batch_size))
    total = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    shown = stats.present()
    t1 = tables.table1(stats, shown)[-1]
    t2 = tables.table2(stats, shown)[-1]
    print(f"rows                      {args.rows:,}")
    print(f"GPT-2 tokens counted      {t1['ins_tokens'] + t1['res_tokens']:,} (avg ins {t1['avg_ins_len']:.2f}, res {t1['avg_res_len']:.2f})")
    print(f"MATTR words streamed      {t2['ins_words'] + t2['res_words']:,}")
    print(f"D_ALL MATTR x100          ins {t2['mattr_ins']:.2f}, res {t2['mattr_res']:.2f}")
    print(f"wall time                 {total:.1f} s (of which generating rows ~{gen_s:.1f} s)")
    print(f"throughput                {args.rows / total:,.0f} rows/s ({args.rows / max(total - gen_s, 1e-9):,.0f} rows/s without generation)")
    print(f"peak memory (max RSS)     {peak_mb:,.0f} MB")
    print(f"targets                   time < 300 s: {'ok' if total < 300 else 'MISSED'}, memory < 2048 MB: {'ok' if peak_mb < 2048 else 'MISSED'}")


if __name__ == "__main__":
    main()
