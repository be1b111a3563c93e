"""Throughput of teacher=openai under limits (issue 3's benchmark).

Requests/s at concurrency 64 against a local OpenAI-compatible server (tests/helpers/openai_server.py, run
in its own process) answering in ~200 ms, as a fraction of the bound 64 / 0.2 s = 320 req/s;
without faults, then with 10% 429s (Retry-After: 1 s by default) and 2% 500s. With Retry-After honoured,
a request unlucky enough to get two or three 429s in a row finishes seconds after the rest: on a
2,000-request run that tail is a visible part of the total time. Lost = requests missing from the
store at the end; duplicated = requests the server answered with 200 more than once.

    python bench/generate_throughput.py [--requests 2000] [--concurrency 64] [--latency 0.2] [--retry-after 1] [--baseline]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


RETRY_AFTER = 1.0


def serve(latency: float, p429: float, p500: float):
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "helpers" / "openai_server.py"), "--port", str(port),
                             "--latency", str(latency), "--p429", str(p429), "--p500", str(p500),
                             "--retry-after", str(RETRY_AFTER)])
    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=1)
            return proc, port
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("fake server did not start")


def _server_stats(port: int) -> dict:
    return json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/stats"))


def _result(n: int, elapsed: float, concurrency: int, latency: float, lost: int, server: dict) -> dict:
    rate = n / elapsed
    return {"requests": n, "seconds": round(elapsed, 2), "req_per_s": round(rate, 1),
            "fraction_of_bound": round(rate / (concurrency / latency), 3), "lost": lost,
            "duplicated": server["duplicated"]}


def measure(n: int, concurrency: int, latency: float, p429: float, p500: float) -> dict:
    from hydra import compose, initialize_config_dir

    from lamini_lm import config  # noqa: F401
    from lamini_lm.distill.store import Request, RequestStore
    from lamini_lm.distill.teachers.openai import OpenAITeacher

    proc, port = serve(latency, p429, p500)
    try:
        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
            cfg = compose("generate", overrides=["out_dir=/tmp/unused", f"teacher.base_url=http://127.0.0.1:{port}/v1",
                                                 f"teacher.concurrency={concurrency}", "teacher.timeout=30"])
        os.environ.setdefault("OPENAI_API_KEY", "sk-bench")
        reqs = [Request({"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": f"Instruction {i}."}],
                         "max_tokens": 64}) for i in range(n)]
        teacher = OpenAITeacher(cfg.teacher, cfg.prices, progress=False)
        with tempfile.TemporaryDirectory() as tmp:
            # warm-up (not timed, different requests): the client imports its types on first use
            warm = [Request({**r.body, "max_tokens": 1}) for r in reqs[:concurrency]]
            teacher.run(warm, RequestStore(Path(tmp) / "warm.jsonl"), "warm-up")
            store = RequestStore(Path(tmp) / "s.jsonl")
            t = time.perf_counter()
            stats = teacher.run(reqs, store, "bench")
            elapsed = time.perf_counter() - t
            lost = sum(r.id not in store for r in reqs)
        server = _server_stats(port)
    finally:
        proc.terminate()
        proc.wait()
    return {**_result(n, elapsed, concurrency, latency, lost, server), "retries": dict(stats.retries),
            "server_replies": server["by_status"]}


def measure_plain(n: int, concurrency: int, latency: float, p429: float, p500: float) -> dict:
    """The baseline the issue measured: asyncio.gather + a semaphore over the client's own retries."""
    import asyncio

    from openai import AsyncOpenAI

    proc, port = serve(latency, p429, p500)

    async def go():
        client = AsyncOpenAI(api_key="sk-bench", base_url=f"http://127.0.0.1:{port}/v1")
        sem = asyncio.Semaphore(concurrency)

        async def one(i):
            async with sem:
                try:
                    await client.chat.completions.create(
                        model="gpt-3.5-turbo", max_tokens=64 if i >= 0 else 1,
                        messages=[{"role": "user", "content": f"Instruction {abs(i)}."}])
                    return True
                except Exception:
                    return False

        await asyncio.gather(*(one(-i - 1) for i in range(concurrency)))  # warm-up
        t = time.perf_counter()
        ok = await asyncio.gather(*(one(i) for i in range(n)))
        elapsed = time.perf_counter() - t
        await client.close()
        return elapsed, n - sum(ok)

    try:
        elapsed, lost = asyncio.run(go())
        server = _server_stats(port)
    finally:
        proc.terminate()
        proc.wait()
    return _result(n, elapsed, concurrency, latency, lost, server)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--latency", type=float, default=0.2)
    p.add_argument("--baseline", action="store_true", help="also measure a plain asyncio loop over the client")
    p.add_argument("--retry-after", type=float, default=1.0, help="seconds the fake server asks to wait after a 429")
    a = p.parse_args()
    global RETRY_AFTER
    RETRY_AFTER = a.retry_after
    print(f"bound: {a.concurrency} / {a.latency} s = {a.concurrency / a.latency:.0f} req/s; {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}; 429s carry Retry-After: {a.retry_after} s")
    for name, p429, p500 in (("no faults", 0.0, 0.0), ("10% 429 + 2% 500", 0.10, 0.02)):
        r = measure(a.requests, a.concurrency, a.latency, p429, p500)
        print(f"teacher=openai  {name:18s} {json.dumps(r)}")
        if a.baseline:
            r = measure_plain(a.requests, a.concurrency, a.latency, p429, p500)
            print(f"plain loop      {name:18s} {json.dumps(r)}")


if __name__ == "__main__":
    main()
