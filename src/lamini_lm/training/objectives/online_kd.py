"""Online distillation from a teacher model run beside the student: the text's cross-entropy mixed with a divergence
to the teacher's next-token distribution, computed on the fly at every target token (no stored log-probs).

Per target token:  (1 - alpha) CE + alpha T^2 D(P_T || Q_T)  where the teacher's distribution meets the token,
                   CE alone where it does not;
summed over the micro-batch's target tokens and divided by the global batch's (models/tuner.py), as token_kd's
loss; D is divergence.py's. The teacher meets the student one of two ways, decided once the tokenizers are known
(``columns``, logged):

- its rows: the teacher's vocabulary is the student's (equal token maps, checked) and both models are of one family.
  The teacher runs on the student's own padded or packed rows (so in the student's prompt style), and the
  full-vocabulary divergence (divergence.full) is taken at every target token, the EOS included.
- its own text: otherwise (a GPT-2 BPE or T5 SentencePiece student of the SmolLM2 teacher). The teacher reads the
  same instruction and response in its own format (its model config's prompt_style through its family's encoding:
  SmolLM2's config says ``chat``, its own chat template), the response cut where the student's own tokens end. Its
  distribution at each of its response tokens meets the student's target token that starts at the same byte of the
  response, as token_kd meets a stored top-k (alignment.py: the teacher's tokens read as a stored record's), and its
  EOS position meets the student's EOS. The divergence: the full one where the vocabularies are equal, else ULD on
  the teacher's top_k (divergence.uld). train/kd_aligned logs the share of target tokens that met one.

On-policy (``lmbda``, GKD: Agarwal et al. 2024, arXiv:2306.13649, as TRL's GKDTrainer does it): in that share of
micro-batches (drawn from Python's random, which checkpoints restore) the student samples its own responses to the
batch's prompts, and both models score them: alpha T^2 D per sampled token, no cross-entropy (the text is the
student's own), scaled to the micro-batch's own target tokens so that it weighs in the global batch as they would.

The teacher is loaded at the first step, in eval mode without gradients, in the dtype the student computes in (the
autocast dtype under mixed precision, else the student's weights'); it lives on this object, outside the
LightningModule, so it is neither optimised, checkpointed nor exported, and a resume rebuilds it. A randomly
initialised teacher (model.init=random: tests) is drawn from TEACHER_SEED apart from the run's random streams.
"""

from __future__ import annotations

import logging
import random

import numpy as np

from lamini_lm.errors import UserError
from lamini_lm.training.objectives.base import Columns, Loss, Objective

log = logging.getLogger(__name__)

TEACHER_SEED = 0
# the teacher's prompt limit where its model has no absolute positions (T5); our choice
TEACHER_LENGTH = 2048
IGNORE_INDEX = -100  # models.families' (not imported: this module stays light until the data is read)


class OnlineKD(Objective):
    def __init__(self, teacher=None, alpha: float = 0.5, temperature: float = 1.0, divergence: str = "forward_kl",
                 beta: float = 0.5, top_k: int = 20, lmbda: float = 0.0, max_new_tokens: int = 128):
        from lamini_lm.config import typed
        from lamini_lm.models.spec import ModelSpec
        from lamini_lm.training.objectives.token_kd import TokenKD

        TokenKD(alpha=alpha, temperature=temperature, divergence=divergence, beta=beta)  # the same settings, checked
        if not isinstance(teacher, dict):
            raise UserError(f"objective.teacher={teacher}: choose the teacher's model config with "
                            "model@objective.teacher=<name> (conf/model/, e.g. smollm2_135m), or set its keys "
                            "(objective.teacher.hub_id=<hub id or folder>)")
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise UserError(f"objective.top_k={top_k}: give how many of the teacher's most likely tokens ULD compares "
                            "(a positive whole number)")
        if isinstance(lmbda, bool) or not isinstance(lmbda, (int, float)) or not 0 <= lmbda <= 1:
            raise UserError(f"objective.lmbda={lmbda}: give the on-policy share of micro-batches in [0, 1] (0: off)")
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
            raise UserError(f"objective.max_new_tokens={max_new_tokens}: give a positive whole number")
        self.spec = typed(teacher, ModelSpec, "objective.teacher")
        self.alpha, self.temperature, self.divergence, self.beta = float(alpha), float(temperature), divergence, beta
        self.top_k, self.lmbda, self.max_new_tokens = top_k, float(lmbda), max_new_tokens
        self.same_rows: bool | None = None  # decided with the tokenizers (columns)
        self.shared_vocab: bool | None = None
        self._family = self._model = self._placed = self._size = None
        self._pad = self._eos = self._teacher_pad = None

    @property
    def family(self):
        """The teacher's model family."""
        if self._family is None:
            from lamini_lm.models.backbone import build_family

            self._family = build_family(self.spec)
        return self._family

    def check(self, data_path):
        from lamini_lm.models.backbone import check_gguf

        check_gguf(self.spec)

    # -- the data ---------------------------------------------------------------------------------
    def columns(self, records, tokenizer, family, data_path):
        from lamini_lm.models.backbone import load_tokenizer

        if self.same_rows:  # decided already (the datamodule asks again when no columns came back)
            return None
        teacher_tok = load_tokenizer(self.spec)
        self._pad, self._eos = tokenizer.pad_token_id, tokenizer.eos_token_id
        self._teacher_pad = teacher_tok.pad_token_id
        self.shared_vocab = tokenizer.get_vocab() == teacher_tok.get_vocab()
        self.same_rows = self.shared_vocab and type(family) is type(self.family)
        if self.lmbda and not (self.same_rows and not family.separate_labels):
            raise UserError(f"objective.lmbda={self.lmbda}: on-policy batches need a decoder-only student of the "
                            f"teacher's own tokenizer ({self.spec.tokenizer}); set objective.lmbda=0")
        how = ("the teacher's vocabulary is the student's: it runs on the student's rows, full-vocabulary divergence"
               if self.same_rows else "the teacher reads the text in its own format and tokens, aligned by byte "
               "offsets: " + ("full-vocabulary divergence" if self.shared_vocab
                              else f"ULD on its top {self.top_k}"))
        log.info("objective=online_kd (teacher %s): %s", self.spec.name, how)
        if self.same_rows:
            return None
        for side, tok in (("model.tokenizer", tokenizer), ("objective.teacher.tokenizer", teacher_tok)):
            if not getattr(tok, "is_fast", False):
                raise UserError(f"objective=online_kd across tokenizers needs fast tokenizers (their character "
                                f"offsets align the tokens); {side} gives a {type(tok).__name__}: give a folder with "
                                "a tokenizer.json")
        return TeacherText(tokenizer, family, teacher_tok, self.family,
                           self.family.style(self.spec.prompt_style, teacher_tok), self._context())

    def _context(self) -> int | None:
        from transformers import AutoConfig

        s = self.spec
        config = AutoConfig.for_model(**s.architecture) if s.architecture else AutoConfig.from_pretrained(
            s.hub_id, revision=s.revision, **({"gguf_file": s.gguf_file} if s.gguf_file else {}))
        return self.family.context(config)

    # -- the teacher ------------------------------------------------------------------------------
    def teacher(self, student, device):
        """The teacher on ``device`` in the dtype ``student`` computes in, loaded at the first call."""
        import torch

        from lamini_lm.models.backbone import load_model

        dtype = torch.get_autocast_dtype(device.type) if torch.is_autocast_enabled(device.type) \
            else next(student.parameters()).dtype
        if self._model is None:
            with torch.random.fork_rng(devices=[]):  # a random teacher draws nothing from the run's stream
                torch.manual_seed(TEACHER_SEED)
                self._model = load_model(self.spec, self.family).eval().requires_grad_(False)
            log.info("objective=online_kd: teacher %s loaded (%.1fM parameters, eval mode, no gradients)",
                     self.spec.name, self._model.num_parameters() / 1e6)
        if self._placed != (device, dtype):
            self._model.to(device=device, dtype=dtype)
            self._placed = (device, dtype)
        return self._model

    # -- the loss ---------------------------------------------------------------------------------
    def loss(self, family, model, batch):
        import torch
        import torch.nn.functional as F

        from lamini_lm.training.objectives import divergence

        if self.same_rows is None:
            raise RuntimeError("OnlineKD.columns decides how the teacher meets the student: call it first")
        if self.lmbda and random.random() < self.lmbda:
            return self._on_policy(family, model, batch)
        logits, targets = family.target_logits(model, batch)
        logprobs = F.log_softmax(logits, -1)
        ce = -logprobs.gather(-1, targets[:, None]).squeeze(-1)
        teacher = self.teacher(model, logits.device)
        with torch.no_grad():
            if self.same_rows:
                _packed_rows_readable(teacher, batch, self.spec.name)
                t_logits = family.target_logits(teacher, batch)[0]
                index = torch.arange(len(targets), device=logits.device)
            else:
                t_logits, index = self._teacher_logits(teacher, batch, len(targets), logits.device)
        known = index >= 0
        t_logits, student = t_logits[index[known]], logits[known]
        if self.shared_vocab:
            v = min(t_logits.shape[-1], student.shape[-1])  # output rows past the tokenizer's (padding): left out
            d_known = divergence.full(t_logits[:, :v], student[:, :v], self.divergence, self.temperature, self.beta)
        else:
            k = min(self.top_k, t_logits.shape[-1], student.shape[-1])
            top = F.log_softmax(t_logits.to(logprobs.dtype), -1).topk(k, -1).values
            d_known = divergence.uld(logprobs[known], top, self.temperature)
        d = torch.zeros_like(ce).masked_scatter(known, d_known)
        mixed = (1 - self.alpha) * ce + self.alpha * self.temperature ** 2 * d
        total = torch.where(known, mixed, ce).sum()
        n, aligned = max(len(targets), 1), known.sum()
        return Loss(total, {"nll": ce.detach().sum() / n, "kd_loss": d.detach().sum() / aligned.clamp(min=1),
                            "kd_aligned": aligned / n, "on_policy": ce.new_zeros(())})

    def _teacher_logits(self, teacher, batch, n_targets: int, device):
        """The teacher's logits at its own target tokens ([M, V_t], its examples in the batch's order) and, per
        student target token, the row of the one it meets (-1: none)."""
        import torch

        from lamini_lm.data.collate import Collate

        from lamini_lm.models import attention

        ids, labels, rows = batch["okd_input_ids"], batch["okd_labels"], batch["okd_rows"]
        labels = [y.tolist() for y in labels]
        # one packed row where the teacher's attention keeps its examples apart (no padding to compute), else padded
        packed = self.family.can_pack and attention.packs(teacher)
        own = Collate(self._teacher_pad, self.family.separate_labels, packed=packed, pack_limit=self.family.pack_limit)(
            ({"input_ids": [x.tolist() for x in ids], "labels": labels}, None))
        own = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in own.items()}
        t_logits = self.family.target_logits(teacher, own)[0]
        offsets = np.cumsum([0] + [len(self.family.target_positions(y)) for y in labels])
        index = torch.cat([torch.where(r >= 0, r.long() + int(o), -1) for r, o in zip(rows, offsets)]).to(device)
        if len(index) != n_targets:
            raise RuntimeError(f"{len(index)} teacher rows for {n_targets} target tokens")
        return t_logits, index

    def _on_policy(self, family, model, batch):
        import torch

        from lamini_lm.data.collate import Collate
        from lamini_lm.training.objectives import divergence

        prompts = _prompts(batch)
        if min(map(len, prompts)) < 2:
            raise UserError("objective.lmbda>0 samples the student's answers to the prompts, which it finds as the "
                            "tokens masked from the loss: set data.mask_prompt=true")
        device = batch["input_ids"].device
        width = max(map(len, prompts))
        input_ids = torch.full((len(prompts), width), self._pad, dtype=torch.long, device=device)
        mask = torch.zeros_like(input_ids)
        for i, p in enumerate(prompts):  # left-padded: the samples continue from the right edge
            input_ids[i, width - len(p):], mask[i, width - len(p):] = p, 1
        training = model.training
        model.eval()
        try:
            with torch.no_grad():
                out = model.generate(input_ids=input_ids, attention_mask=mask, do_sample=True, top_k=0, top_p=1.0,
                                     temperature=1.0, max_new_tokens=self.max_new_tokens, pad_token_id=self._pad,
                                     eos_token_id=self._eos)
        finally:
            model.train(training)
        rows = {"input_ids": [], "labels": []}
        for p, sampled in zip(prompts, out[:, width:].tolist()):
            if self._eos in sampled:
                sampled = sampled[:sampled.index(self._eos) + 1]
            rows["input_ids"].append(p.tolist() + sampled)
            rows["labels"].append([IGNORE_INDEX] * len(p) + sampled)
        sampled = Collate(self._pad, False)((rows, None))
        sampled = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in sampled.items()}
        logits, _ = family.target_logits(model, sampled)
        teacher = self.teacher(model, device)
        with torch.no_grad():
            t_logits = family.target_logits(teacher, sampled)[0]
        d = divergence.full(t_logits, logits, self.divergence, self.temperature, self.beta)
        with torch.no_grad():  # the text's NLL, logged as every micro-batch logs it (one forward beside the sampling's)
            nll, own = family.token_nll(model, batch), (batch["labels"][:, 1:] != IGNORE_INDEX).sum()
        total = self.alpha * self.temperature ** 2 * d.sum() * own / max(len(d), 1)
        return Loss(total, {"nll": nll / own.clamp(min=1), "kd_loss": d.detach().mean() if len(d) else d.new_zeros(()),
                            "kd_aligned": d.new_ones(()), "on_policy": d.new_ones(())})

    # -- the planner ------------------------------------------------------------------------------
    def extra_memory(self, micro_batch, tokens, targets, compute):
        """The teacher's weights in the compute dtype; its forward without gradients, of which one layer's tensors
        are alive at a time (the residual stream in and out, q, k, v and the attention's output, the feed-forward's
        widest intermediates; a fused attention kernel assumed: no tokens^2 tensor); its logits at the target
        tokens (the output layer's rows, raised to fp32, their log-softmax); and the divergence's tensors kept
        for the backward (the student's tempered log-probabilities, the teacher's probabilities, their
        difference: 3 x fp32 per vocabulary entry and target token, the teacher's vocabulary standing for both)."""
        import torch

        from lamini_lm.models.backbone import build_random
        from lamini_lm.training import activations

        if self._size is None:
            if not self.spec.architecture:
                raise UserError(f"objective.teacher.architecture: teacher '{self.spec.name}' carries none, so it "
                                "cannot be sized offline (give its config.json's essential values)")
            with torch.device("meta"):
                params = build_random(self.family.auto(), self.spec.architecture).num_parameters()
            self._size = params, activations.dims(self.spec.planner, self.spec.architecture)
        params, d = self._size
        ffn = (3 if d["gated"] else 2) * d["f"]
        layer = micro_batch * tokens * compute * (2 * d["h"] + 2 * d["i"] + 2 * d["kv"] + ffn)
        logits = micro_batch * targets * d["vocab"] * (compute + 4 + 4)
        kept = micro_batch * targets * d["vocab"] * 3 * 4
        return params * compute + layer + logits + kept


def _packed_rows_readable(teacher, batch, name: str) -> None:
    from lamini_lm.models import attention

    if "cu_seq_lens_q" in batch and not attention.packs(teacher):
        raise UserError(f"objective.teacher ({name}): its attention "
                        f"({getattr(teacher.config, '_attn_implementation', None)}) would mix the examples of the "
                        "student's packed rows: set objective.teacher.attn_implementation=sdpa_varlen, or "
                        "data.packing=padded")


def _prompts(batch) -> list:
    """Each example's prompt in a decoder-only micro-batch: its tokens before its first target, padded rows or a
    packed row alike."""
    ids, labels = batch["input_ids"], batch["labels"]
    if "cu_seq_lens_q" in batch:
        bounds = batch["cu_seq_lens_q"].tolist()
        pieces = [(ids[0, a:b], labels[0, a:b]) for a, b in zip(bounds, bounds[1:])]
        first = [1 + int((y[1:] != IGNORE_INDEX).nonzero()[0, 0]) if (y[1:] != IGNORE_INDEX).any() else len(y)
                 for _, y in pieces]
    else:
        pieces = list(zip(ids, labels))
        first = [int((y != IGNORE_INDEX).nonzero()[0, 0]) if (y != IGNORE_INDEX).any() else len(y) for _, y in pieces]
    return [x[:f] for (x, _), f in zip(pieces, first)]


class TeacherText(Columns):
    """The teacher's own encoding of each example (its prompt style and tokens, the response cut where the student's
    tokens end) and, per student target token, the teacher target it meets (see the module): ``okd_input_ids`` and
    ``okd_labels``, the teacher's sequences, and ``okd_rows``, per student target token the index among the
    teacher's target tokens of that example (-1: none), all of width 0 (one sequence per example)."""

    widths = {"okd_input_ids": 0, "okd_labels": 0, "okd_rows": 0}

    def __init__(self, tokenizer, family, teacher_tokenizer, teacher_family, style, context: int | None):
        self.tokenizer, self.family = tokenizer, family
        self.teacher_tokenizer, self.teacher_family, self.style, self.context = (teacher_tokenizer, teacher_family,
                                                                                 style, context)
        self._tables = None  # both tokenizers' token bytes, read when first called

    def __getstate__(self) -> dict:
        return {**vars(self), "_tables": None}

    def __call__(self, records: dict, encoded: dict) -> dict:
        from lamini_lm.token_bytes import token_bytes
        from lamini_lm.training.objectives.alignment import response_at, student_starts

        if self._tables is None:
            self._tables = token_bytes(self.tokenizer), token_bytes(self.teacher_tokenizer)
        table, teacher_table = self._tables
        tok, ttok = self.tokenizer, self.teacher_tokenizer
        enc = tok(records["response"], add_special_tokens=False, return_offsets_mapping=True)
        students, cuts = [], []
        for response, labels, ids, offsets in zip(records["response"], encoded["labels"], enc["input_ids"],
                                                  enc["offset_mapping"]):
            at, m = response_at(labels, ids, tok.eos_token_id)
            starts = student_starts([table[i] for i in ids], offsets, response)
            text = response.encode("utf-8")
            end = next((s for s in starts[m:] if s is not None), len(text))  # where the kept tokens end
            students.append((labels, at, m, starts[:m], end))
            cuts.append(text[:end].decode("utf-8", "ignore"))
        limit = self.context or TEACHER_LENGTH
        teacher = self.teacher_family.encode(ttok, [self.style.apply(x) for x in records["instruction"]], cuts,
                                             limit, limit, True, context=self.context)
        responses = ttok(cuts, add_special_tokens=False)["input_ids"]
        out: dict[str, list] = {name: [] for name in self.widths}
        unspelled = 0
        for (labels, at, m, starts, end), cut, t_ids, t_labels, t_response in zip(
                students, cuts, teacher["input_ids"], teacher["labels"], responses):
            t_at, t_m = response_at(t_labels, t_response, ttok.eos_token_id)
            found = _teacher_starts(teacher_table, t_response, cut) if t_m == len(t_response) else None
            unspelled += found is None
            if found is not None and t_at + t_m < len(t_labels) and t_labels[t_at + t_m] == ttok.eos_token_id:
                found.setdefault(len(cut.encode("utf-8")), t_m)  # its EOS position: after the whole (cut) text
            t_rows = {p: r for r, p in enumerate(self.teacher_family.target_positions(t_labels))}
            rows = []
            for p in self.family.target_positions(labels):
                q = p - at
                s = starts[q] if 0 <= q < m else end if q == m and labels[p] == tok.eos_token_id else None
                j = found.get(s) if found is not None and s is not None else None
                rows.append(-1 if j is None else t_rows.get(t_at + j, -1))
            out["okd_input_ids"].append(np.asarray(t_ids, np.int32))
            out["okd_labels"].append(np.asarray(t_labels, np.int32))
            out["okd_rows"].append(np.asarray(rows, np.int32))
        if unspelled:
            log.warning("objective=online_kd: the teacher's tokens do not spell the response of %d records (its "
                        "tokenizer normalises the text): they train on the NLL alone", unspelled)
        return out


def _teacher_starts(table: list[bytes], ids: list[int], response: str) -> dict[int, int] | None:
    """The teacher's response token index by its first byte in ``response`` (alignment.teacher_starts, its tokens
    read as a stored record's), or None when they do not spell it."""
    from lamini_lm.training.objectives.alignment import teacher_starts

    if not ids:
        return {}
    joined = b"".join(table[i] for i in ids)
    # a SentencePiece teacher's first piece carries a space the response does not have
    start = len(joined) - len(joined.lstrip())
    return teacher_starts(table, np.asarray(ids), start, response)
