"""Per-device training memory of a herd member under a strategy and precision: its weights, gradients and AdamW
state, from the parameter counts of the model built on the meta device (nothing allocated, no Hub).

The planner's command (activations, the largest micro-batch, accumulation, run time) is lamini_lm.training.plan.

The accounting of the ZeRO paper (Rajbhandari et al., 2020, Section 3.1: Psi parameters, AdamW under mixed
precision keeps K = 12 bytes of optimizer state each), with what the strategies here really allocate:

- ddp (DDPStrategy): everything replicated; DDP's gradient buckets are a second copy of the gradients
  (gradient_as_bucket_view is off in conf/trainer/ddp.yaml), counted with the gradients.
- fsdp (FSDPStrategy, FULL_SHARD): weights, gradients and optimizer state sharded over the devices; at any time
  the root unit (embeddings, final norm) and up to two blocks (limit_all_gathers) are gathered in the compute
  dtype, and one block's gradients wait unsharded for their reduce-scatter.
- deepspeed (DeepSpeedStrategy, ZeRO stage 2): weights whole on every device in the compute dtype; gradients and
  optimizer state (under mixed precision: the fp32 master weights + AdamW's two moments) sharded.
"""

from __future__ import annotations

from dataclasses import dataclass

from hydra.utils import get_class

from lamini_lm.config import typed
from lamini_lm.errors import UserError
from lamini_lm.models.spec import ModelSpec

# torch and the model modules are imported in meta_model, the one function that builds a model: the planner's
# config check comes first

GB = 1e9
# bytes per parameter: (weights as stored, the dtype they compute in, AdamW's two moments). Mixed precision keeps
# fp32 weights and casts them per op (autocast); gradients take the stored weights' dtype.
PRECISION = {
    "32-true": (4, 4, 8),
    "bf16-mixed": (4, 2, 8),
    "16-mixed": (4, 2, 8),
    "bf16-true": (2, 2, 4),
}
STRATEGIES = ("single", "ddp", "fsdp", "deepspeed")


@dataclass(frozen=True)
class Shape:
    """A model's parameter counts: in all, in its largest FSDP unit (the config's fsdp_block; T5's decoder
    blocks are larger than its encoder blocks), how many blocks, and how many parameters they hold together; and the
    bytes of its buffers (GPT-Neo's causal masks: 4 MB a layer), which every device holds whole."""

    params: int
    block_params: int
    blocks: int
    in_blocks: int
    buffer_bytes: int = 0

    @property
    def root_params(self) -> int:  # what no block holds: embeddings, final norms, an untied output layer
        return self.params - self.in_blocks


@dataclass(frozen=True)
class Memory:
    """Bytes per device."""

    weights: float
    gradients: float
    optimizer: float

    @property
    def total(self) -> float:
        return self.weights + self.gradients + self.optimizer


def shape_of(model, block_class: type) -> Shape:
    """The counts of a built model (on the meta device they cost nothing); parameters shared between modules
    (tied embeddings) count once, as model.num_parameters() does."""
    blocks = [m for m in model.modules() if isinstance(m, block_class)]
    if not blocks:
        raise UserError(f"model.fsdp_block={block_class.__module__}.{block_class.__qualname__} is not a module of "
                        f"this model: name its transformer block class")
    sizes = [sum(p.numel() for p in b.parameters()) for b in blocks]
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    return Shape(params=model.num_parameters(), block_params=max(sizes), blocks=len(blocks), in_blocks=sum(sizes),
                 buffer_bytes=buffers)


def per_device(shape: Shape, strategy: str, precision: str, devices: int) -> Memory:
    """Weights, gradients and optimizer state on each of ``devices`` devices."""
    if precision not in PRECISION:
        raise UserError(f"trainer.precision={precision}: the planner knows {', '.join(PRECISION)}")
    if strategy not in STRATEGIES:
        raise UserError(f"strategy '{strategy}': the planner knows {', '.join(STRATEGIES)}")
    if devices < 1:
        raise UserError(f"devices={devices}: give the number of devices (trainer.devices x trainer.num_nodes)")
    stored, compute, moments = PRECISION[precision]
    p, n, buf = shape.params, devices, shape.buffer_bytes
    if strategy == "single":
        return Memory(stored * p + buf, stored * p, moments * p)
    if strategy == "ddp":
        return Memory(stored * p + buf, 2 * stored * p, moments * p)  # gradients + their all-reduce buckets
    if strategy == "fsdp":
        gathered = compute * (shape.root_params + 2 * shape.block_params)
        return Memory(stored * p / n + gathered + buf, stored * p / n + compute * shape.block_params,
                      moments * p / n)
    # ZeRO-2: DeepSpeed holds the module in the compute dtype; under mixed precision its optimizer adds an fp32
    # master copy of the weights to the moments
    master = 4 if compute < stored else 0
    return Memory(compute * p + buf, compute * p / n, (master + moments) * p / n)


def strategy_name(trainer_cfg) -> str:
    """single | ddp | fsdp | deepspeed, from a trainer config (conf/trainer/); other settings are refused."""
    strategy = trainer_cfg.get("strategy") or {}
    target = strategy.get("_target_", "") if hasattr(strategy, "get") else str(strategy)
    kind = target.rsplit(".", 1)[-1]
    if not target:
        return "single"
    if kind == "DDPStrategy":
        return "ddp"
    if kind == "FSDPStrategy" and strategy.get("sharding_strategy", "FULL_SHARD") == "FULL_SHARD":
        return "fsdp"
    if kind == "DeepSpeedStrategy" and strategy.get("stage") == 2:
        return "deepspeed"
    raise UserError(f"trainer.strategy {kind} {dict(strategy)}: the planner knows DDP, FSDP FULL_SHARD and "
                    "DeepSpeed stage 2")


def meta_model(cfg):
    """The typed model config of a composed train config and its model built on the meta device."""
    import torch

    from lamini_lm.models.backbone import build_family, build_random

    spec = typed(cfg.model, ModelSpec, "model")
    if not spec.architecture:
        raise UserError(f"model.architecture: model '{spec.name}' carries none, so it cannot be sized offline")
    with torch.device("meta"):
        return spec, build_random(build_family(spec).auto(), spec.architecture)


def world_size(trainer_cfg) -> int:
    devices, nodes = trainer_cfg.devices, trainer_cfg.get("num_nodes", 1)
    if not isinstance(devices, int) or devices < 1:
        raise UserError(f"trainer.devices={devices}: give the number of devices per node")
    return devices * nodes


def plan(cfg, model=None, world: int | None = None) -> tuple[Shape, str, int, Memory]:
    """The memory of a composed train config's model under its trainer, per device (``model``: its meta model,
    when the caller has built it; ``world``: devices x nodes, default the trainer config's)."""
    world = world or world_size(cfg.trainer)
    model = meta_model(cfg)[1] if model is None else model
    shape = shape_of(model, get_class(cfg.model.fsdp_block))
    strategy = strategy_name(cfg.trainer)
    return shape, strategy, world, per_device(shape, strategy, cfg.trainer.precision, world)
