"""teacher=openai_batch: the OpenAI Batch API (about half the price, results within a window).

Upload a JSONL of requests (custom_id = request id), create a batch, poll it, download its output
and join by custom_id into the request store. Resumable: <out_dir>/batches/<stage>.jsonl records
each upload and batch id as it happens, so a rerun polls the batches already running instead of
paying for them twice; a batch whose creation was interrupted is found again by its input file.
The openai client is imported inside functions (why: openai_api.py).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from lamini_lm.errors import UserError
from lamini_lm.jsonl import cut_torn_tail, iter_jsonl
from lamini_lm.teachers.limits import backoff
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

log = logging.getLogger(__name__)
ENDPOINT = "/v1/chat/completions"
DONE = {"completed", "failed", "expired", "cancelled"}


@dataclass(kw_only=True)
class OpenAIBatchTeacher(OpenAICompatible):
    completion_window: str  # the Batch API's window, e.g. 24h
    poll_interval: float  # seconds between status polls
    max_requests_per_batch: int  # the API's limit per batch file
    max_wait: float | None = None  # stop polling after this many seconds (None: wait); a rerun collects later

    batch_priced: ClassVar[bool] = True

    # --- state --------------------------------------------------------------------------------
    def _state_file(self, desc: str) -> Path:
        return Path(self.state_dir) / "batches" / f"{desc}.jsonl"

    def _events(self, desc: str) -> list[dict]:
        """The events recorded so far. A line torn by a kill is cut off, as if the kill came just before it:
        _resume recovers from that (an orphan upload is found again, a batch collected again)."""
        path = self._state_file(desc)
        if not path.exists():
            return []
        cut_torn_tail(path)
        return [event for _, event in iter_jsonl(path)]

    def _record(self, desc: str, event: dict) -> None:
        path = self._state_file(desc)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(event) + "\n")
            f.flush()

    async def _call(self, fn, *args, **kwargs):
        """A Batch API call, retried on transient errors with jittered backoff."""
        import openai

        rng = random.Random()
        last = "no attempt"
        for attempt in range(int(self.max_attempts)):
            try:
                return await fn(*args, **kwargs)
            except openai.APIStatusError as e:
                if e.status_code in (401, 403):
                    raise UserError(self.key_rejected(e.status_code)) from None
                if e.status_code < 500 and e.status_code not in (408, 409, 429):
                    raise UserError(f"Batch API call failed: HTTP {e.status_code}: {server_message(e)}") from None
                last = f"HTTP {e.status_code}"
            except (openai.APITimeoutError, openai.APIConnectionError) as e:
                last = transport_problem(e)
            await asyncio.sleep(backoff(attempt, self.backoff_base, self.backoff_max, rng))
        raise UserError(f"the Batch API at {self.base_url} kept failing ({last}); run the same command again later")

    # --- run ----------------------------------------------------------------------------------
    async def _send(self, client, requests, store, stats, desc) -> None:
        bar = Progress(len(requests), f"{desc} (batch)", stats, self.progress)
        try:
            live = await self._resume(client, desc, requests)
            covered = {i for b in live.values() for i in b}
            todo = [r for r in requests if r.id not in covered]
            size = int(self.max_requests_per_batch)
            for start in range(0, len(todo), size):
                chunk = todo[start : start + size]
                bid = await self._submit(client, desc, chunk)
                live[bid] = [r.id for r in chunk]
            stats.sent = len(requests)
            await self._collect(client, desc, live, {r.id: r for r in requests}, store, stats, bar)
        finally:
            bar.close()
        missing = [r for r in requests if r.id not in store]
        known = _settled(stats)
        stats.failures += [{"id": r.id, "error": "not in the batch output"} for r in missing if r.id not in known]

    async def _resume(self, client, desc, requests) -> dict[str, list[str]]:
        """Batches of earlier runs still to collect: {batch id: request ids}."""
        wanted = {r.id for r in requests}
        uploaded, created, collected = {}, {}, set()
        for e in self._events(desc):
            if e["event"] == "uploaded":
                uploaded[e["file_id"]] = e["ids"]
            elif e["event"] == "created":
                created[e["batch_id"]] = e["file_id"]
            elif e["event"] == "collected":
                collected.add(e["batch_id"])
        orphans = set(uploaded) - set(created.values())
        if orphans:  # killed between create and its record: find those batches by input file
            async for b in client.batches.list(limit=100):
                if b.input_file_id in orphans and b.id not in created:
                    created[b.id] = b.input_file_id
                    self._record(desc, {"event": "created", "file_id": b.input_file_id, "batch_id": b.id})
                    orphans.discard(b.input_file_id)
        for fid in orphans:  # uploaded but never created: create it now if it is still wanted
            if wanted & set(uploaded[fid]):
                created[await self._create(client, desc, fid)] = fid
        return {bid: uploaded.get(fid, []) for bid, fid in created.items() if bid not in collected}

    async def _submit(self, client, desc, chunk: list[Request]) -> str:
        lines = "".join(
            json.dumps({"custom_id": r.id, "method": "POST", "url": ENDPOINT, "body": r.body}, ensure_ascii=False) + "\n"
            for r in chunk
        )
        f = await self._call(client.files.create, file=(f"{desc}.jsonl", io.BytesIO(lines.encode("utf-8"))),
                             purpose="batch")
        self._record(desc, {"event": "uploaded", "file_id": f.id, "ids": [r.id for r in chunk]})
        return await self._create(client, desc, f.id)

    async def _create(self, client, desc, file_id: str) -> str:
        b = await self._call(client.batches.create, input_file_id=file_id, endpoint=ENDPOINT,
                             completion_window=str(self.completion_window), metadata={"lamini_lm_stage": desc})
        self._record(desc, {"event": "created", "file_id": file_id, "batch_id": b.id})
        log.info("%s: batch %s created for input file %s", desc, b.id, file_id)
        return b.id

    async def _collect(self, client, desc, live, by_id, store, stats, bar) -> None:
        started = time.monotonic()
        while live:
            for bid in list(live):
                b = await self._call(client.batches.retrieve, bid)
                if b.status not in DONE:
                    continue
                n = 0
                for fid in (b.output_file_id, b.error_file_id):
                    if fid:
                        content = await self._call(client.files.content, fid)
                        n += self._join(content.text, by_id, store, stats)
                bar.update(n)
                if b.status != "completed":
                    # expired/cancelled batches still deliver what they answered; the rest is sent again on rerun
                    why = "; ".join(e.message or e.code or "" for e in (b.errors.data or [])) if b.errors else ""
                    log.warning("%s: batch %s ended %s%s; its answered requests are saved, a rerun resubmits the rest",
                                desc, bid, b.status, f" ({why})" if why else "")
                    known = _settled(stats)
                    stats.failures += [{"id": i, "error": f"batch {bid} {b.status}" + (f": {why}" if why else "")}
                                       for i in live[bid] if i in by_id and i not in store and i not in known]
                self._record(desc, {"event": "collected", "batch_id": bid, "status": b.status})
                del live[bid]
            if live:
                if self.max_wait is not None and time.monotonic() - started > float(self.max_wait):
                    raise UserError(
                        f"{len(live)} batches still running ({', '.join(sorted(live))}); everything collected is "
                        f"saved; run the same command again later to collect them (nothing is resubmitted)"
                    )
                await asyncio.sleep(float(self.poll_interval))

    def _join(self, text: str, by_id, store, stats) -> int:
        n, without_logprobs = 0, 0
        for line in text.splitlines():
            if not line.strip():
                continue
            out = json.loads(line)
            req = by_id.get(out.get("custom_id"))
            if req is None:
                continue  # a request this run no longer needs
            n += 1
            resp = out.get("response") or {}
            if resp.get("status_code") in REJECTING:
                err = (resp.get("body") or {}).get("error") or {}
                stats.rejected.append((req, f"HTTP {resp['status_code']}: {err.get('message', '')}".strip()))
                continue
            if out.get("error") or resp.get("status_code") != 200:
                err = out.get("error") or {"message": f"HTTP {resp.get('status_code')}"}
                stats.failures.append({"id": req.id, "error": f"batch: {err.get('message', err)}"})
                continue
            try:
                reply = reply_from_body(resp["body"], req.body)
            except MissingLogprobs:
                without_logprobs += 1
                continue
            except Exception as e:
                stats.failures.append({"id": req.id, "error": f"batch: malformed completion ({type(e).__name__})"})
                continue
            store.append(req, reply)
            stats.done += 1
            stats.add_usage(reply.usage)
        if without_logprobs:  # the batch stays uncollected: its output is kept on the server for a later rerun
            raise UserError(missing_logprobs(self, f"{without_logprobs} requests of a batch"))
        return n


def _settled(stats: Stats) -> set[str]:
    """Ids this run already has an outcome for other than a reply: failed or refused."""
    return {f["id"] for f in stats.failures} | {r.id for r, _ in stats.rejected}
