"""The resumable request store: one append-only JSONL file of finished teacher requests.

Every request has a stable id, a hash of its content (model, messages, sampling parameters), never
of its position or attempt. Each finished result is appended as one complete line and flushed, so
a process killed at any moment leaves at most one torn last line, which the next open cuts off.
A rerun sends only the ids that are not in the store.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from lamini_lm.errors import UserError
from lamini_lm.jsonl import cut_torn_tail, iter_jsonl


def request_id(body: dict) -> str:
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


@dataclass
class Request:
    """One chat request: `body` is exactly what the Chat Completions API receives."""

    body: dict
    id: str = field(init=False)

    def __post_init__(self):
        self.id = request_id(self.body)


@dataclass
class Reply:
    content: str
    finish_reason: str  # stop | length | ... | rejected (the teacher refused the request itself)
    usage: dict  # prompt_tokens, completion_tokens
    model: str
    error: str | None = None  # why a rejected request was refused


REJECTED = "rejected"


class RequestStore:
    """Finished results of one stage, keyed by request id (first result wins)."""

    def __init__(self, path: str | Path, fsync: bool = False):
        self.path = Path(path)
        self.fsync = fsync
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._results: dict[str, Reply] = {}
        self._load()
        self._f = open(self.path, "a", encoding="utf-8")

    def _load(self) -> None:
        if not self.path.exists():
            return
        cut_torn_tail(self.path)  # a killed run's torn last line: cut off before we append
        fix = "this file is written only by generate.py: restore it or delete that line"
        for where, rec in iter_jsonl(self.path, fix):
            try:
                reply = Reply(**rec["reply"])
                rid = rec["id"]
            except (KeyError, TypeError) as e:
                raise UserError(f"{where}: not a request-store line ({type(e).__name__}); {fix}") from None
            self._results.setdefault(rid, reply)

    def __contains__(self, rid: str) -> bool:
        return rid in self._results

    def __len__(self) -> int:
        return len(self._results)

    def get(self, rid: str) -> Reply | None:
        return self._results.get(rid)

    def missing(self, requests: list[Request]) -> list[Request]:
        """Requests not yet finished, each id once, in the given order."""
        seen: set[str] = set()
        out = []
        for r in requests:
            if r.id not in self._results and r.id not in seen:
                seen.add(r.id)
                out.append(r)
        return out

    def append(self, req: Request, reply: Reply) -> None:
        if req.id in self._results:
            return
        fields = {k: v for k, v in reply.__dict__.items() if v is not None}
        line = json.dumps({"id": req.id, "request": req.body, "reply": fields}, ensure_ascii=False)
        self._f.write(line + "\n")
        self._f.flush()  # one complete line reaches the OS: a SIGKILL cannot lose it
        if self.fsync:
            os.fsync(self._f.fileno())
        self._results[req.id] = reply

    def close(self) -> None:
        self._f.close()
