"""teacher=hf_local: an in-process transformers chat model, batched generation, same store.

Unlike lamini_lm.inference (students with an Alpaca/raw prompt style), a teacher is a chat model:
requests go through the tokenizer's chat template, and each reply reports its finish reason and
token usage like the API does. torch and transformers are imported inside functions: the other
teachers, the dry run and the judge start without them.

With teacher.logprobs=k a response request also gets the model's own top-k log-probs at every generated
position: the raw logits of each forward pass (what generate's output_logits returns, before repetition_penalty,
temperature or top_p bend them), log_softmax in float32, caught by a forward hook that keeps only the top k, so
a batch holds k values per token instead of output_logits' whole vocabulary per token (SmolLM2 at batch 8 x 256
tokens: 400 MB; a 128k-vocabulary teacher at 64 x 512: 17 GB).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from lamini_lm import assets
from lamini_lm.errors import UserError
from lamini_lm.logprobs import TokenLogprobs
from lamini_lm.teachers.base import Teacher, is_whole, require
from lamini_lm.teachers.progress import Progress, Stats
from lamini_lm.teachers.store import Reply, Request, RequestStore
from lamini_lm.token_bytes import token_bytes

log = logging.getLogger(__name__)

_GEN_KEYS = ("do_sample", "temperature", "top_p", "top_k", "repetition_penalty")
_BATCH_KEYS = ("max_tokens", *_GEN_KEYS, "top_logprobs")  # requests that differ in these never share a batch


def plan_batches(requests: list[Request], lengths: list[int], size: int) -> list[list[Request]]:
    """Fixed batches over all of a stage's requests, whatever is already done.

    A reply depends on its batch-mates (left padding, batched kernels), so a rerun after a kill must
    form the same batches to give the dataset an uninterrupted run gives. Requests are grouped by
    generation settings, then sorted by prompt length (less padding) and id, then cut every `size`.
    """
    groups: dict[tuple, list[tuple[int, str, Request]]] = {}
    for r, n in zip(requests, lengths):
        key = tuple(repr(r.body.get(k)) for k in _BATCH_KEYS)
        groups.setdefault(key, []).append((n, r.id, r))
    batches = []
    for key in sorted(groups):
        group = [r for _, _, r in sorted(groups[key], key=lambda x: x[:2])]
        batches += [group[i : i + size] for i in range(0, len(group), size)]
    return batches


@dataclass(kw_only=True)
class HFLocalTeacher(Teacher):
    model_path: str | None  # a hub id or a folder; None: the smollm2 asset folder
    gguf_file: str | None  # a GGUF file inside model_path (transformers dequantizes it)
    batch_size: int  # requests per generate() call
    _lm: tuple | None = field(default=None, init=False, repr=False)  # (model, tokenizer) once loaded
    _bytes: list[bytes] | None = field(default=None, init=False, repr=False)  # each token id's bytes, once needed

    max_logprobs: ClassVar[int | None] = None  # any k: the whole distribution is at hand

    def __post_init__(self) -> None:
        super().__post_init__()
        require(is_whole(self.batch_size) and self.batch_size >= 1, "batch_size", self.batch_size,
                "must be a whole number of requests per generate() call, at least 1")

    def _path(self) -> str:
        if self.model_path:
            return str(self.model_path)
        return str(assets.path("smollm2"))

    def check(self) -> None:
        path = self._path()
        if self.model_path and not Path(path).exists():
            raise UserError(f"teacher.model_path={path} does not exist: give a model folder (or null for the "
                            "offline smollm2 asset)")
        if self.gguf_file and Path(path).is_dir() and not (Path(path) / self.gguf_file).exists():
            raise UserError(f"teacher.gguf_file {self.gguf_file} is not in {path}")

    def _load(self):
        if self._lm is None:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            kw = {"gguf_file": self.gguf_file} if self.gguf_file else {}
            path = self._path()
            log.info("loading %s from %s", self.model, path)
            tok = AutoTokenizer.from_pretrained(path, **kw)
            model = AutoModelForCausalLM.from_pretrained(path, **kw).eval()
            tok.padding_side = "left"  # generation continues from the right edge
            if tok.pad_token is None:
                tok.pad_token = tok.eos_token
            self._lm = model, tok
        return self._lm

    def run(self, requests: list[Request], store: RequestStore, desc: str) -> Stats:
        stats = Stats(self.model, self.prices)
        if not store.missing(requests):
            return stats
        import torch

        model, tok = self._load()
        unique = list({r.id: r for r in requests}.values())
        texts = [tok.apply_chat_template(r.body["messages"], tokenize=False, add_generation_prompt=True) for r in unique]
        lengths = [len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"]]
        text_of = {r.id: t for r, t in zip(unique, texts)}
        # a prompt that leaves no room for its max_tokens in the model's positions is refused, as an API
        # refuses it (HTTP 400, context length): the caller stores it as rejected (generate) or unrated (judge)
        context = getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", None)
        fits = []
        for r, n in zip(unique, lengths):
            if context and n + int(r.body["max_tokens"]) > context:
                if r.id not in store:
                    stats.rejected.append((r, f"prompt of {n} tokens + max_tokens {r.body['max_tokens']} exceeds "
                                              f"the model's context of {context} tokens"))
            else:
                fits.append((r, n))
        batches = [b for b in plan_batches([r for r, _ in fits], [n for _, n in fits], int(self.batch_size))
                   if any(r.id not in store for r in b)]
        bar = Progress(sum(r.id not in store for b in batches for r in b), desc, stats, self.progress)
        eos_cfg = model.generation_config.eos_token_id
        eos = set(eos_cfg if isinstance(eos_cfg, list) else [eos_cfg]) | {tok.eos_token_id}
        try:
            for batch in batches:
                body = batch[0].body
                enc = tok([text_of[r.id] for r in batch], return_tensors="pt", padding=True, add_special_tokens=False)
                gen = {k: body[k] for k in _GEN_KEYS if body.get(k) is not None}
                stats.sent += sum(r.id not in store for r in batch)
                # with do_sample the draw then depends only on the batch, so a rerun samples it alike
                torch.manual_seed(int(batch[0].id[:8], 16))
                with torch.no_grad(), _TopK(model, int(body.get("top_logprobs") or 0)) as top:
                    out = model.generate(**enc, max_new_tokens=int(body["max_tokens"]), pad_token_id=tok.pad_token_id,
                                         **gen)
                for j, r in enumerate(batch):
                    if r.id in store:  # stored before a kill; recomputed only to keep its batch-mates' padding
                        continue
                    store.append(r, self._reply(tok, eos, enc, out, j, top))
                    stats.done += 1
                    stats.add_usage(store.get(r.id).usage)
                    bar.update()
        finally:
            bar.close()
        return stats

    def _reply(self, tok, eos: set, enc, out, j: int, top: _TopK) -> Reply:
        new = out[j, enc["input_ids"].shape[1]:].tolist()
        ended = next((n for n, t in enumerate(new) if t in eos), None)
        tokens = new if ended is None else new[:ended]  # a stop token is not part of the response
        return Reply(
            content=tok.decode(tokens, skip_special_tokens=True).strip(),
            finish_reason="stop" if ended is not None else "length",
            usage={"prompt_tokens": int(enc["attention_mask"][j].sum()), "completion_tokens": len(tokens)},
            model=self.model,
            logprobs=self._logprobs(tok, tokens, top, j) if top.k and tokens else None,
        )

    def _logprobs(self, tok, tokens: list[int], top: _TopK, j: int) -> TokenLogprobs:
        """Sequence j's sampled tokens as the bytes they add to the reply (a special token, which decode skips,
        adds none) and its top-k alternatives, named by their bytes (a special token by its own text)."""
        values, ids = top.result()
        if len(values) < len(tokens):
            raise RuntimeError(f"generate ran {len(values)} forward passes for {len(tokens)} new tokens")
        if self._bytes is None:
            self._bytes = token_bytes(tok, top.width)
        # what decode(skip_special_tokens=True) skips: the named special tokens and every added token marked special
        special = set(tok.all_special_ids) | {i for i, t in tok.added_tokens_decoder.items() if t.special}
        table = self._bytes
        return TokenLogprobs([b"" if t in special else table[t] for t in tokens],
                             [[table[i] for i in row] for row in ids[: len(tokens), j].tolist()],
                             values[: len(tokens), j])


class _TopK:
    """While generate() runs: the top k of log_softmax(raw logits) at each forward pass's last position, per row of
    the batch (k = 0: nothing is hooked); kept on the model's device until result() (no sync per token)."""

    def __init__(self, model, k: int):
        self.model, self.k = model, k
        self.steps: list = []
        self.width = 0  # the output layer's rows (may exceed the tokenizer's length)
        self._handle = None
        self._result = None

    def __enter__(self) -> _TopK:
        if self.k:
            self._handle = self.model.register_forward_hook(self._hook)
        return self

    def __exit__(self, *exc) -> None:
        if self._handle is not None:
            self._handle.remove()

    def _hook(self, module, args, output) -> None:
        import torch

        logp = torch.log_softmax(output.logits[:, -1].float(), dim=-1)
        self.width = logp.shape[-1]
        self.steps.append(logp.topk(min(self.k, logp.shape[-1]), dim=-1))

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """values float32 [steps, batch, k] and token ids [steps, batch, k]: step t gives new token t."""
        if self._result is None:
            import torch

            self._result = (torch.stack([v for v, _ in self.steps]).cpu().numpy(),
                            torch.stack([i for _, i in self.steps]).cpu().numpy())
        return self._result
