"""Run statistics and the progress bar (rate, ETA, tokens and cost so far)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field

from lamini_lm.teachers import tokens as tok

# tqdm is imported when a bar is shown: a run with progress off (the benchmark, the judge's tests) never loads it


@dataclass
class Stats:
    """What one teacher run did; merged into the run report."""

    model: str
    prices: object = None
    batch: bool = False
    sent: int = 0
    done: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retries: Counter = field(default_factory=Counter)
    failures: list = field(default_factory=list)
    # requests the teacher refused as invalid (HTTP 400/404/413/422): (Request, reason), stored by the stage
    rejected: list = field(default_factory=list)
    # when the server last answered anything (a completion or an HTTP error), else when the run began (monotonic)
    heard_at: float = field(default_factory=time.monotonic)

    def add_usage(self, usage: dict) -> None:
        self.prompt_tokens += int(usage.get("prompt_tokens") or 0)
        self.completion_tokens += int(usage.get("completion_tokens") or 0)

    @property
    def cost(self) -> float | None:
        return tok.cost(self.prices, self.model, self.prompt_tokens, self.completion_tokens, self.batch)

    def as_dict(self) -> dict:
        return {
            "requests_sent": self.sent,
            "requests_done": self.done,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost_usd": self.cost,
            "retries": dict(self.retries),
            "failed": len(self.failures),
            "rejected": len(self.rejected),
        }


WAIT_NOTE_AFTER = 5.0  # seconds without any reply before the bar says it is waiting


class Progress:
    """A tqdm bar whose postfix shows tokens and cost so far; a no-op when disabled.

    With ``timeout`` (a server's teacher, created inside its event loop) the bar also says when the server has
    sent nothing for a while, and how long a request may wait: a stalled server never looks like a frozen bar."""

    def __init__(self, total: int, desc: str, stats: Stats, enabled: bool = True, timeout: float | None = None):
        self.stats = stats
        self.bar = None
        self._ticker = None
        if enabled and total:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="req", mininterval=1.0, dynamic_ncols=True)
            if timeout is not None:
                self._ticker = asyncio.get_running_loop().create_task(self._tick(timeout))

    def _postfix(self, waited: float | None = None, timeout: float | None = None) -> dict:
        s = self.stats
        cost = s.cost
        out = {"tok_in": s.prompt_tokens, "tok_out": s.completion_tokens,
               "cost": "n/a" if cost is None else f"${cost:.4f}", "retries": sum(s.retries.values())}
        if waited is not None:
            out["waiting"] = f"no reply for {waited:.0f}s (a try times out after {timeout:g}s)"
        return out

    async def _tick(self, timeout: float) -> None:
        while True:
            await asyncio.sleep(1.0)
            waited = time.monotonic() - self.stats.heard_at
            if waited >= WAIT_NOTE_AFTER:
                self.bar.set_postfix(self._postfix(waited, timeout), refresh=True)

    def update(self, n: int = 1) -> None:
        if self.bar is None:
            return
        self.bar.set_postfix(self._postfix(), refresh=False)
        self.bar.update(n)

    def close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        if self.bar is not None:
            self.bar.close()
