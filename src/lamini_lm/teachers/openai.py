"""teacher=openai: the official openai v1 client (AsyncOpenAI), Chat Completions, any base_url.

Throughput under limits: at most `concurrency` requests in flight; a request that must wait (a
Retry-After, a backoff) sleeps *outside* its slot, so waiting never blocks the others; RPM/TPM
budgets and x-ratelimit-* headers gate every send; each finished result is stored at once.

Requests go through the client's documented `client.post(path, body=..., cast_to=httpx2.Response)`
("undocumented endpoints" in its README) rather than `chat.completions.create`: same transport, auth,
base_url and typed errors, without re-walking the (already plain JSON) request through its TypedDict
transform and building pydantic models we would only read four fields from. Profiled at 320 req/s,
those two took over a third of the client's CPU, which is what bounds throughput on a small machine.
The openai client and httpx2 are imported inside functions (why: openai_api.py).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass

from lamini_lm import stopping
from lamini_lm.errors import UserError
from lamini_lm.files import DiskFull
from lamini_lm.teachers.base import is_number, is_whole, require
from lamini_lm.teachers.limits import Limiter, Slots, backoff, retry_after
from lamini_lm.teachers.openai_api import (
    REJECTING,
    MissingLogprobs,
    OpenAICompatible,
    missing_logprobs,
    reply_from_body,
    server_message,
    transport_problem,
)
from lamini_lm.teachers.progress import Progress, Stats
from lamini_lm.teachers.store import Request
from lamini_lm.teachers.tokens import count_messages

log = logging.getLogger(__name__)


class _Fatal(Exception):
    """An error that no other request can escape either (a rejected key): stop the run."""


_SETTLED = object()  # _after_error: the request is recorded (rejected or failed), no retry
# timeouts in a row of one request, with nothing from the server to any request meanwhile, that make the server
# stalled: the run stops (after ~2 x teacher.timeout) instead of each request waiting max_attempts x timeout. Two, not
# one: a server loading its model on the first request (Ollama) answers the second
STALLED_AFTER = 2


@dataclass
class _Tries:
    """One request's attempts so far."""

    errors: int = 0  # failed attempts (server errors, transport, malformed replies); capped by max_attempts
    rate_waits: int = 0  # 429s waited out; capped by max_rate_limit_waits
    last: str = ""  # the last error, for the failure message
    sent_at: float = 0.0  # when the attempt in flight was sent (monotonic)
    timeouts: int = 0  # timeouts in a row while the server sent nothing to anyone
    silent_since: float = 0.0  # when the first of those was sent

    def error(self, what: str) -> None:
        self.errors += 1
        self.last = what


@dataclass(kw_only=True)
class OpenAITeacher(OpenAICompatible):
    concurrency: int  # requests in flight at once
    max_rate_limit_waits: int  # 429s a request may wait out (not counted in max_attempts)
    rpm: float  # requests per minute, 0 = unlimited
    tpm: float  # tokens per minute (prompt + max_tokens reserved, the rest refunded), 0 = unlimited

    def __post_init__(self) -> None:
        super().__post_init__()
        # no slot to send through would wait forever
        require(is_whole(self.concurrency) and self.concurrency >= 1, "concurrency", self.concurrency,
                "must be a whole number of requests in flight, at least 1")
        for key in ("rpm", "tpm"):  # a negative budget would never let a request go
            require(is_number(getattr(self, key)) and getattr(self, key) >= 0, key, getattr(self, key),
                    "must be a number of at least 0 (0: unlimited)")

    def _estimate(self, req: Request) -> int:
        if not self.tpm:
            return 0
        return count_messages(req.body["messages"]) + int(req.body.get("max_tokens") or 0)

    async def _send(self, client, requests, store, stats, desc) -> None:
        limiter = Limiter(self.rpm, self.tpm)
        slots = Slots(int(self.concurrency))
        # bounds the live tasks (in flight + waiting to retry) so millions of requests stay cheap
        window = asyncio.Semaphore(int(self.concurrency) * 8)
        bar = Progress(len(requests), desc, stats, self.progress, timeout=float(self.timeout))
        fatal: list[BaseException] = []
        rng = random.Random()

        async def one(req: Request) -> None:
            try:
                await self._complete(client, req, store, stats, limiter, slots, rng, fatal)
                await store.synced()  # a reply is done once on disk; replies finished together share one sync
            except (_Fatal, DiskFull) as e:  # stop sending, but let the requests in flight finish and be stored
                fatal.append(e)
            finally:
                window.release()
                bar.update()

        tasks: set[asyncio.Task] = set()
        # a first Ctrl-C or SIGTERM: send nothing more, store the replies in flight (paid for), then stop
        with stopping.draining():
            try:
                for req in requests:
                    await window.acquire()
                    if fatal or store.full or stopping.requested():
                        window.release()
                        break
                    t = asyncio.create_task(one(req))
                    tasks.add(t)
                    t.add_done_callback(tasks.discard)
                if tasks:
                    await asyncio.gather(*tasks)
            finally:
                bar.close()
        if fatal:
            raise UserError(str(fatal[0]))

    async def _complete(self, client, req, store, stats, limiter, slots, rng, fatal) -> None:
        import httpx2

        tries = _Tries()
        est = self._estimate(req)
        while True:
            delay = None
            await slots.acquire(Slots.RETRY if tries.errors or tries.rate_waits else Slots.FRESH)
            try:
                if fatal:  # the run is stopping (a rejected key, a stalled server): send nothing more
                    return
                if store.full or stopping.requested():  # a full disk, a stop signal: send nothing more
                    return
                await limiter.acquire(est)
                stats.sent += 1
                tries.sent_at = time.monotonic()
                try:
                    raw = await client.post("/chat/completions", body=req.body, cast_to=httpx2.Response)
                    stats.heard_at = time.monotonic()
                    limiter.observe(raw.headers)
                    reply = reply_from_body(raw.json(), req.body)
                except Exception as e:
                    delay = self._after_error(e, req, stats, limiter, tries, rng)
                    if delay is _SETTLED:
                        return
                else:
                    store.append(req, reply)
                    stats.done += 1
                    stats.add_usage(reply.usage)
                    if est:
                        limiter.refund(est - sum(reply.usage.values()))
                    return
                if tries.errors >= int(self.max_attempts):
                    return self._fail(stats, req, f"gave up after {tries.errors} failed attempts, last: {tries.last}")
            finally:
                slots.release()
            # the wait happens after the slot is released: a waiting request holds no slot
            if delay is None:
                delay = backoff(tries.errors - 1, self.backoff_base, self.backoff_max, rng)
            await asyncio.sleep(delay + rng.uniform(0, 0.05 * max(delay, 0.1)))

    def _after_error(self, e: Exception, req: Request, stats: Stats, limiter: Limiter, tries: _Tries, rng):
        """What one failed attempt means: _Fatal for what no retry cures; _SETTLED once the request is recorded as
        rejected or failed; else the wait before the next attempt (None: the backoff's)."""
        import openai

        if isinstance(e, MissingLogprobs):  # every reply of this server will lack them: stop at the first
            raise _Fatal(missing_logprobs(self, "a request")) from None
        if isinstance(e, openai.RateLimitError):
            if e.code == "insufficient_quota":  # a 429 that no wait cures
                raise _Fatal(f"{self.base_url} says the account behind ${self.api_key_env} has no quota left "
                             f"(HTTP 429 insufficient_quota): add credit or use another key, then rerun") from None
            limiter.observe(e.response.headers)
            stats.retries["rate_limited"] += 1
            tries.rate_waits += 1
            if tries.rate_waits > int(self.max_rate_limit_waits):
                self._fail(stats, req, f"still rate limited after {tries.rate_waits} waits")
                return _SETTLED
            delay = retry_after(e.response.headers)
            return backoff(min(tries.rate_waits - 1, 10), self.backoff_base, self.backoff_max, rng) \
                if delay is None else delay
        if isinstance(e, openai.APIStatusError):
            stats.heard_at = time.monotonic()
            status = e.status_code
            if status in (401, 403):
                raise _Fatal(self.key_rejected(status)) from None
            if status in REJECTING:
                stats.rejected.append((req, f"HTTP {status}: {server_message(e)}"))
                return _SETTLED
            if status < 500 and status not in (408, 409):
                self._fail(stats, req, f"HTTP {status}: {server_message(e)}")
                return _SETTLED
            stats.retries[f"http_{status}"] += 1
            tries.error(f"HTTP {status}")
            return retry_after(e.response.headers)
        if isinstance(e, (openai.APITimeoutError, openai.APIConnectionError)):
            stats.retries["timeout" if isinstance(e, openai.APITimeoutError) else "connection"] += 1
            problem = transport_problem(e)
            tries.error(f"{problem} talking to {self.base_url}")
            if problem == "timeout":
                self._check_stalled(stats, tries)
            return None
        # a reply that is not a valid completion: retried like a 500
        stats.retries["malformed_reply"] += 1
        tries.error("malformed reply")
        log.debug("malformed reply for %s: %r", req.id, e)
        return None

    def _check_stalled(self, stats: Stats, tries: _Tries) -> None:
        """After a timeout: _Fatal once this request timed out STALLED_AFTER times in a row while the server sent
        nothing to any request; said in the log at the run's first such timeout."""
        if stats.heard_at >= tries.sent_at:  # others got replies meanwhile: a slow request, not a stalled server
            tries.timeouts = 0
            return
        if tries.timeouts == 0 or stats.heard_at >= tries.silent_since:
            tries.timeouts, tries.silent_since = 0, tries.sent_at
        tries.timeouts += 1
        silent = time.monotonic() - tries.silent_since
        if tries.timeouts >= STALLED_AFTER:
            raise _Fatal(f"{self.base_url} sent nothing for {silent:.0f} s: a request timed out {tries.timeouts} times "
                         f"(teacher.timeout={self.timeout:g} s) and no other got a reply meanwhile. Is the server up "
                         f"and serving {self.model}? A slow one: raise teacher.timeout. A rerun sends only what is "
                         "missing")
        if stats.retries["timeout"] == 1:
            log.warning("no reply from %s within teacher.timeout=%g s, and nothing to any other request: trying "
                        "again; the run stops if the server stays silent", self.base_url, self.timeout)

    @staticmethod
    def _fail(stats: Stats, req: Request, why: str) -> None:
        stats.failures.append({"id": req.id, "error": why})

