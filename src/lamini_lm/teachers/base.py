"""The contract every teacher keeps, and the request body whose hash is a request's id.

A teacher is chosen by config: conf/teacher/<name>.yaml holds `_target_: <module>.<Class>` and the
class's settings. `lamini_lm.teachers.build` constructs it with those settings as keyword arguments
plus what the program passes at run time (`prices`, `progress`, `state_dir`); a setting the class
does not declare is one error naming it. A teacher of your own is one module with a subclass of
`Teacher` (a `@dataclass(kw_only=True)`, its fields are its settings) and one config file.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from lamini_lm.errors import UserError
from lamini_lm.teachers.progress import Stats
from lamini_lm.teachers.store import Request, RequestStore


@dataclass(kw_only=True)
class Teacher(abc.ABC):
    """Turns Chat Completions request bodies into replies, stored in a RequestStore.

    Construction does no work (no network, no model loading, no key lookup): dry runs and the
    assembly stage build a teacher only to check its settings.
    """

    # settings every teacher config holds; model, params and max_tokens are part of each request body,
    # hence of its id: change one and the requests are new
    model: str  # the name sent to the server and recorded with every reply
    max_tokens: dict[str, int]  # per generate stage: {instructions: N, responses: N}
    params: dict = field(default_factory=dict)  # sampling parameters sent with every request
    # the top-k alternatives (and their log-probs) of every response token, stored with each reply; 0 = off. Only
    # response requests ask for them (instructions and the judge's ratings are not distilled)
    logprobs: int = 0
    # given by the program at run time, not by the config
    prices: dict | None = None  # USD per 1M tokens by model (conf/prices), for the cost so far
    progress: bool = True  # show a progress bar
    state_dir: Path | str = "."  # this run's folder, for a teacher's own state (e.g. Batch API ids)

    # the most alternatives per token this kind of teacher returns (None: any number); 0 = none, so that a teacher
    # of your own is refused teacher.logprobs > 0 until it stores them (Reply.logprobs) and raises this
    max_logprobs: ClassVar[int | None] = 0

    def __post_init__(self) -> None:
        # checked when the teacher is built, before any request: a bad value would fail only at the server
        require(isinstance(self.max_tokens, dict), "max_tokens", self.max_tokens,
                "must give each stage its tokens ({instructions: N, responses: N})")
        for stage, n in self.max_tokens.items():
            require(is_whole(n) and n >= 1, f"max_tokens.{stage}", n, "must be a whole number of tokens, at least 1")
        t = (self.params or {}).get("temperature")
        require(t is None or (is_number(t) and t >= 0), "params.temperature", t,
                "must be a number of at least 0 (0: greedy), or null for the server's default")
        require(is_whole(self.logprobs) and self.logprobs >= 0, "logprobs", self.logprobs,
                "must be a whole number of alternatives per response token, at least 0 (0: off)")
        cap, name = self.max_logprobs, type(self).__name__
        require(cap != 0 or not self.logprobs, "logprobs", self.logprobs,
                f"is not something {name} returns: set it to 0 (or use teacher=hf_local or an OpenAI-compatible one)")
        require(not cap or self.logprobs <= cap, "logprobs", self.logprobs,
                f"must be at most {cap}: the most alternatives per token that {name} returns (the API's top_logprobs)")

    def check(self) -> None:
        """Raise UserError, before any work, if this teacher cannot run (e.g. no API key). Default: nothing to check."""

    @abc.abstractmethod
    def run(self, requests: list[Request], store: RequestStore, desc: str) -> Stats:
        """Answer what `store` lacks of `requests` (ALL of a stage's requests, maybe repeated; `desc` names the
        stage) and return what this run did: `Stats(self.model, self.prices)`, counted as below.

        - Send only the requests whose id is not in `store` (the whole list is given because a local model
          must batch a rerun exactly as the first run did).
        - `store.append(request, reply)` each finished reply at once, so a kill loses nothing finished.
        - A request the server refuses as invalid (asking again would get the same answer) is not stored:
          it goes to `stats.rejected` as (request, reason), and the caller decides (generate stores it
          as rejected up to max_rejected; the judge leaves it unrated).
        - A request that finally failed is not stored: it goes to `stats.failures` as {"id": ..., "error": ...}
          and the run goes on with the others (the caller then stops; a rerun sends only what is missing).
          Raise only when no request can succeed (a UserError, e.g. a rejected key).
        - Count `stats.sent`, `stats.done`, `stats.add_usage(reply.usage)` and `stats.retries` as you go.
        """


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def require(ok: bool, key: str, value, rule: str) -> None:
    """A teacher setting's check: when not ``ok``, one UserError naming ``teacher.<key>``, its value and ``rule``."""
    if not ok:
        raise UserError(f"teacher.{key}={value} {rule}")


def request_body(teacher: Teacher, messages: list[dict], max_tokens: int, params: dict | None = None,
                 logprobs: bool = False) -> dict:
    """The Chat Completions body of a request to `teacher`; everything in it is hashed into the request id.

    `params` override the teacher's params (e.g. the judge's greedy decoding). `logprobs`: this request's reply is
    distilled, so it asks for teacher.logprobs alternatives per token (the API's `logprobs`/`top_logprobs`); with
    teacher.logprobs=0 the body is the same as without them (the same request id).
    """
    body = {"model": teacher.model, "messages": messages, "max_tokens": int(max_tokens)}
    body.update({k: v for k, v in {**(teacher.params or {}), **(params or {})}.items() if v is not None})
    if logprobs and teacher.logprobs:
        body.update(logprobs=True, top_logprobs=int(teacher.logprobs))
    return body
