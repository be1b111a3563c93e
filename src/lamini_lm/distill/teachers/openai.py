"""teacher=openai: the official openai v1 client (AsyncOpenAI), Chat Completions, any base_url.

Throughput under limits: at most `concurrency` requests in flight; a request that must wait (a
Retry-After, a backoff) sleeps *outside* its slot, so waiting never blocks the others; RPM/TPM
budgets and x-ratelimit-* headers gate every send; each finished result is stored at once.

Requests go through the client's documented `client.post(path, body=..., cast_to=httpx2.Response)`
("undocumented endpoints" in its README) rather than `chat.completions.create`: same transport, auth,
base_url and typed errors, without re-walking the (already plain JSON) request through its TypedDict
transform and building pydantic models we would only read four fields from. Profiled at 320 req/s,
those two took over a third of the client's CPU, which is what bounds throughput on a small machine.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random

from lamini_lm.teachers.limits import Limiter, Slots, backoff, retry_after
from lamini_lm.teachers.progress import Progress, Stats
from lamini_lm.teachers.store import Reply, Request, RequestStore
from lamini_lm.distill.teachers import Teacher
from lamini_lm.errors import UserError

log = logging.getLogger(__name__)


def api_key(tcfg) -> str:
    """The key from the configured environment variable; it never enters a config or a file."""
    env = tcfg.api_key_env
    key = os.environ.get(env)
    if not key:
        raise UserError(
            f"environment variable {env} is not set: export {env}=<your key> (the key is read from "
            f"the environment only; teacher.api_key_env names another variable)"
        )
    return key


def make_client(tcfg, key: str):
    from openai import AsyncOpenAI

    kw = {}
    if tcfg.get("http_transport", "httpx") == "aiohttp":
        from openai import DefaultAioHttpClient

        # the client's own aiohttp transport (openai[aiohttp]): ~40% less CPU per request than httpx
        kw["http_client"] = DefaultAioHttpClient(timeout=float(tcfg.timeout))
    # we retry ourselves (slot-free waits, header-aware): the client must not retry underneath
    return AsyncOpenAI(api_key=key, base_url=tcfg.base_url, max_retries=0, timeout=float(tcfg.timeout), **kw)


def _quiet_http_logs() -> None:
    # httpx logs one INFO line per request; keep Hydra's log file about the run, not the transport
    for name in ("httpx", "httpx2", "openai"):
        logging.getLogger(name).setLevel(logging.WARNING)


# statuses that refuse the request itself (bad request, unknown model, too large, unprocessable): asking
# again gives the same answer, so the stage stores them as rejected unless there are too many
REJECTING = (400, 404, 413, 422)


class _Fatal(Exception):
    """An error that no other request can escape either (a rejected key): stop the run."""


class OpenAITeacher(Teacher):
    def check(self) -> None:
        api_key(self.cfg)

    def run(self, requests: list[Request], store: RequestStore, desc: str) -> Stats:
        stats = Stats(self.model, self.prices, batch=False)
        pending = store.missing(requests)
        if pending:
            asyncio.run(self._run(pending, store, stats, desc))
        return stats

    def _estimate(self, req: Request) -> int:
        if not self.cfg.tpm:
            return 0
        from lamini_lm.teachers.tokens import count_messages

        return count_messages(req.body["messages"]) + int(req.body.get("max_tokens") or 0)

    async def _run(self, requests, store, stats, desc) -> None:
        _quiet_http_logs()
        client = make_client(self.cfg, api_key(self.cfg))
        limiter = Limiter(self.cfg.rpm, self.cfg.tpm)
        slots = Slots(int(self.cfg.concurrency))
        # bounds the live tasks (in flight + waiting to retry) so millions of requests stay cheap
        window = asyncio.Semaphore(int(self.cfg.concurrency) * 8)
        bar = Progress(len(requests), desc, stats, self.progress)
        fatal: list[BaseException] = []
        rng = random.Random()

        async def one(req: Request) -> None:
            try:
                await self._complete(client, req, store, stats, limiter, slots, rng)
            except _Fatal as e:
                fatal.append(e)
            finally:
                window.release()
                bar.update()

        tasks: set[asyncio.Task] = set()
        try:
            for req in requests:
                await window.acquire()
                if fatal:
                    window.release()
                    break
                t = asyncio.create_task(one(req))
                tasks.add(t)
                t.add_done_callback(tasks.discard)
            if tasks:
                await asyncio.gather(*tasks)
        finally:
            bar.close()
            await client.close()
        if fatal:
            raise UserError(str(fatal[0]))

    async def _complete(self, client, req, store, stats, limiter, slots, rng) -> None:
        import httpx2
        import openai

        errors = rate_waits = 0
        last = ""
        est = self._estimate(req)
        while True:
            delay = None
            await slots.acquire(Slots.RETRY if errors or rate_waits else Slots.FRESH)
            try:
                await limiter.acquire(est)
                stats.sent += 1
                try:
                    raw = await client.post("/chat/completions", body=req.body, cast_to=httpx2.Response)
                    limiter.observe(raw.headers)
                    reply = reply_from_body(raw.json(), req.body["model"])
                except openai.RateLimitError as e:
                    if e.code == "insufficient_quota":  # a 429 that no wait cures
                        raise _Fatal(
                            f"{self.cfg.base_url} says the account behind ${self.cfg.api_key_env} has no quota left "
                            f"(HTTP 429 insufficient_quota): add credit or use another key, then rerun"
                        ) from None
                    headers = e.response.headers
                    limiter.observe(headers)
                    stats.retries["rate_limited"] += 1
                    rate_waits += 1
                    if rate_waits > int(self.cfg.max_rate_limit_waits):
                        return self._fail(stats, req, f"still rate limited after {rate_waits} waits")
                    delay = retry_after(headers)
                    if delay is None:
                        delay = backoff(min(rate_waits - 1, 10), self.cfg.backoff_base, self.cfg.backoff_max, rng)
                except openai.APIStatusError as e:
                    status = e.status_code
                    if status in (401, 403):
                        raise _Fatal(
                            f"{self.cfg.base_url} rejected the API key from ${self.cfg.api_key_env} "
                            f"(HTTP {status}): check the key and teacher.base_url"
                        ) from None
                    if status in REJECTING:
                        stats.rejected.append((req, f"HTTP {status}: {_short(e)}"))
                        return None
                    if status < 500 and status not in (408, 409):
                        return self._fail(stats, req, f"HTTP {status}: {_short(e)}")
                    stats.retries[f"http_{status}"] += 1
                    errors += 1
                    last = f"HTTP {status}"
                    delay = retry_after(e.response.headers)
                except (openai.APITimeoutError, openai.APIConnectionError) as e:
                    kind = "timeout" if isinstance(e, openai.APITimeoutError) else "connection"
                    stats.retries[kind] += 1
                    errors += 1
                    last = f"{kind} error talking to {self.cfg.base_url}"
                except Exception as e:  # a reply that is not a valid completion: retried like a 500
                    stats.retries["malformed_reply"] += 1
                    errors += 1
                    last = "malformed reply"
                    log.debug("malformed reply for %s: %r", req.id, e)
                else:
                    store.append(req, reply)
                    stats.done += 1
                    stats.add_usage(reply.usage)
                    if est:
                        limiter.refund(est - sum(reply.usage.values()))
                    return
                if errors >= int(self.cfg.max_attempts):
                    return self._fail(stats, req, f"gave up after {errors} failed attempts, last: {last}")
            finally:
                slots.release()
            # the wait happens after the slot is released: a waiting request holds no slot
            if delay is None:
                delay = backoff(errors - 1, self.cfg.backoff_base, self.cfg.backoff_max, rng)
            await asyncio.sleep(delay + rng.uniform(0, 0.05 * max(delay, 0.1)))

    @staticmethod
    def _fail(stats: Stats, req: Request, why: str) -> None:
        stats.failures.append({"id": req.id, "error": why})


def _short(e) -> str:
    """The server's own error message (the client's `message` prefixes "Error code: N - ")."""
    body = getattr(e, "body", None)
    msg = body.get("message") if isinstance(body, dict) else None
    msg = msg or getattr(e, "message", None) or str(e)
    return msg.splitlines()[0][:200] if msg else type(e).__name__


def reply_from_body(body: dict, model: str) -> Reply:
    """A Chat Completions body (a sync reply or a Batch API output line) as a Reply.

    Reads only the fields we keep; anything else malformed raises, and the caller retries or counts it.
    """
    choice = body["choices"][0]
    content = choice["message"].get("content")
    if content is not None and not isinstance(content, str):
        raise ValueError("completion whose message content is not text")
    # a completion without content (a refusal, a content filter) is still an answer: stored as "",
    # later counted as an empty reply instead of being asked again forever
    usage = body.get("usage") or {}
    return Reply(
        content=content or "",
        finish_reason=choice.get("finish_reason") or "stop",
        usage={
            "prompt_tokens": int(usage.get("prompt_tokens") or 0),
            "completion_tokens": int(usage.get("completion_tokens") or 0),
        },
        model=body.get("model") or model,
    )
