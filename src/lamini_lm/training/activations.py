"""Activation memory of one training micro-batch per device: what the modules save for backward, plus the
transient peak of the loss at the start of backward, with and without activation checkpointing.

Derived tensor by tensor from what autograd keeps in the transformers modules we train (GPT2Block,
GPTNeoBlock, LlamaDecoderLayer, T5Block, transformers 5.x), in the spirit of Korthikanti et al. (2022,
Section 4.1) but not their numbers: their GPT layer keeps 34sbh + 5as^2b bytes in 16 bits; ours differ where
the modules differ (GPT-2's gelu_new is Python and keeps four ffn-sized tensors, not one; the fused SDPA
kernels keep no s^2 tensor; CPU dropout keeps a float mask, CUDA a bool one). Checked against the bytes
autograd saves (bench/memory_planner.py --saved) and against measured peak memory (bench/memory_planner.py).

No architecture is named in the code: what differs between them (which config fields give the sizes, the norm, a
fused q/k/v projection, a gated feed-forward, ...) is declared with each architecture, in the ``planner`` node of its
base config (conf/model/base/<model_type>.yaml; models/size.py PlannerSpec). The names below say where each term
was measured.

Per layer and token, in bytes (h hidden, f feed-forward width, i = heads x head width, kv the key/value width;
r the residual stream's dtype (fp32 unless bf16-true), c the compute dtype, m a dropout mask: c bytes on CPU,
1 on CUDA, 0 without dropout):

- LayerNorm (norm: layer; GPT-2, GPT-Neo) keeps its input (r); RMSNorm (norm: rms; Llama, T5) is Python and keeps the fp32 input, the
  normalised tensor (r) and the scaled output the next projection keeps (c): 4 + r + c.
- A projection keeps its input (c: under autocast its own bf16 copy).
- Attention, by kernel (``attention``):
  fused   SDPA flash / memory-efficient (CUDA; CPU flash when there is no dropout): q, k, v and the output
          (which is the output projection's input); no s^2 tensor. On CPU the split of a fused q/k/v projection
          (fused_qkv: GPT-2's c_attn) keeps the whole 3h projection plus two contiguous copies (measured).
  math    the s^2 tensors are kept: eager attention (GPT-Neo; any model on attn_implementation=eager) keeps
          the softmax (fp32 under upcast_attention: GPT-Neo) and, with dropout, its mask and output; SDPA's math fallback (CPU
          with dropout: GPT-2, T5) keeps softmax, a float mask and the dropped copy (3c), plus scaled copies
          of q and k.
- MLP: gelu_new (Python tanh form) keeps its input and three intermediates (4c f) and its output is kept by
  the down projection (c f); gelu (native, and gelu_new under train.yaml's fast_gelu) 2c f; relu c f (its
  output, shared with the next projection); a dropout before the output projection (ffn_dropout: T5) adds its
  mask (and for relu its output); gated (gated_ffn: T5 v1.1 gelu_new, Llama silu): both branches, the product and
  the activation's intermediates.
- The loss (models/families.py projects only the target positions onto the vocabulary): log_softmax keeps
  fp32 logits (4V per target token); at the start of backward nll_loss's and log_softmax's gradients join them,
  3 x 4V per target token, while every layer's activations are still alive; then the output layer's weight
  gradient (V h, new beside the accumulated one) joins the logits' gradient, which matters for few targets.
  That is the peak we plan.

Activation checkpointing (checkpoint_wrapper on every block, as conf/trainer/fsdp.yaml's
activation_checkpointing_policy does): each block keeps only its input (r h per token); in backward one block
at a time is recomputed, so the peak is the inputs of all blocks + one block's activations + the loss.
"""

from __future__ import annotations

from dataclasses import dataclass

from lamini_lm.errors import UserError
from lamini_lm.models.size import evaluate, planner_spec

# transformers (for the configs' defaults) is imported in dims: the planner checks its config first

ATTENTION = ("auto", "fused", "math")
FUSED_GELU = "gelu_pytorch_tanh"  # transformers' name for the activation fuse_gelu swaps gelu_new for
# the keys the formulas use: the planner description's fields (models/size.py PlannerFields) they are read from
READS = {"h": "hidden", "f": "ffn", "heads": "heads", "i": "attention_width", "kv": "kv_width", "layers": "layers",
         "decoder_layers": "decoder_layers", "vocab": "vocab", "act": "activation", "gated": "gated_ffn",
         "dropout": "dropout", "attn_dropout": "attention_dropout"}


@dataclass(frozen=True)
class Dtypes:
    residual: int  # bytes of the residual stream (the weights' dtype: fp32 unless bf16-true)
    compute: int  # bytes of what projections keep (bf16 under autocast)
    mask: int  # bytes of a dropout mask element (0: no dropout)

    @property
    def cast(self) -> int:  # an extra copy autocast makes where a tensor leaves fp32 for a projection
        return self.compute if self.compute != self.residual else 0


@dataclass(frozen=True)
class Activations:
    """Bytes per device at the peak of one micro-batch (start of backward)."""

    layers: float  # what the blocks keep (checkpointed: their inputs + one block recomputed)
    other: float  # embeddings, final norm, masks and biases shared by the blocks
    loss: float  # the logits' peak at the start of backward

    @property
    def total(self) -> float:
        return self.layers + self.other + self.loss


def dims(planner, architecture: dict, fast_gelu: bool = False) -> dict:
    """The sizes the model keeps activations by, read from its config as its architecture's ``planner`` description
    says (a model config's, typed or not; None: its base config's, models/size.py planner_spec); transformers'
    defaults fill the rest. With ``fast_gelu`` (train.yaml) gelu_new runs as the one-kernel tanh GELU
    (models/backbone.py fuse_gelu)."""
    from transformers import AutoConfig

    kind = architecture["model_type"]
    planner = planner_spec(planner, kind)
    if planner is None:
        raise UserError(f"model.planner: the planner has no description of the {kind} architecture: declare one in "
                        f"conf/model/base/{kind}.yaml (as base/llama.yaml does) or in the model config")
    cfg = AutoConfig.for_model(**architecture)
    f = planner.fields
    read = {key: evaluate(getattr(f, name), cfg, f"model.planner.fields.{name}") for key, name in READS.items()}
    d = dict(read, norm=planner.norm, fused_qkv=planner.fused_qkv, ffn_dropout=planner.ffn_dropout,
             upcast_attention=planner.upcast_attention, position_bias=planner.position_bias,
             encoder_decoder=bool(cfg.is_encoder_decoder))
    if d["encoder_decoder"] and d["decoder_layers"] is None:
        raise UserError(f"model.planner.fields.decoder_layers: the {cfg.model_type} config is an encoder-decoder: "
                        "give its decoder's blocks (T5: num_decoder_layers)")
    if fast_gelu:
        d["act"] = d["act"].replace("gelu_new", FUSED_GELU)
    return d


def kernel(d: dict, attention: str, device: str, attn_implementation: str) -> str:
    """fused or math: what the model's attention keeps, for ``attention=auto`` from its implementation, the
    device and its attention dropout (CPU's fused SDPA kernel takes no dropout; T5's position bias is a float
    mask, which the CUDA memory-efficient kernel takes)."""
    if attention not in ATTENTION:
        raise UserError(f"plan.attention={attention}: one of {', '.join(ATTENTION)}")
    if attention != "auto":
        return attention
    if attn_implementation != "sdpa":
        return "math"
    return "math" if device == "cpu" and d["attn_dropout"] > 0 else "fused"


def _mlp(d: dict, t: Dtypes) -> float:
    """Bytes per token the feed-forward keeps after its input projection's input."""
    f, c, act = d["f"], t.compute, d["act"]
    drop = t.mask * f if d["ffn_dropout"] else 0  # a dropout before the output projection keeps its mask
    if d["gated"]:  # the activation (gelu_new: its input and three intermediates; another: its input) and its output,
        # the other branch's output (both kept by the product), the output projection's input (Llama's SwiGLU: 4c f)
        own = 4 if act == "gelu_new" else 1
        return (own + 1 + 1 + 1) * c * f + drop
    if act == "relu":  # relu's output is the output projection's input, unless a dropout comes in between
        return c * f + ((t.mask + c) * f if d["ffn_dropout"] and t.mask else 0)
    if act == "gelu_new":  # Python tanh form: input, x^3 chain, tanh, 0.5x, 1+tanh; output kept by the projection
        return 5 * c * f + drop
    return 2 * c * f + drop  # a native activation: its input, and its output kept by the next projection


def _attention(d: dict, t: Dtypes, kern: str, device: str) -> tuple[float, float, float]:
    """Bytes one attention keeps (its output projection's input included): per query token, per key token, and
    per query x key pair."""
    c, heads, i, kv = t.compute, d["heads"], d["i"], d["kv"]
    if kern == "fused":
        extra = 2 * c * i if device == "cpu" and d["fused_qkv"] else 0  # CPU: contiguous copies of q and v
        return c * 2 * i + extra + 4 * heads, c * 2 * kv, 0.0  # q and output (+ logsumexp); k and v
    if d["upcast_attention"]:  # eager in fp32: fp32 q and k, softmax in fp32 (+ its cast), v, merged heads
        pair = 4 + t.cast + ((t.mask + c) if d["attn_dropout"] > 0 else 0)
        return 4 * i + c * i, 4 * i + c * i, heads * pair
    # SDPA's math fallback (or eager): scaled copies of q and k, v, the output projection's input
    drop = d["attn_dropout"] > 0
    pair = c + ((2 * c if device == "cpu" else 1 + c) if drop else 0)
    return 2 * c * i, 2 * c * i, heads * pair


def _norm(d: dict, t: Dtypes, readers: int = 1) -> float:
    """A norm and the input its ``readers`` projections keep (autocast casts it once per projection), per
    token and hidden unit; readers=0: a norm alone."""
    own = 4 + t.residual if d["norm"] == "rms" else t.residual
    return own + (t.compute * readers if t.cast else t.compute if readers else 0)


def _layers(d: dict, t: Dtypes, kern: str, device: str, b: int, s: int, s_src: int) -> list[tuple[int, float, float]]:
    """[(how many such layers, bytes one keeps, bytes of its input)] for b sequences of s tokens (an encoder-decoder:
    encoder layers over s_src, decoder layers over s with cross-attention over s_src)."""
    h, m = d["h"], t.mask
    q, k, pair = _attention(d, t, kern, device)
    ffn_readers = 2 if d["gated"] else 1
    qkv_readers = 1 if d["fused_qkv"] else 3
    self_attn = (_norm(d, t, qkv_readers) * h + q + k + 2 * m * h) * s + pair * s * s  # + dropout after it
    mlp = (_norm(d, t, ffn_readers) * h + _mlp(d, t)) * s
    if not d["encoder_decoder"]:
        return [(d["layers"], b * (self_attn + mlp), b * s * t.residual * h)]
    enc = (_norm(d, t, qkv_readers) * h + q + k + m * h) * s_src + pair * s_src * s_src \
        + (_norm(d, t, ffn_readers) * h + _mlp(d, t) + m * h) * s_src
    # cross-attention: queries from the decoder, keys and values from the encoder output (which the k and v
    # projections each cast apart under autocast)
    cross = (_norm(d, t, 1) * h + q + m * h) * s + (k + 2 * t.cast * h) * s_src + pair * s * s_src
    dec = self_attn + cross + mlp  # three dropouts: after self-attention and the MLP (in self_attn), cross
    return [(d["layers"], b * enc, b * s_src * t.residual * h), (d["decoder_layers"], b * dec, b * s * t.residual * h)]


def estimate(d: dict, t: Dtypes, kern: str, device: str, micro_batch: int, length: int, target_length: int,
             checkpointing: bool) -> Activations:
    """The peak for ``micro_batch`` sequences of ``length`` tokens (T5: the encoder's input) with
    ``target_length`` tokens in the loss (decoder-only: at most length - 1; T5: the decoder's length)."""
    b, h, enc_dec = micro_batch, d["h"], d["encoder_decoder"]
    s = target_length if enc_dec else length
    # decoder-only: position t predicts token t+1, so the last position is never a target
    targets = b * (target_length if enc_dec else min(target_length, length - 1))
    layers = _layers(d, t, kern, device, b, s, length)
    if checkpointing:  # every block keeps its input; one block (the largest) is recomputed at a time
        layer_bytes = sum(n * kept for n, _, kept in layers) + max(full for _, full, _ in layers)
    else:
        layer_bytes = sum(n * full for n, full, _ in layers)
    # the embeddings' dropout mask and the final norm of each stack, the rows the loss projects
    tokens = [b * length, b * s] if enc_dec else [b * s]
    other = sum(n * (t.mask + _norm(d, t, 0)) * h for n in tokens) + targets * t.compute * h
    if enc_dec:  # the encoder output the decoder's cross-attention keeps
        other += b * length * t.residual * h
        if d["position_bias"] and kern == "fused" and device == "cuda":  # the bias + mask, (b, heads, s, s) per stack
            other += b * d["heads"] * t.compute * (length * length + s * s)
    # backward of the loss: its fp32 log-probabilities + nll_loss's and log_softmax's gradients; then the output
    # layer's weight gradient, new beside the one accumulation holds, next to the logits' gradient
    loss = max(3 * 4 * d["vocab"] * targets, 4 * d["vocab"] * targets + t.residual * d["vocab"] * h)
    return Activations(layers=layer_bytes, other=other, loss=loss)
