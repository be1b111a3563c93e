"""Model sizes as names print them (LaMini-GPT-124M, Cerebras-GPT-1.3B), the check that a model has the size its
config says, and the sizes the planner reads of an architecture (its base config's `planner` description)."""

from __future__ import annotations

import ast
import operator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from omegaconf import OmegaConf

from lamini_lm.config import BadValue, conf_dir, typed
from lamini_lm.errors import UserError


def parse_size(text: str) -> tuple[float, float]:
    """'124M' -> (124e6, 1e6), '1.5B' -> (1.5e9, 0.1e9): a size as names print it, and one unit of its last digit."""
    text = str(text).strip()
    if not text or text[-1] not in "MB":
        raise UserError(f"size '{text}' is not a parameter count like 124M or 1.5B")
    number, unit = text[:-1], {"M": 1e6, "B": 1e9}[text[-1]]
    decimals = len(number.partition(".")[2])
    try:
        return float(number) * unit, unit / 10**decimals
    except ValueError:
        raise UserError(f"size '{text}' is not a parameter count like 124M or 1.5B") from None


def check_size(model, model_cfg) -> int:
    """The model's parameter count, which must be the size its config (and LaMini name) states, to one unit
    of the last printed digit (at most 10%): a hub id or architecture pointing at another size fails here,
    not in a table."""
    n = model.num_parameters()
    stated, unit = parse_size(model_cfg.params)
    if abs(n - stated) > min(unit, 0.1 * stated):  # "1B" still means 0.9B-1.1B
        raise UserError(f"model.params={model_cfg.params} but model '{model_cfg.name}' has {n / 1e6:,.1f}M parameters: "
                        "fix model.hub_id / model.architecture, or model.params")
    return n


# -- what the planner reads of an architecture ------------------------------------------------------------------------
# Each architecture's base config (conf/model/base/<model_type>.yaml) declares it under `planner`: training/activations.py
# and training/flops.py hold formulas, and no list of architectures.

NORMS = ("layer", "rms")


@dataclass
class PlannerFields:
    """Sizes and settings an architecture's transformers config gives: each an expression over that config's fields
    (its defaults included: ``n_inner or 4 * n_embd``; names, numbers, + - * //, or, and, x if c else y, max, min)
    or a plain value."""

    hidden: Any  # the residual stream's width
    ffn: Any  # the feed-forward's inner width
    heads: Any  # attention heads
    attention_width: Any  # heads x head width: the queries and the attention's output
    kv_width: Any  # the keys' and the values' width (grouped-query attention: fewer heads)
    layers: Any  # blocks (an encoder-decoder: the encoder's)
    activation: Any  # the feed-forward's activation, transformers' name (gelu_new, relu, silu, ...)
    vocab: Any = "vocab_size"
    decoder_layers: Any = None  # an encoder-decoder's decoder blocks
    gated_ffn: Any = False  # the activation gates a second projection (Llama's SwiGLU, T5 v1.1's gated GELU)
    dropout: Any = 0  # on the residual stream and the embeddings
    attention_dropout: Any = 0


@dataclass
class PlannerSpec:
    """What the planner needs of an architecture besides its transformers config: the fields it reads, how its
    modules keep activations for backward (training/activations.py) and which of its weights project the
    encoder's tokens in the decoder (training/flops.py)."""

    fields: PlannerFields
    norm: str = "layer"  # layer: LayerNorm keeps its input; rms: a Python RMSNorm keeps its fp32 input and more
    fused_qkv: bool = False  # one projection makes the queries, keys and values (GPT-2's c_attn)
    ffn_dropout: bool = False  # a dropout between the activation and the output projection (T5)
    upcast_attention: bool = False  # its eager attention takes scores and softmax in fp32 (GPT-Neo)
    position_bias: bool = False  # a float (batch, heads, s, s) position bias per stack (T5's relative buckets)
    cross_kv: list[str] = field(default_factory=list)  # module name endings: the decoder's keys and values of the encoder

    def __post_init__(self):
        if self.norm not in NORMS:
            raise BadValue("norm", f"'{self.norm}' is not one of {', '.join(NORMS)}")


def planner_spec(node, model_type: str, where: str = "model.planner") -> PlannerSpec | None:
    """The planner's description of an architecture: ``node`` (a model config's ``planner``, typed or not), else the
    one of the base config named after its ``model_type`` (conf/model/base/<model_type>.yaml, in the one config tree
    lamini_lm.config reads); None when neither has one."""
    if isinstance(node, PlannerSpec):
        return node
    if node is None:
        base = conf_dir() / "model" / "base" / f"{model_type}.yaml"
        node = OmegaConf.load(base).get("planner") if base.is_file() else None
        where = f"{base}: planner"
    return None if node is None else typed(node, PlannerSpec, where)


def evaluate(value, config, key: str):
    """``value`` (a PlannerFields entry) over the transformers ``config``: an expression's result, else the value."""
    if not isinstance(value, str):
        return value
    try:
        tree = ast.parse(value, mode="eval")
    except SyntaxError:
        raise UserError(f"{key}: '{value}' is not an expression over the config's fields (e.g. n_inner or 4 * n_embd)") \
            from None
    return _value(tree.body, config, key, value)


_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.FloorDiv: operator.floordiv}
_CALLS = {"max": max, "min": min}


def _value(node, config, key: str, text: str):
    value = partial(_value, config=config, key=key, text=text)
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        if not hasattr(config, node.id):
            raise UserError(f"{key}: '{text}': the {config.model_type} config has no field {node.id}")
        return getattr(config, node.id)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        return _BINARY[type(node.op)](value(node.left), value(node.right))
    if isinstance(node, ast.BoolOp):  # or / and, short-circuit as in Python
        result = value(node.values[0])
        for v in node.values[1:]:
            if bool(result) == isinstance(node.op, ast.And):
                result = value(v)
        return result
    if isinstance(node, ast.IfExp):
        return value(node.body) if value(node.test) else value(node.orelse)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _CALLS and not node.keywords:
        return _CALLS[node.func.id](*map(value, node.args))
    raise UserError(f"{key}: '{text}': an expression takes field names, numbers, + - * //, or, and, "
                    "x if c else y, max and min")
