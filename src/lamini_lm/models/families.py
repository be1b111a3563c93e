"""Model families: the one place that knows how a kind of architecture is loaded, fed, trained,
prompted, exported and evaluated.

Data, training, inference, export and evaluation ask the model's family; none of them branches on
the architecture. A model config selects its family with ``family: {_target_: <class>}`` (see
conf/model/base/), so a new family is one subclass here (or in your own package) and one config.

    DecoderOnly     GPT-2, GPT-Neo, Cerebras-GPT: Alpaca-wrapped prompt + response + EOS in one
                    sequence, the prompt masked from the loss, generation continues the prompt
    EncoderDecoder  T5, Flan-T5: the raw instruction into the encoder, the response as labels
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F
import yaml
from hydra.utils import get_class

from lamini_lm import prompts
from lamini_lm.errors import UserError
from lamini_lm.prompts import PromptStyle

# transformers (Auto classes) and Lightning (the LightningModule) are imported where used: evaluation and
# data code ask a family questions without paying for them

log = logging.getLogger(__name__)

IGNORE_INDEX = -100  # label of a token that is not a target (transformers' and torch's convention)
# what a packed row hands the model besides its ids: transformers' names (FlashAttentionKwargs)
PACKED_INPUTS = ("position_ids", "cu_seq_lens_q", "cu_seq_lens_k", "max_length_q", "max_length_k")


def _row_inputs(batch: dict) -> dict:
    """What a batch hands the model besides its ids: a padded batch's attention mask, or a packed row's position
    ids and varlen boundaries (Collate packed=True)."""
    return {k: batch[k] for k in PACKED_INPUTS + ("attention_mask",) if k in batch}


class Family:
    """What differs between architectures; subclasses fill in the class attributes and methods."""

    architecture: ClassVar[str]  # what results and figures call it: decoder-only, encoder-decoder
    auto_class: ClassVar[str]  # the transformers Auto class that loads it
    default_prompt_style: ClassVar[str]  # lamini_lm.prompts name, when the model config names none
    pipeline_tag: ClassVar[str]  # the export's model card (what the Hub shows)
    lm_eval_backend: ClassVar[str]  # lm-eval HFLM backend
    padding_side: ClassVar[str]  # for batched generation
    # the labels are a sequence of their own (a decoder's), not positions of the input: they count
    # towards the tokens computed, and length grouping has two widths to keep tight
    separate_labels: ClassVar[bool]
    # a micro-batch can be one row of concatenated examples (data.packing=padding_free): under a varlen attention
    # (models/attention.py) each example attends within itself
    can_pack: ClassVar[bool] = False
    # the longest packed row in tokens (a longer micro-batch is padded), for a family whose packed row costs memory
    # with its square; None: no limit
    pack_limit: ClassVar[int | None] = None
    usage: ClassVar[str]  # the model card's code snippet; {path}, {instruction}, {prompt}

    @property
    def name(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:  # stable across processes: part of the datasets cache fingerprint
        return f"{type(self).__module__}.{type(self).__qualname__}()"

    def auto(self):
        import transformers

        return getattr(transformers, self.auto_class)

    def style(self, name: str | None = None, tokenizer=None) -> PromptStyle:
        """The prompt style ``name`` (a model config's prompt_style), or this family's default; ``chat`` renders
        the tokenizer's chat template."""
        return prompts.get(name or self.default_prompt_style, tokenizer)

    @staticmethod
    def context(model_config) -> int | None:
        """The positions the model has (n_positions / max_position_embeddings); None when it has no absolute
        limit (T5's relative positions)."""
        return getattr(model_config, "n_positions", None) or getattr(model_config, "max_position_embeddings", None)

    # -- data -------------------------------------------------------------------------------------
    def encode(self, tokenizer, prompts: list[str], responses: list[str], max_source_length: int,
               max_target_length: int, mask_prompt: bool, context: int | None = None) -> dict:
        """Wrapped prompts and responses -> input_ids, labels (IGNORE_INDEX = no target),
        source_length (tokens the input takes) and target_length (target tokens); no sequence longer than
        the model's ``context``."""
        raise NotImplementedError

    def order(self, batch: list[int], source_lengths, target_lengths, micro_batch_size: int) -> list[int]:
        """A global batch sorted so that cutting it into micro-batches wastes little padding."""
        return sorted(batch, key=source_lengths.__getitem__)

    def row_tokens(self, source_length: int, target_length: int) -> int:
        """The tokens one example adds to a packed micro-batch: its sequence, and its labels when they are a
        sequence of their own."""
        return source_length + (target_length if self.separate_labels else 0)

    # -- training ---------------------------------------------------------------------------------
    def target_logits(self, model, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """The student's logits at the micro-batch's target tokens, [N, V] in float32 or wider, and those tokens,
        [N]: what every training objective starts from. One order, the batch's target order: row by row, left to
        right (a packed row holds its examples in order), so each example's targets come as ``target_positions``
        lists them, examples in the batch's order, padded or packed alike. Only these N hidden states are
        projected onto the vocabulary."""
        raise NotImplementedError

    def target_positions(self, labels: list[int]) -> list[int]:
        """The positions of one example's labels that ``target_logits`` predicts, in its order."""
        raise NotImplementedError

    def token_nll(self, model, batch: dict) -> torch.Tensor:
        """Summed NLL over the micro-batch's target tokens (labels == IGNORE_INDEX are ignored)."""
        logits, targets = self.target_logits(model, batch)
        return F.cross_entropy(logits, targets, reduction="sum")

    def module(self, backbone, model, optim, tokenizer=None, objective=None):
        """The LightningModule that trains this family (the shared one, whose loss the ``objective`` computes,
        by default the sequence NLL), from the backbone and the typed model and optimizer configs (ModelSpec,
        OptimSpec); the tokenizer renders a ``chat`` prompt style."""
        from lamini_lm.models.tuner import InstructionTuner

        return InstructionTuner(backbone, self, model, optim, tokenizer, objective)

    # -- inference --------------------------------------------------------------------------------
    def generate(self, model, tokenizer, prompts: list[str], max_new_tokens: int = 128, **generate_kwargs) -> list[str]:
        """Completions of one batch of already-wrapped prompts; a prompt too long for the model is cut (see
        ``prompt_limit``), and max_new_tokens capped to the model's positions (``new_tokens``)."""
        tokenizer.padding_side = tokenizer.truncation_side = self.padding_side
        max_new_tokens = self.new_tokens(model, max_new_tokens)
        limit = self.prompt_limit(self.context(model.config) or _tokenizer_limit(tokenizer), max_new_tokens)
        enc = tokenizer(prompts, return_tensors="pt", padding=True, truncation=limit is not None,
                        max_length=limit).to(model.device)
        with torch.no_grad():
            ids = model.generate(**enc, pad_token_id=tokenizer.pad_token_id, max_new_tokens=max_new_tokens,
                                 **generate_kwargs)
        return [t.strip() for t in tokenizer.batch_decode(self._completion(ids, enc["input_ids"].shape[1]),
                                                          skip_special_tokens=True)]

    def new_tokens(self, model, max_new_tokens: int) -> int:
        """``max_new_tokens`` within the model's positions, with a warning when capped: a generation past them
        indexes positions the model does not have (IndexError). One position is left for the prompt (decoder-only)
        or the decoder's start token (encoder-decoder); a model without an absolute limit (T5) is not capped."""
        context = self.context(model.config)
        if context is None or max_new_tokens < context:
            return max_new_tokens
        log.warning("max_new_tokens=%d does not fit the model's %d positions: generating at most %d new tokens",
                    max_new_tokens, context, context - 1)
        return context - 1

    def prompt_limit(self, context: int | None, max_new_tokens: int) -> int | None:
        """Prompt tokens a generation may take: the whole context for a separate encoder."""
        return context

    def _completion(self, ids: torch.Tensor, prompt_width: int) -> torch.Tensor:
        return ids


def _tokenizer_limit(tokenizer) -> int | None:
    # transformers sets model_max_length to ~1e30 when a tokenizer declares none
    n = getattr(tokenizer, "model_max_length", None)
    return n if n and n < 1_000_000 else None


def _logits_at(model, keep: torch.Tensor, **inputs) -> torch.Tensor:
    """The logits of the hidden states where ``keep`` (row-major), projecting onto the vocabulary only those:
    not the masked prompt tokens and padding (the output layer is ~30% of GPT-2's FLOPs, a large share
    of T5's). A pre-hook hands the model's own output layer just those rows, so any scaling the model
    applies before it (T5 with tied embeddings) is kept."""
    head = model.get_output_embeddings()
    handle = head.register_forward_pre_hook(lambda module, args: (args[0][keep],))
    try:
        # no key/value cache: training never reads it, and T5 filling one makes a checkpointed block save other
        # tensors when it is recomputed (torch's CheckpointError under trainer=fsdp's activation checkpointing)
        logits = model(**inputs, use_cache=False).logits
    finally:
        handle.remove()
    # half/bf16 logits are raised to float32 for the softmax; float64 stays float64 (the exactness tests)
    return logits.to(torch.promote_types(logits.dtype, torch.float32))


class DecoderOnly(Family):
    architecture = "decoder-only"
    auto_class = "AutoModelForCausalLM"
    default_prompt_style = "alpaca"
    pipeline_tag = "text-generation"
    lm_eval_backend = "causal"
    padding_side = "left"  # generation continues from the right edge
    separate_labels = False
    can_pack = True
    usage = """from transformers import pipeline

generator = pipeline("text-generation", model="{path}")
{instruction}
prompt = {prompt}
print(generator(prompt, max_new_tokens=256, do_sample=False)[0]["generated_text"][len(prompt):])"""

    def encode(self, tokenizer, prompts, responses, max_source_length, max_target_length, mask_prompt,
               context=None):
        # prompt and response tokenised apart, so the mask boundary is exact
        src = tokenizer(prompts, add_special_tokens=False, truncation=True, max_length=max_source_length)["input_ids"]
        tgt = tokenizer(responses, add_special_tokens=False, truncation=True,
                        max_length=max_target_length - 1)["input_ids"]
        input_ids, labels = [], []
        for s, t in zip(src, tgt):
            t = t + [tokenizer.eos_token_id]
            if context is not None and len(s) + len(t) > context:
                # one sequence of at most `context` positions: the response keeps at least half of them, the
                # prompt the rest, cut from its start so that its end ("### Response:") stays next to the
                # response. A cut response loses its EOS: the model is not taught to stop there.
                t = t[:max(context // 2, context - len(s))]
                s = s[len(s) - (context - len(t)):]
            input_ids.append(s + t)
            labels.append(([IGNORE_INDEX] * len(s) if mask_prompt else s) + t)
        return {"input_ids": input_ids, "labels": labels, "source_length": [len(x) for x in input_ids],
                "target_length": [sum(1 for v in lab if v != IGNORE_INDEX) for lab in labels]}

    def target_logits(self, model, batch):
        # hidden state t predicts token t+1
        targets = batch["labels"][:, 1:]
        keep = F.pad(targets != IGNORE_INDEX, (0, 1), value=False)
        return _logits_at(model, keep, input_ids=batch["input_ids"], **_row_inputs(batch)), \
            targets[targets != IGNORE_INDEX]

    def target_positions(self, labels):
        # the first token is predicted by nothing (alone), or by the previous example (packed): never a target
        return [i for i in range(1, len(labels)) if labels[i] != IGNORE_INDEX]

    def prompt_limit(self, context, max_new_tokens):
        # prompt and completion share the positions: a prompt longer than this loses its start
        return None if context is None else max(1, context - max_new_tokens)

    def _completion(self, ids, prompt_width):
        return ids[:, prompt_width:]


class EncoderDecoder(Family):
    architecture = "encoder-decoder"
    auto_class = "AutoModelForSeq2SeqLM"
    default_prompt_style = "raw"  # the LaMini-T5 cards give the bare instruction
    pipeline_tag = "text2text-generation"
    lm_eval_backend = "seq2seq"
    padding_side = "right"
    separate_labels = True
    can_pack = True  # inputs in one row, labels in another: encoder, decoder and cross-attention each per example
    # transformers' T5 builds its position biases (and their gradients) and the cross-attention's zero bias over
    # the whole row, heads x row^2 floats each: 134 MB for t5-small at 2,048 tokens, 34 GB at 64 x 512. A LaMini
    # micro-batch of 8 packs (~420 input tokens); the herd's GPU micro-batches of 32-64 mostly train padded.
    # reconstruction: our choice, keeping those five tensors within a few % of a 40 GB device
    pack_limit = 2048
    # transformers 5 removed the text2text-generation pipeline that the LaMini-T5 cards use
    usage = """from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

tokenizer = AutoTokenizer.from_pretrained("{path}")
model = AutoModelForSeq2SeqLM.from_pretrained("{path}")
{instruction}
ids = model.generate(**tokenizer(instruction, return_tensors="pt"), max_new_tokens=256)
print(tokenizer.decode(ids[0], skip_special_tokens=True))"""

    def encode(self, tokenizer, prompts, responses, max_source_length, max_target_length, mask_prompt,
               context=None):
        # the model never predicts its input, so mask_prompt has nothing to mask; input and labels are two
        # sequences, each within the model's positions when it has a limit (T5 has none)
        src = tokenizer(prompts, truncation=True, max_length=min(max_source_length, context or max_source_length))
        tgt = tokenizer(responses, truncation=True, max_length=min(max_target_length, context or max_target_length))
        src, tgt = src["input_ids"], tgt["input_ids"]
        return {"input_ids": src, "labels": tgt, "source_length": [len(s) for s in src],
                "target_length": [len(t) for t in tgt]}

    def order(self, batch, source_lengths, target_lengths, micro_batch_size):
        # two widths to keep tight: sort by total length, then by input length within groups of a few
        # micro-batches (simulated on LaMini-like lengths: less padding than input-then-label order)
        src, tgt = source_lengths, target_lengths
        batch = sorted(batch, key=lambda i: src[i] + tgt[i])
        group = 4 * micro_batch_size
        return [i for g in range(0, len(batch), group) for i in sorted(batch[g:g + group], key=src.__getitem__)]

    def target_positions(self, labels):
        return [i for i, v in enumerate(labels) if v != IGNORE_INDEX]

    def target_logits(self, model, batch):
        labels = batch["labels"]
        # decoder input = labels shifted right (T5's own rule); passing labels instead would also make the
        # model compute a mean loss we do not use
        decoder_input_ids = model.prepare_decoder_input_ids_from_labels(labels=labels)
        if "cu_seq_lens_q" in batch:  # a packed row: every example's decoder input starts from the start token,
            # not from the previous example's last label
            decoder_input_ids[:, batch["cu_seq_lens_q"][:-1].long()] = model.config.decoder_start_token_id
        keep = labels != IGNORE_INDEX
        return _logits_at(model, keep, input_ids=batch["input_ids"], decoder_input_ids=decoder_input_ids,
                          **_row_inputs(batch)), labels[keep]


def from_hf_config(config) -> Family:
    """The family of a transformers model config (hub ids and foreign folders carry no family of ours)."""
    return EncoderDecoder() if getattr(config, "is_encoder_decoder", False) else DecoderOnly()


def of_export(folder: str | Path) -> Family:
    """The family an export was trained as (its training_config.yaml), else the one its config.json implies."""
    from transformers import AutoConfig

    f = Path(folder) / "training_config.yaml"
    node = ((yaml.safe_load(f.read_text()) or {}).get("model") or {}).get("family") if f.exists() else None
    if isinstance(node, dict) and "_target_" in node:
        # only a Family class is taken from a file that may come from elsewhere, never any callable
        try:
            cls = get_class(node["_target_"])
        except Exception:
            cls = None
        if not (isinstance(cls, type) and issubclass(cls, Family)):
            raise UserError(f"{f}: model.family._target_={node['_target_']} is not an importable Family class "
                            "(lamini_lm.models.families)")
        return cls()
    return from_hf_config(AutoConfig.from_pretrained(folder))
