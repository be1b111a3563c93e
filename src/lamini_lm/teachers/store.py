"""The resumable request store: one append-only JSONL file of finished teacher requests.

Every request has a stable id, a hash of its content (model, messages, sampling parameters), never
of its position or attempt. Each finished result is appended as one complete line in one write, so a
process killed at any moment leaves at most one torn last line, which the next open cuts off; a write
the disk has no room for is cut back, never left torn. A rerun sends only the ids that are not in the store.

Paid replies survive a full disk: while requests are sent (hold_reserve, release_reserve), ``<store>.reserve``
holds RESERVE bytes of the disk; the first append that finds the disk full frees it, writes into that
room, and sets ``full``, so the teacher sends nothing more while the replies already in flight are still
stored.

A reply may carry the teacher's top-k log-probs of its tokens (``Reply.logprobs``, written in the line as
TokenLogprobs.to_json()): they are kept on disk, not in memory (the store remembers where each such line is;
``logprobs(id)`` reads it back), so a store of millions of distilled replies opens in bounded memory.

Durable: a line is on disk (fdatasync) once a ``sync`` that began after it has ended. Teachers count a
reply as done only after that: ``await store.synced()`` (concurrent replies share one sync, run in a
thread, so the event loop goes on) or ``store.sync()``. A sync per append blocks the event loop, 0.15 ms
idle and far longer while other processes write: bench.generate_throughput (no faults, 2 cores, load
average 5) gave 185-206 requests/s so, 284-293 with the shared sync, 276-281 with no sync at all.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from lamini_lm.errors import UserError
from lamini_lm.files import FULL, DiskFull, sync_dir
from lamini_lm.jsonl import cut_torn_tail, iter_jsonl_spans
from lamini_lm.logprobs import TokenLogprobs


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
    # the teacher's top-k alternatives per token of `content` (before its strip), when the request asked for them;
    # what RequestStore.get returns leaves them on disk: RequestStore.logprobs(id) reads them
    logprobs: TokenLogprobs | None = field(default=None, compare=False, repr=False)


REJECTED = "rejected"


def _allocate(fd: int, size: int) -> None:
    """Give the file ``size`` bytes of real blocks (a sparse file would hold no room)."""
    try:
        os.posix_fallocate(fd, 0, size)
        return
    except AttributeError:  # macOS has no posix_fallocate
        pass
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.EOPNOTSUPP):  # a file system that cannot allocate ahead: write zeros
            raise
    done = os.fstat(fd).st_size
    while done < size:
        done += os.pwrite(fd, bytes(min(1 << 20, size - done)), done)


class RequestStore:
    """Finished results of one stage, keyed by request id (first result wins)."""

    RESERVE = 4 << 20  # room for the replies in flight when the disk fills: 64 at once, up to 64 KiB a line

    def __init__(self, path: str | Path, reserve: int | None = None):
        self.path = Path(path)
        self.reserve = self.path.with_name(self.path.name + ".reserve")
        # bytes to hold: RESERVE, or more where replies carry log-probs (lines of up to a few hundred kB)
        self.reserve_bytes = self.RESERVE if reserve is None else int(reserve)
        self.full = False  # the disk filled up: send nothing more, store what is in flight
        self._reserved = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._results: dict[str, Reply] = {}
        self._logprobs_at: dict[str, tuple[int, int]] = {}  # id -> (offset, length) of its line, if it has them
        self._reader: int | None = None
        self._load()
        created = not self.path.exists()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._size = os.fstat(self._fd).st_size  # the end of the last whole line
        self._written = self._synced = 0  # lines written by this process; of those, the ones known on disk
        self._syncing: asyncio.Future | None = None
        if created:
            sync_dir(self.path.parent)

    def _load(self) -> None:
        if not self.path.exists():
            return
        cut_torn_tail(self.path)  # a killed run's torn last line: cut off before we append
        fix = "this file is written only by generate.py: restore it or delete that line"
        for where, offset, length, rec in iter_jsonl_spans(self.path, fix):
            try:
                fields = dict(rec["reply"])
                has_logprobs = fields.pop("logprobs", None) is not None
                reply = Reply(**fields)
                rid = rec["id"]
            except (KeyError, TypeError, ValueError) as e:
                raise UserError(f"{where}: not a request-store line ({type(e).__name__}); {fix}") from None
            if rid not in self._results:
                self._results[rid] = reply
                if has_logprobs:
                    self._logprobs_at[rid] = (offset, length)

    def hold_reserve(self) -> None:
        """Keep RESERVE bytes of the disk for this store (until release_reserve or close) while requests are sent;
        a disk too full for it is one DiskFull before anything is paid for."""
        if self._reserved:
            return
        try:
            fd = os.open(self.reserve, os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                _allocate(fd, self.reserve_bytes)
            finally:
                os.close(fd)
        except OSError as e:
            self.reserve.unlink(missing_ok=True)
            if e.errno not in FULL:
                raise
            self.full = True
            raise self.disk_full(self.reserve_bytes) from None
        self._reserved = True

    def release_reserve(self) -> None:
        if self._reserved:
            self.reserve.unlink(missing_ok=True)
            self._reserved = False

    def disk_full(self, needed: int | None = None) -> DiskFull:
        """The full-disk error for this store; callers that know how much is left to store give ``needed``."""
        return DiskFull(self.path.parent, needed, f"{len(self)} finished requests are stored in {self.path}",
                        "run the same command again: it sends only the missing requests")

    def __contains__(self, rid: str) -> bool:
        return rid in self._results

    def __len__(self) -> int:
        return len(self._results)

    def get(self, rid: str) -> Reply | None:
        """The stored reply (its log-probs left on disk: see logprobs)."""
        return self._results.get(rid)

    def has_logprobs(self, rid: str) -> bool:
        return rid in self._logprobs_at

    def logprobs(self, rid: str) -> TokenLogprobs | None:
        """The stored reply's top-k log-probs, read from its line; None when it has none."""
        at = self._logprobs_at.get(rid)
        if at is None:
            return None
        if self._reader is None:
            self._reader = os.open(self.path, os.O_RDONLY)
        line = os.pread(self._reader, at[1], at[0])
        return TokenLogprobs.from_json(json.loads(line)["reply"]["logprobs"])

    def missing(self, requests: list[Request]) -> list[Request]:
        """Requests not yet finished, each id once, in the given order."""
        seen: set[str] = set()
        out = []
        for r in requests:
            if r.id not in self._results and r.id not in seen:
                seen.add(r.id)
                out.append(r)
        return out

    @property
    def line_bytes(self) -> int:
        """Mean bytes of a stored line (0 while empty): what each request still to come will take."""
        return self._size // len(self) if len(self) else 0

    def append(self, req: Request, reply: Reply) -> None:
        """Store ``reply`` as one whole line (durable after the next sync); DiskFull if the disk, reserve
        included, has no room for it."""
        if req.id in self._results:
            return
        fields = {k: v for k, v in reply.__dict__.items() if v is not None}
        if reply.logprobs is not None:
            fields["logprobs"] = reply.logprobs.to_json()
        line = json.dumps({"id": req.id, "request": req.body, "reply": fields}, ensure_ascii=False) + "\n"
        data = line.encode("utf-8")
        try:
            self._write(data)
        except OSError as e:
            if e.errno not in FULL:
                raise
            self.full = True  # whatever happens next, nothing more is sent
            if not self._reserved:
                raise self.disk_full(len(data)) from None
            self.reserve.unlink()  # its room is for this reply and those still in flight
            self._reserved = False
            try:
                self._write(data)
            except OSError as e2:
                if e2.errno not in FULL:
                    raise
                raise self.disk_full(len(data)) from None
        if reply.logprobs is not None:
            self._logprobs_at[req.id] = (self._size - len(data), len(data))
        self._results[req.id] = replace(reply, logprobs=None)  # on disk only
        self._written += 1

    def _write(self, data: bytes) -> None:
        """``data`` appended whole, or the file cut back to its last whole line and the error raised."""
        done = 0
        try:
            while done < len(data):
                done += os.write(self._fd, data[done:])
        except OSError:
            if done:
                os.ftruncate(self._fd, self._size)
            raise
        self._size += len(data)

    def sync(self) -> None:
        """Make every line appended so far durable."""
        upto = self._written  # the lines written before the sync starts are the ones it covers
        if self._synced >= upto:
            return
        try:
            os.fdatasync(self._fd)
        except OSError as e:
            if e.errno not in FULL:
                raise
            self.full = True
            raise self.disk_full() from None
        self._synced = max(self._synced, upto)

    async def synced(self) -> None:
        """Return once every line appended so far is durable. Concurrent callers share one sync (group commit);
        it runs in a thread, so the event loop goes on meanwhile."""
        target, loop = self._written, asyncio.get_running_loop()
        while self._synced < target:
            if self._syncing is None or self._syncing.done() or self._syncing.get_loop() is not loop:
                self._syncing = asyncio.ensure_future(asyncio.to_thread(self.sync))
            await asyncio.shield(self._syncing)

    def close(self) -> None:
        """Sync, close, and give the reserve back to the disk."""
        if self._reader is not None:
            os.close(self._reader)
            self._reader = None
        if self._fd < 0:
            return
        try:
            self.sync()
        finally:
            os.close(self._fd)
            self._fd = -1
            self.release_reserve()
