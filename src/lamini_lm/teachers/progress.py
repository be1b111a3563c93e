"""Run statistics and the progress bar (rate, ETA, tokens and cost so far)."""

from __future__ import annotations

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


class Progress:
    """A tqdm bar whose postfix shows tokens and cost so far; a no-op when disabled."""

    def __init__(self, total: int, desc: str, stats: Stats, enabled: bool = True):
        self.stats = stats
        self.bar = None
        if enabled and total:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="req", mininterval=1.0, dynamic_ncols=True)

    def update(self, n: int = 1) -> None:
        if self.bar is None:
            return
        s = self.stats
        cost = s.cost
        self.bar.set_postfix(
            tok_in=s.prompt_tokens,
            tok_out=s.completion_tokens,
            cost="n/a" if cost is None else f"${cost:.4f}",
            retries=sum(s.retries.values()),
            refresh=False,
        )
        self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
