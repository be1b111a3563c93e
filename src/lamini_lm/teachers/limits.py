"""Throughput under limits: RPM/TPM token buckets, server rate-limit headers, backoff with jitter."""

from __future__ import annotations

import asyncio
import email.utils
import heapq
import itertools
import random
import re
import time

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str | None) -> float | None:
    """OpenAI's reset durations ('20ms', '1s', '6m0s', '1h2m3.5s') or plain seconds, in seconds."""
    if not text:
        return None
    text = text.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    parts = _DURATION.findall(text)
    return sum(float(v) * _UNIT[u] for v, u in parts) if parts else None


def retry_after(headers) -> float | None:
    """Seconds the server asks us to wait: retry-after-ms, retry-after (seconds or HTTP date)."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        when = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, when.timestamp() - time.time()) if when else None


def backoff(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Exponential backoff with full jitter (AWS architecture blog): uniform in [0, min(cap, base*2^n)]."""
    return rng.uniform(0, min(cap, base * 2**attempt))


class Limiter:
    """Requests-per-minute and tokens-per-minute budgets plus pauses the server asks for.

    Buckets hold one minute of budget and refill continuously. When a response's
    x-ratelimit-remaining-{requests,tokens} header reaches 0, nobody sends until its reset time.
    """

    def __init__(self, rpm: float = 0, tpm: float = 0):
        self.rpm, self.tpm = float(rpm or 0), float(tpm or 0)
        self.req_avail, self.tok_avail = self.rpm, self.tpm
        self.last = time.monotonic()
        self.pause_until = 0.0

    def _refill(self, now: float) -> None:
        dt, self.last = now - self.last, now
        if self.rpm:
            self.req_avail = min(self.rpm, self.req_avail + dt * self.rpm / 60)
        if self.tpm:
            self.tok_avail = min(self.tpm, self.tok_avail + dt * self.tpm / 60)

    async def acquire(self, tokens: int = 0) -> None:
        tokens = min(tokens, self.tpm) if self.tpm else 0
        while True:
            now = time.monotonic()
            if now < self.pause_until:
                await asyncio.sleep(self.pause_until - now)
                continue
            self._refill(now)
            need_req = 0.0 if not self.rpm else max(0.0, 1 - self.req_avail) * 60 / self.rpm
            need_tok = 0.0 if not self.tpm else max(0.0, tokens - self.tok_avail) * 60 / self.tpm
            if need_req == 0 and need_tok == 0:
                if self.rpm:
                    self.req_avail -= 1
                if self.tpm:
                    self.tok_avail -= tokens
                return
            await asyncio.sleep(max(need_req, need_tok, 0.001))

    def refund(self, tokens: int) -> None:
        """Give back what an estimate (prompt + max_tokens) reserved beyond the real usage."""
        if self.tpm and tokens > 0:
            self.tok_avail = min(self.tpm, self.tok_avail + tokens)

    def pause(self, seconds: float) -> None:
        self.pause_until = max(self.pause_until, time.monotonic() + seconds)

    def observe(self, headers) -> None:
        """Honour x-ratelimit-* headers: an exhausted budget pauses everyone until it resets."""
        if headers is None:
            return
        for kind in ("requests", "tokens"):
            remaining = headers.get(f"x-ratelimit-remaining-{kind}")
            if remaining is None:
                continue
            try:
                exhausted = float(remaining) <= 0
            except ValueError:
                continue
            if exhausted:
                reset = parse_duration(headers.get(f"x-ratelimit-reset-{kind}"))
                self.pause(reset if reset is not None else 1.0)


class Slots:
    """At most n requests in flight; a retry gets the next free slot before any fresh request.

    A request that waited out a Retry-After would otherwise queue behind every fresh request and
    stretch the run's tail.
    """

    RETRY, FRESH = 0, 1

    def __init__(self, n: int):
        self.free = n
        self._waiters: list = []
        self._seq = itertools.count()

    async def acquire(self, priority: int) -> None:
        if self.free > 0 and not self._waiters:
            self.free -= 1
            return
        fut = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (priority, next(self._seq), fut))
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # the slot was handed over just as we were cancelled: pass it on
            raise

    def release(self) -> None:
        while self._waiters:
            _, _, fut = heapq.heappop(self._waiters)
            if not fut.done():
                fut.set_result(None)  # hand the slot over directly
                return
        self.free += 1
