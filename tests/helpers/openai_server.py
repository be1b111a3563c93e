"""A fake OpenAI-protocol server for tests and benchmarks: real HTTP on 127.0.0.1 (aiohttp).

Chat Completions with deterministic replies (a pure function of the request body), scripted or
random faults (429 with Retry-After, 500, hangs past the client's timeout, malformed bodies,
finish_reason=length), and the Batch API (files upload/content, batches create/get/list). A request with
`logprobs: true, top_logprobs: k` gets choices[0].logprobs.content as the API shapes it (each token's text,
UTF-8 bytes, logprob and its top k alternatives, derived from the text; `honor_logprobs=False` plays a server
that ignores the fields).
Every chat request is logged (time, request key, status) so tests count what was sent twice.

    python tests/helpers/openai_server.py --port 8765 --latency 0.2 --p429 0.1 --p500 0.02
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import re
import threading
import time
import uuid
from collections import Counter

from aiohttp import web

_WORDS = (
    "river market planet garden engine story budget island recipe winter poem museum signal "
    "forest ladder castle rocket theory violin desert harbor pencil orchard glacier comet "
    "lantern meadow canyon bridge temple falcon jungle marble volcano cactus anchor compass "
    "velvet thunder saddle crystal kettle meteor prairie beacon tunnel vessel quartz walnut"
).split()
_VERBS = "Describe Explain Compare Summarize List Suggest Outline Evaluate Classify Propose".split()


def key_of(body: dict) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:32]


def default_responder(body: dict) -> tuple[str, str]:
    """A pure function of the request: Figure 2/7 prompts get <example> lists, others an answer."""
    prompt = body["messages"][-1]["content"]
    rng = random.Random(key_of(body))
    m = re.search(r"Generate (\d+) diverse examples", prompt)
    if m:
        items = []
        for _ in range(int(m.group(1))):
            w = rng.sample(_WORDS, 4)
            items.append(f"<example>{rng.choice(_VERBS)} how a {w[0]} relates to the {w[1]} near a {w[2]} and {w[3]}.</example>")
        return "Here are the examples:\n" + "\n".join(items), "stop"
    return f"A concise answer ({rng.randint(0, 10**6)}) to: {prompt[:60]}", "stop"


def fake_logprobs(content: str, k: int, seed: str) -> dict:
    """choices[0].logprobs for ``content``: tokens of up to 3 bytes (a word's leading space kept, a character
    sometimes split across two tokens, named "bytes:\\x.." as the API names such a token), each with k alternatives
    in falling order (the sampled token first, or second at about one position in five; now and then one fewer
    than k, as the API allows)."""
    rng = random.Random(seed)

    def entry(raw: bytes, logprob: float) -> dict:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = "bytes:" + "".join(f"\\x{b:02x}" for b in raw)
        return {"token": text, "logprob": logprob, "bytes": list(raw)}

    items = []
    for piece in re.findall(r"\s*\S+|\s+", content):
        raw = piece.encode("utf-8")
        for i in range(0, len(raw), 3):
            token = raw[i : i + 3]
            others = [(" " + w).encode() for w in rng.sample(_WORDS, k) if (" " + w).encode() != token][: k - 1]
            ranked = [token, *others] if rng.random() > 0.2 or k == 1 else [others[0], token, *others[1:]]
            if k > 2 and rng.random() < 0.05:
                ranked = ranked[:-1]
            logprob, alts = -rng.uniform(0.01, 1.0), []
            for t in ranked:
                alts.append(entry(t, round(logprob, 4)))
                logprob -= rng.uniform(0.05, 1.5)
            items.append({**entry(token, next(a["logprob"] for a in alts if a["bytes"] == list(token))),
                          "top_logprobs": alts})
    return {"content": items, "refusal": None}


def random_fault(seed: int, body: dict, attempt: int, p429: float, p500: float, faulty_attempts: int = 0) -> str | None:
    """The injected fault of one attempt: independent per attempt, yet reproducible (the benchmark replays it).

    faulty_attempts > 0 spares a request's attempts from that one on (1 = only first attempts can fail).
    """
    if faulty_attempts and attempt >= faulty_attempts:
        return None
    x = random.Random(f"{seed}:{key_of(body)}:{attempt}").random()
    if x < p429:
        return "429"
    if x < p429 + p500:
        return "500"
    return None


class FakeOpenAI:
    def __init__(self, responder=default_responder, script=None, latency: float = 0.0, p429: float = 0.0,
                 p500: float = 0.0, retry_after: float = 0.2, hang: float = 30.0, batch_polls: int = 1,
                 port: int = 0, seed: int = 0):
        self.responder = responder
        # callable(body, attempt) -> None | "429" | "500" | "400" | "404" | "hang" | "malformed" | "length"
        self.script = script
        self.latency, self.p429, self.p500 = latency, p429, p500
        self.faulty_attempts = 0
        self.retry_after, self.hang, self.batch_polls = retry_after, hang, batch_polls
        # how the next batches end: "completed", "failed" (at validation, nothing answered), or
        # "expired"/"cancelled" after answering `batch_partial` of their requests (the others land in
        # the error file, as the Batch API does)
        self.batch_end, self.batch_partial = "completed", 0.5
        self.port, self.seed = port, seed
        self.honor_logprobs = True  # False: a server that ignores logprobs/top_logprobs
        self.attempts: Counter = Counter()
        self.bodies: list[dict] = []  # every chat request body received, in order
        self.log: list[tuple[float, str, int]] = []
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict] = {}
        self.auth: set[str] = set()
        self._loop = None
        self._thread = None

    # --- chat completions -------------------------------------------------------------------
    def _fault(self, body, attempt):
        if self.script is not None:
            action = self.script(body, attempt)
            if action:
                return action
        return random_fault(self.seed, body, attempt, self.p429, self.p500, self.faulty_attempts)

    def completion(self, body: dict, finish_reason: str | None = None) -> dict:
        content, finish = self.responder(body)
        choice = {"index": 0, "message": {"role": "assistant", "content": content},
                  "finish_reason": finish_reason or finish}
        if body.get("logprobs") and self.honor_logprobs:
            choice["logprobs"] = fake_logprobs(content, int(body.get("top_logprobs") or 0), key_of(body))
        return {
            "id": "chatcmpl-" + key_of(body)[:12],
            "object": "chat.completion",
            "created": 0,
            "model": body.get("model", "fake"),
            "choices": [choice],
            "usage": {"prompt_tokens": sum(len(m["content"].split()) for m in body["messages"]),
                      "completion_tokens": len(content.split()),
                      "total_tokens": 0},
        }

    async def chat(self, request: web.Request) -> web.Response:
        self.auth.add(request.headers.get("Authorization", ""))
        body = await request.json()
        self.bodies.append(body)
        key = key_of(body)
        attempt = self.attempts[key]
        self.attempts[key] += 1
        action = self._fault(body, attempt)
        if self.latency:
            await asyncio.sleep(self.latency)
        if action == "429":
            self.log.append((time.time(), key, 429))
            return web.json_response(
                {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}},
                status=429, headers={"retry-after": str(self.retry_after), "x-ratelimit-remaining-requests": "5"})
        if action == "500":
            self.log.append((time.time(), key, 500))
            return web.json_response({"error": {"message": "boom", "type": "server_error"}}, status=500)
        if action in ("400", "404"):  # the request itself is refused
            self.log.append((time.time(), key, int(action)))
            message = "The prompt was flagged by the content filter." if action == "400" else "The model does not exist."
            return web.json_response({"error": {"message": message, "type": "invalid_request_error"}},
                                     status=int(action))
        if action == "hang":
            self.log.append((time.time(), key, -1))
            await asyncio.sleep(self.hang)
        if action == "malformed":
            self.log.append((time.time(), key, 299))
            return web.Response(text='{"choices": [', content_type="application/json")
        self.log.append((time.time(), key, 200))
        return web.json_response(self.completion(body, "length" if action == "length" else None))

    def completed(self) -> Counter:
        """How many 200 replies each request key got (more than 1 = sent again after success)."""
        return Counter(k for _, k, s in self.log if s == 200)

    # --- files and batches ------------------------------------------------------------------
    async def upload(self, request: web.Request) -> web.Response:
        form = await request.post()
        fid = "file-" + uuid.uuid4().hex[:12]
        self.files[fid] = form["file"].file.read()
        return web.json_response({"id": fid, "object": "file", "bytes": len(self.files[fid]), "created_at": 0,
                                  "filename": form["file"].filename, "purpose": form.get("purpose", "batch"),
                                  "status": "processed"})

    async def content(self, request: web.Request) -> web.Response:
        fid = request.match_info["fid"]
        if fid not in self.files:
            return web.json_response({"error": {"message": "no such file"}}, status=404)
        return web.Response(body=self.files[fid], content_type="application/octet-stream")

    def _batch_json(self, b):
        return {k: v for k, v in b.items() if not k.startswith("_")}

    async def create_batch(self, request: web.Request) -> web.Response:
        body = await request.json()
        bid = "batch_" + uuid.uuid4().hex[:12]
        self.batches[bid] = {"id": bid, "object": "batch", "endpoint": body["endpoint"], "status": "validating",
                             "input_file_id": body["input_file_id"], "completion_window": body["completion_window"],
                             "created_at": int(time.time()), "metadata": body.get("metadata"),
                             "output_file_id": None, "error_file_id": None, "_polls": 0}
        return web.json_response(self._batch_json(self.batches[bid]))

    def _finish(self, b):
        if self.batch_end == "failed":  # rejected at validation: no output at all, only batch-level errors
            b["status"] = "failed"
            b["errors"] = {"object": "list", "data": [{"code": "invalid_request", "line": 1,
                                                       "message": "The model `gpt-x` does not exist."}]}
            return
        out, err = [], []
        lines = [x for x in self.files[b["input_file_id"]].decode().splitlines() if x.strip()]
        answered = len(lines) if self.batch_end == "completed" else int(len(lines) * self.batch_partial)
        for n, line in enumerate(lines):
            req = json.loads(line)
            body = req["body"]
            if n >= answered:
                code = "batch_" + self.batch_end
                err.append({"id": "r", "custom_id": req["custom_id"], "response": None,
                            "error": {"code": code, "message": f"This request was not executed ({code})."}})
                continue
            action = self.script(body, 0) if self.script is not None else None
            if action == "400":  # refused: a response line with the status and the error body, as the API writes it
                out.append({"id": "r", "custom_id": req["custom_id"], "error": None,
                            "response": {"status_code": 400, "request_id": "x",
                                         "body": {"error": {"message": "The prompt was flagged.", "type": "invalid_request_error"}}}})
                continue
            self.log.append((time.time(), key_of(body), 200))
            if action == "500":
                err.append({"id": "r", "custom_id": req["custom_id"], "response": None,
                            "error": {"code": "server_error", "message": "boom"}})
                continue
            out.append({"id": "r", "custom_id": req["custom_id"], "error": None,
                        "response": {"status_code": 200, "request_id": "x", "body": self.completion(body)}})
        random.Random(self.seed).shuffle(out)  # the API gives no order guarantee: join by custom_id
        b["output_file_id"] = "file-" + uuid.uuid4().hex[:12]
        self.files[b["output_file_id"]] = "".join(json.dumps(o) + "\n" for o in out).encode()
        if err:
            b["error_file_id"] = "file-" + uuid.uuid4().hex[:12]
            self.files[b["error_file_id"]] = "".join(json.dumps(o) + "\n" for o in err).encode()
        b["status"] = self.batch_end
        b["request_counts"] = {"total": len(out) + len(err), "completed": len(out), "failed": len(err)}

    async def get_batch(self, request: web.Request) -> web.Response:
        b = self.batches.get(request.match_info["bid"])
        if b is None:
            return web.json_response({"error": {"message": "no such batch"}}, status=404)
        b["_polls"] += 1
        if b["status"] not in ("completed", "failed", "expired", "cancelled"):
            if b["_polls"] >= self.batch_polls:
                self._finish(b)
            else:
                b["status"] = "in_progress"
        return web.json_response(self._batch_json(b))

    async def list_batches(self, request: web.Request) -> web.Response:
        data = [self._batch_json(b) for b in self.batches.values()]
        return web.json_response({"object": "list", "data": data, "has_more": False,
                                  "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None})

    async def stats(self, request: web.Request) -> web.Response:
        done = self.completed()
        return web.json_response({"requests": len(self.log), "completed": sum(done.values()), "unique": len(done),
                                  "duplicated": sum(n - 1 for n in done.values()),
                                  "by_status": dict(Counter(str(s) for _, _, s in self.log))})

    async def get_log(self, request: web.Request) -> web.Response:
        """Every chat attempt as [unix time it was answered, request key, status]."""
        return web.json_response(self.log)

    # --- lifecycle --------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(client_max_size=1 << 30)
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/v1/files", self.upload)
        app.router.add_get("/v1/files/{fid}/content", self.content)
        app.router.add_post("/v1/batches", self.create_batch)
        app.router.add_get("/v1/batches/{bid}", self.get_batch)
        app.router.add_get("/v1/batches", self.list_batches)
        app.router.add_get("/stats", self.stats)
        app.router.add_get("/log", self.get_log)
        return app

    def start(self) -> str:
        ready = threading.Event()

        def serve():
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            runner = web.AppRunner(self.app(), access_log=None)
            self._loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, "127.0.0.1", self.port, backlog=1024)
            self._loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]
            self._runner = runner
            ready.set()
            self._loop.run_forever()
            self._loop.run_until_complete(runner.cleanup())

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self.base_url

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--latency", type=float, default=0.0)
    p.add_argument("--p429", type=float, default=0.0)
    p.add_argument("--p500", type=float, default=0.0)
    p.add_argument("--retry-after", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0, help="seed of the random faults")
    p.add_argument("--faulty-attempts", type=int, default=0, help="only a request's first N attempts can fail (0: all)")
    a = p.parse_args()
    srv = FakeOpenAI(latency=a.latency, p429=a.p429, p500=a.p500, retry_after=a.retry_after, port=a.port, seed=a.seed)
    srv.faulty_attempts = a.faulty_attempts
    web.run_app(srv.app(), host="127.0.0.1", port=a.port, access_log=None, print=None, backlog=1024)


if __name__ == "__main__":
    main()
