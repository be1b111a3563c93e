"""Bytes per response token of the teacher's top-k log-probs, in a generate.py output folder.

    python -m bench.logprobs_size <out_dir>      # e.g. the D_ALL of bench/distill_evidence.py: <out>/data

- the request store (<out_dir>/requests/responses.jsonl): each reply's log-probs field as written in its line, and
  the same replies encoded by this version's TokenLogprobs.to_json (what a store written today holds; a store of
  an older format is read as it is);
- the sidecar (<out_dir>/d_all.logprobs.parquet): the file, and the file less its token table (the distinct tokens
  it names: it grows with the teacher's vocabulary, not with D_ALL), over its records' response tokens.

lamini_lm.logprobs.size_estimate (the dry run's estimate) is set from these per-token figures.
"""

from __future__ import annotations

import argparse
import base64
import json
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out_dir", type=Path)
    out = p.parse_args().out_dir
    from lamini_lm.logprobs import SIDECAR, Sidecar, TokenLogprobs

    replies = tokens = written = encoded = 0
    k = None
    for line in open(out / "requests" / "responses.jsonl"):
        field = (json.loads(line).get("reply") or {}).get("logprobs")
        if not field:
            continue
        t = TokenLogprobs.from_json(field)
        replies, tokens, k = replies + 1, tokens + len(t.tokens), t.k
        written += len(json.dumps(field))
        encoded += len(json.dumps(t.to_json()))
    print(f"request store: {replies} replies with log-probs (k = {k}), {tokens:,} tokens")
    print(f"  as written:    {written:>12,} bytes  {written / max(tokens, 1):6.1f} per token")
    print(f"  as encoded now: {encoded:>11,} bytes  {encoded / max(tokens, 1):6.1f} per token")
    path = out / SIDECAR
    if path.is_file():
        side = Sidecar(path)
        n = sum(len(side.indices(rid)[0]) for rid in side)
        size = path.stat().st_size
        table = len(json.dumps([base64.b64encode(t).decode() for t in side.tokens]))
        print(f"sidecar: {len(side)} records, {n:,} response tokens, {len(side.tokens):,} distinct tokens")
        print(f"  the file:                {size:>10,} bytes  {size / max(n, 1):6.1f} per token")
        print(f"  less its token table:    {size - table:>10,} bytes  {(size - table) / max(n, 1):6.1f} per token")


if __name__ == "__main__":
    main()
