"""Throughput of teacher=openai under limits (issue 3's benchmark).

Requests/s at concurrency 64 against a local OpenAI-compatible server (tests/helpers/openai_server.py, run
in its own process) answering in ~200 ms, as a fraction of the bound 64 / 0.2 s = 320 req/s; without
faults, then with 10% 429s (Retry-After: 1 s by default) and 2% 500s drawn independently for every
attempt, once per fault seed. Lost = requests missing from the store at the end; duplicated = requests
the server answered with 200 more than once.

Three numbers per run:
- fraction: all requests over the whole run's wall time (the issue's measure);
- sustained: requests finished per second until every request has been tried once, i.e. while there
  is work for every slot; a run of millions of requests sees this rate, since its drain tail is the
  same few seconds as here;
- ideal: the fraction of the fastest client that honours Retry-After, replayed on the same fault draws
  (zero overhead, a waiting request holds no slot, retries first, 500s retried at once). Requests that
  draw two or three 429s in a row near the end finish seconds after the rest, whatever the client.

    python -m bench.generate_throughput [--requests 2000] [--concurrency 64] [--latency 0.2] [--retry-after 1]
                                        [--seeds 3] [--faulty-attempts 0] [--baseline]

Run it from the repository root as a module (it imports the fake server from tests/helpers).
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from lamini_lm import config
from lamini_lm.teachers import build
from lamini_lm.teachers.store import Request, RequestStore
from tests.helpers.openai_server import key_of, random_fault

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(a, p429: float, p500: float, seed: int):
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "helpers" / "openai_server.py"), "--port", str(port),
                             "--latency", str(a.latency), "--p429", str(p429), "--p500", str(p500),
                             "--retry-after", str(a.retry_after), "--seed", str(seed),
                             "--faulty-attempts", str(a.faulty_attempts)])
    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=1)
            return proc, port
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("fake server did not start")


def _get(port: int, path: str):
    return json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}{path}"))


def bodies(n: int) -> list[dict]:
    return [{"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": f"Instruction {i}."}], "max_tokens": 64}
            for i in range(n)]


def sustained(log: list, keys: set, start: float) -> float:
    """Requests finished per second until the last request's first attempt was answered."""
    first, done = {}, []
    for t, key, status in log:
        if key in keys:
            first.setdefault(key, t)
            if status == 200:
                done.append(t)
    until = max(first.values())
    return sum(t <= until for t in done) / (until - start)


def ideal(reqs: list[dict], a, p429: float, p500: float, seed: int) -> tuple[float, float]:
    """(seconds, sustained req/s) of a zero-overhead client that honours Retry-After, on the same fault draws."""
    todo = list(range(len(reqs)))[::-1]
    ready, events, attempts = [], [], [0] * len(reqs)
    now = last = first_done = 0.0
    free, done, tried, done_by = a.concurrency, 0, 0, {}
    while done < len(reqs):
        while free and (ready or todo):
            i = ready.pop(0) if ready else todo.pop()
            free -= 1
            heapq.heappush(events, (now + a.latency, 0, i, random_fault(seed, reqs[i], attempts[i], p429, p500, a.faulty_attempts)))
            attempts[i] += 1
        now, kind, i, fault = heapq.heappop(events)
        if kind == 1:  # a wait is over
            ready.append(i)
            continue
        free += 1
        if attempts[i] == 1:
            tried += 1
            if tried == len(reqs):
                first_done = now
        if fault is None:
            done, last = done + 1, now
            done_by[i] = now
        else:
            heapq.heappush(events, (now + (a.retry_after if fault == "429" else 0.0), 1, i, None))
    return last, sum(t <= first_done for t in done_by.values()) / first_done


def measure(a, p429: float, p500: float, seed: int) -> dict:
    proc, port = serve(a, p429, p500, seed)
    try:
        cfg = config.compose("generate", ["out_dir=/tmp/unused", f"teacher.base_url=http://127.0.0.1:{port}/v1",
                                          f"teacher.concurrency={a.concurrency}", "teacher.timeout=30"])
        os.environ.setdefault("OPENAI_API_KEY", "sk-bench")
        reqs = [Request(b) for b in bodies(a.requests)]
        teacher = build(cfg.teacher, cfg.prices, progress=False)
        with tempfile.TemporaryDirectory() as tmp:
            # warm-up (not timed, different requests): the client imports its types on first use
            warm = [Request({**r.body, "max_tokens": 1}) for r in reqs[: a.concurrency]]
            teacher.run(warm, RequestStore(Path(tmp) / "warm.jsonl"), "warm-up")
            store = RequestStore(Path(tmp) / "s.jsonl")
            wall, t = time.time(), time.perf_counter()
            stats = teacher.run(reqs, store, "bench")
            elapsed = time.perf_counter() - t
            lost = sum(r.id not in store for r in reqs)
        server, log = _get(port, "/stats"), _get(port, "/log")
    finally:
        proc.terminate()
        proc.wait()
    rate = sustained(log, {key_of(r.body) for r in reqs}, wall)
    return {**result(a, elapsed, lost, server), "sustained": round(rate / bound(a), 3),
            "retries": dict(stats.retries), "server_replies": server["by_status"]}


def measure_plain(a, p429: float, p500: float, seed: int) -> dict:
    """The baseline the issue measured: asyncio.gather + a semaphore over the client's own retries."""
    from openai import AsyncOpenAI  # only --baseline needs the client itself

    proc, port = serve(a, p429, p500, seed)

    async def go():
        client = AsyncOpenAI(api_key="sk-bench", base_url=f"http://127.0.0.1:{port}/v1")
        sem = asyncio.Semaphore(a.concurrency)

        async def one(body):
            async with sem:
                try:
                    await client.chat.completions.create(**body)
                    return True
                except Exception:
                    return False

        await asyncio.gather(*(one({**b, "max_tokens": 1}) for b in bodies(a.concurrency)))  # warm-up
        wall, t = time.time(), time.perf_counter()
        ok = await asyncio.gather(*(one(b) for b in bodies(a.requests)))
        elapsed = time.perf_counter() - t
        await client.close()
        return wall, elapsed, a.requests - sum(ok)

    try:
        wall, elapsed, lost = asyncio.run(go())
        server, log = _get(port, "/stats"), _get(port, "/log")
    finally:
        proc.terminate()
        proc.wait()
    rate = sustained(log, {key_of(b) for b in bodies(a.requests)}, wall)
    return {**result(a, elapsed, lost, server), "sustained": round(rate / bound(a), 3)}


def bound(a) -> float:
    return a.concurrency / a.latency


def result(a, elapsed: float, lost: int, server: dict) -> dict:
    rate = a.requests / elapsed
    return {"requests": a.requests, "seconds": round(elapsed, 2), "req_per_s": round(rate, 1),
            "fraction": round(rate / bound(a), 3), "lost": lost, "duplicated": server["duplicated"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--latency", type=float, default=0.2)
    p.add_argument("--retry-after", type=float, default=1.0, help="seconds the fake server asks to wait after a 429")
    p.add_argument("--seeds", type=int, default=3, help="fault seeds to run (the faults differ per seed)")
    p.add_argument("--faulty-attempts", type=int, default=0,
                   help="only a request's first N attempts can fail (default 0: every attempt, independently)")
    p.add_argument("--baseline", action="store_true", help="also measure a plain asyncio loop over the client")
    a = p.parse_args()
    print(f"bound: {a.concurrency} / {a.latency} s = {bound(a):.0f} req/s; {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}; 429s carry Retry-After: {a.retry_after} s; faults on "
          f"{'every attempt' if not a.faulty_attempts else f'the first {a.faulty_attempts} attempts'}")
    runs = [("no faults", 0.0, 0.0, 0)] + [(f"10% 429 + 2% 500, seed {s}", 0.10, 0.02, s) for s in range(a.seeds)]
    for name, p429, p500, seed in runs:
        r = measure(a, p429, p500, seed)
        seconds, rate = ideal(bodies(a.requests), a, p429, p500, seed)
        r["ideal"] = round(a.requests / seconds / bound(a), 3)
        r["ideal_sustained"] = round(rate / bound(a), 3)
        print(f"teacher=openai  {name:26s} {json.dumps(r)}")
        if a.baseline:
            print(f"plain loop      {name:26s} {json.dumps(measure_plain(a, p429, p500, seed))}")


if __name__ == "__main__":
    main()
