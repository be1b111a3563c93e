"""The GPU code paths walked on a CPU, before a GPU session spends its minutes on them: every "cuda" read as "cpu"
(autocast too: CPU bf16 autocast), torch.cuda's clock and memory calls faked. It checks the code's plumbing (APIs,
shapes, the report), never a GPU's numbers.

    # tests/test_gpu.py's in-process tests (those that start no train.py), as a pytest plugin:
    python -m pytest -p bench.cuda_on_cpu tests/test_gpu.py -m gpu -rP -n 0 -p no:cacheprovider \\
        -k "not ddp and not fsdp and not deepspeed and not preflight and not gpt2_large and not gpt2_xl"
    # bench.train_throughput --device cuda, every recipe in this process under the CPU trainer:
    python -m bench.cuda_on_cpu "NVIDIA H200" --quick --shapes gpt2 --recipes alpaca,trl_grouped,ours

Under the plugin the true-shape tests run at 8 tokens a row (SEQ), and their tokens/s and memory mean nothing. The FSDP,
DDP and DeepSpeed tests and the preflight need a real GPU (Lightning refuses FSDP on a CPU; the preflight skips there).
"""

from __future__ import annotations

import functools
import sys

import torch


def _cpu(d):
    if isinstance(d, str) and d.startswith("cuda"):
        return "cpu"
    if isinstance(d, torch.device) and d.type == "cuda":
        return torch.device("cpu")
    return d


def _device_kwarg(fn):
    @functools.wraps(fn)
    def inner(*a, **k):
        if "device" in k:
            k["device"] = _cpu(k["device"])
        return fn(*a, **k)
    return inner


def fake_cuda(name: str = "emulated on the CPU") -> None:
    """Tensors and modules stay on the CPU when sent to "cuda"; torch.cuda answers as a card called ``name`` with
    100 MB allocated and a 350 MB peak."""
    torch.Tensor.cuda = lambda self, *a, **k: self
    torch.nn.Module.cuda = lambda self, *a, **k: self
    to = torch.Tensor.to
    torch.Tensor.to = lambda self, *a, **k: to(self, *map(_cpu, a), **{kk: _cpu(v) for kk, v in k.items()})
    for fn in ("randint", "randn", "ones", "zeros", "full"):
        setattr(torch, fn, _device_kwarg(getattr(torch, fn)))
    autocast = torch.autocast.__init__
    torch.autocast.__init__ = lambda self, device_type, *a, **k: autocast(self, _cpu(device_type), *a, **k)
    torch.cuda.synchronize = lambda *a, **k: None
    torch.cuda.reset_peak_memory_stats = lambda *a, **k: None
    torch.cuda.memory_allocated = lambda *a, **k: 100 * 2 ** 20
    torch.cuda.max_memory_allocated = lambda *a, **k: 350 * 2 ** 20
    torch.cuda.get_device_name = lambda *a, **k: name
    torch.cuda.current_device = lambda: 0
    torch.cuda.empty_cache = lambda: None


def pytest_configure(config):
    """As a pytest plugin (-p bench.cuda_on_cpu): tests/test_gpu.py believes it has one GPU."""
    fake_cuda()
    from lightning.pytorch.plugins.precision import MixedPrecision

    init = MixedPrecision.__init__
    MixedPrecision.__init__ = lambda self, precision, device, *a, **k: init(self, precision, _cpu(device), *a, **k)
    import tests.test_gpu as t

    t._gpus = lambda n=1: 1
    t.SEQ = 8


class _Inline:
    """ProcessPoolExecutor's stand-in: the recipe runs in this process, so that the fakes above reach it."""

    def __init__(self, *a, **k):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False

    def submit(self, fn, *a):
        import concurrent.futures

        f = concurrent.futures.Future()
        f.set_result(fn(*a))
        return f


def main() -> None:
    """bench.train_throughput --device cuda with the card named by argv[1] (lightning's table or BF16_PEAK gives its
    roof), the CPU trainer in place of trainer=gpu, HF/TRL's bf16=True as CPU autocast, a 700 TFLOP/s "matmul"."""
    import concurrent.futures

    fake_cuda(sys.argv[1])
    from transformers import training_args  # bf16=True with use_cpu=False: its GPU check passes

    training_args.is_torch_bf16_gpu_available = lambda *a, **k: True
    import bench.train_throughput as tt

    tt.overrides = lambda args: []
    tt.gpu_matmul = lambda: 700e12
    concurrent.futures.ProcessPoolExecutor = _Inline
    sys.argv = ["bench.train_throughput", "--device", "cuda"] + sys.argv[2:]
    tt.main()


if __name__ == "__main__":
    main()
