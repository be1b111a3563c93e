"""Model sizes as names print them (LaMini-GPT-124M, Cerebras-GPT-1.3B), and the check that a model has
the size its config says."""

from __future__ import annotations

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
