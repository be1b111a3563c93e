"""The bytes autograd keeps for backward after one forward of a family's loss: every saved tensor's storage once,
parameters and buffers left out. What training/activations.py models, measured (tests and bench/memory_planner.py)."""

import torch


def kept_bytes(family, model, data: dict) -> int:
    held = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
    seen: dict[int, int] = {}

    def pack(t):
        st = t.untyped_storage()
        if st.data_ptr() not in held:
            seen.setdefault(st.data_ptr(), st.nbytes())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        family.token_nll(model, data)
    return sum(seen.values())
