"""What teacher=openai and teacher=openai_batch share: an OpenAI-compatible server at `base_url`, the key
from the environment, the official openai v1 client (imported inside functions: generate.py's other
stages and evaluate.py start without it), the reply format, and run()'s "send what the store lacks".
"""

from __future__ import annotations

import abc
import asyncio
import logging
import socket
import os
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from lamini_lm.errors import UserError
from lamini_lm.logprobs import TokenLogprobs
from lamini_lm.secret_keys import check_value
from lamini_lm.teachers.base import Teacher, is_number, is_whole, require
from lamini_lm.teachers.progress import Stats
from lamini_lm.teachers.store import Reply, Request, RequestStore

# statuses that refuse the request itself (bad request, unknown model, too large, unprocessable): asking
# again gives the same answer, so they go to stats.rejected, not stats.failures
REJECTING = (400, 404, 413, 422)
TRANSPORTS = ("aiohttp", "httpx")


@dataclass(kw_only=True)
class OpenAICompatible(Teacher):
    """A teacher behind the OpenAI API; a subclass writes `_send`, how its pending requests are answered."""

    base_url: str
    api_key_env: str  # the environment variable holding the key; the key itself is never stored
    http_transport: str  # aiohttp | httpx
    timeout: float  # seconds per HTTP call
    connect_timeout: float  # seconds to connect (a server that is not there fails fast)
    max_attempts: int  # attempts for server errors, timeouts and connection errors
    backoff_base: float  # exponential backoff with full jitter: uniform in [0, min(max, base * 2^n)]
    backoff_max: float

    batch_priced: ClassVar[bool] = False  # which price columns the cost so far uses
    max_logprobs: ClassVar[int | None] = 20  # the Chat Completions API's most top_logprobs per token

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.http_transport not in TRANSPORTS:
            raise UserError(f"teacher.http_transport={self.http_transport} is unknown; choose {' or '.join(TRANSPORTS)}")
        # a key in the URL (user:key@host, ?api_key=) would be sent in it, and quoted by the messages below
        check_value("teacher.base_url", self.base_url)
        # a malformed URL would otherwise be reported only after max_attempts connection errors
        require(isinstance(self.base_url, str) and self.base_url.startswith(("http://", "https://")), "base_url",
                self.base_url, "must start with http:// or https:// (e.g. https://api.openai.com/v1)")
        for key in ("timeout", "connect_timeout"):
            require(is_number(getattr(self, key)) and getattr(self, key) > 0, key, getattr(self, key),
                    "must be a number of seconds above 0")
        require(is_whole(self.max_attempts) and self.max_attempts >= 1, "max_attempts", self.max_attempts,
                "must be a whole number, at least 1")

    def api_key(self) -> str:
        """The key from the configured environment variable; it never enters a config or a file."""
        env = self.api_key_env
        key = os.environ.get(env)
        if not key:
            raise UserError(
                f"environment variable {env} is not set: export {env}=<your key> (the key is read from "
                f"the environment only; teacher.api_key_env names another variable)"
            )
        return key

    def check(self) -> None:
        self.api_key()

    def run(self, requests: list[Request], store: RequestStore, desc: str) -> Stats:
        stats = Stats(self.model, self.prices, batch=self.batch_priced)
        pending = store.missing(requests)
        if pending:
            asyncio.run(self._with_client(pending, store, stats, desc))
        return stats

    async def _with_client(self, pending: list[Request], store: RequestStore, stats: Stats, desc: str) -> None:
        _quiet_http_logs()
        client = self._client()
        try:
            await self._send(client, pending, store, stats, desc)
        finally:
            await client.close()

    @abc.abstractmethod
    async def _send(self, client, pending: list[Request], store: RequestStore, stats: Stats, desc: str) -> None:
        """Answer `pending` (each id once, none in the store) through `client`, as run()'s contract says."""

    def _client(self):
        import httpx2
        from openai import AsyncOpenAI

        # per phase: connecting within connect_timeout (never longer than timeout), the reply within timeout
        timeout = httpx2.Timeout(float(self.timeout), connect=float(min(self.connect_timeout, self.timeout)))
        kw = {}
        if self.http_transport == "aiohttp":
            from openai import DefaultAioHttpClient

            # the client's own aiohttp transport (openai[aiohttp]): ~40% less CPU per request than httpx
            kw["http_client"] = DefaultAioHttpClient(timeout=timeout)
        # we retry ourselves (slot-free waits, header-aware): the client must not retry underneath
        return AsyncOpenAI(api_key=self.api_key(), base_url=self.base_url, max_retries=0, timeout=timeout, **kw)

    def key_rejected(self, status: int) -> str:
        return (f"{self.base_url} rejected the API key from ${self.api_key_env} (HTTP {status}): check the key "
                f"and teacher.base_url")


def _quiet_http_logs() -> None:
    # httpx logs one INFO line per request; keep Hydra's log file about the run, not the transport
    for name in ("httpx", "httpx2", "openai"):
        logging.getLogger(name).setLevel(logging.WARNING)


def transport_problem(e: BaseException) -> str:
    """What a timeout or connection error really was. The aiohttp transport reports a refused connection or an
    unknown host as a timeout; the cause chain holds the truth (as httpx reports it)."""
    x: BaseException | None = e
    while x is not None:
        if isinstance(x, ConnectionRefusedError):
            return "connection refused (is the server running on that port?)"
        if isinstance(x, socket.gaierror):
            return "host name not resolved (a typo in teacher.base_url, or no network?)"
        x = x.__cause__ or x.__context__
    return "timeout" if type(e).__name__ == "APITimeoutError" else "connection error"


def server_message(e) -> str:
    """The server's own error message (the client's `message` prefixes "Error code: N - ")."""
    body = getattr(e, "body", None)
    msg = body.get("message") if isinstance(body, dict) else None
    msg = msg or getattr(e, "message", None) or str(e)
    return msg.splitlines()[0][:200] if msg else type(e).__name__


class MissingLogprobs(ValueError):
    """A reply with text but without the log-probs its request asked for: the server ignores `logprobs`."""


def missing_logprobs(teacher: OpenAICompatible, what: str) -> str:
    """The one line that stops a run whose server answers without the log-probs asked for. Such replies are not
    stored: a stored reply would never be asked again, from this server or a better one (same request id)."""
    return (f"teacher.logprobs={teacher.logprobs}: {teacher.base_url} answered {what} without log-probs (it ignores "
            f"logprobs/top_logprobs), not stored. Use a server that returns them (the OpenAI API, vLLM) or "
            f"teacher.logprobs=0, then run the same command")


def reply_from_body(body: dict, request: dict) -> Reply:
    """A Chat Completions body (a sync reply or a Batch API output line) to ``request`` (its body) as a Reply.

    Reads only the fields we keep; anything else malformed raises, and the caller retries or counts it. A request
    with top_logprobs gets its reply's choices[0].logprobs.content (each token's bytes, else its text as UTF-8, and
    its top_logprobs): MissingLogprobs when a reply with text has none.
    """
    choice = body["choices"][0]
    content = choice["message"].get("content")
    if content is not None and not isinstance(content, str):
        raise ValueError("completion whose message content is not text")
    # a completion without content (a refusal, a content filter) is still an answer: stored as "",
    # later counted as an empty reply instead of being asked again forever
    usage = body.get("usage") or {}
    k = int(request.get("top_logprobs") or 0)
    return Reply(
        content=content or "",
        finish_reason=choice.get("finish_reason") or "stop",
        usage={
            "prompt_tokens": int(usage.get("prompt_tokens") or 0),
            "completion_tokens": int(usage.get("completion_tokens") or 0),
        },
        model=body.get("model") or request["model"],
        logprobs=_logprobs(choice, k) if k and content else None,
    )


def _logprobs(choice: dict, k: int) -> TokenLogprobs:
    items = (choice.get("logprobs") or {}).get("content") or []
    if not items:
        raise MissingLogprobs("a reply with text but no logprobs.content")
    tokens, tops = [], []
    lps = np.full((len(items), k), -np.inf, dtype=np.float32)
    for i, item in enumerate(items):
        tokens.append(_token_bytes(item))
        # most likely first, at most k (a server may add the sampled token to its top list)
        alts = sorted(item.get("top_logprobs") or [], key=lambda a: -float(a["logprob"]))[:k]
        tops.append([_token_bytes(a) for a in alts])
        lps[i, : len(alts)] = [float(a["logprob"]) for a in alts]
    return TokenLogprobs(tokens, tops, lps)


def _token_bytes(item: dict) -> bytes:
    # `bytes` is exact where a token holds part of a character; the token's text is not then
    raw = item.get("bytes")
    return bytes(raw) if raw is not None else item["token"].encode("utf-8")
