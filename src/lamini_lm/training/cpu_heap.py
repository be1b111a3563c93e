"""train.yaml's cpu_memory_cache: on a CPU, memory torch frees stays in the process for the next micro-batch, as
CUDA's caching allocator keeps a GPU's.

torch allocates CPU tensors with the C library's malloc. glibc serves every block over its mmap threshold (32 MB at
most) with a fresh mapping and unmaps it on free, so every micro-batch faults its large blocks back in, page by
page, each page zeroed by the kernel: GPT-2's tied embedding gradient alone is 154 MB, its logits 77 MB. On the
2-core CPU (gpt2-124M, one packed micro-batch of 8 LaMini-length examples, after a short first step): ~1 GB of page
faults per micro-batch under glibc's defaults, 0-150 MB with these settings (~750 against ~90 MB once the first
steps have raised glibc's mmap threshold to its 32 MB cap). bench/train_throughput.py measures 1.25x the tokens/s on
t5-small, 1.14x on gpt2-124M (one of two runs read 0.95x there; bench/README.md). The cost: the process's resident
memory stays at the highest it reached, 3-8% higher there since blocks no longer fit exactly where freed ones were
(torch asks for 64-byte aligned blocks).
"""

from __future__ import annotations

import ctypes
import logging

log = logging.getLogger(__name__)

# glibc's malloc.h
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4


def keep_freed_memory() -> bool:
    """No block served by its own mapping, no heap top returned to the OS (mallopt(3): a trim threshold of -1
    disables trimming). False where the C library has no glibc mallopt (macOS) or refuses: its defaults stay."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    kept = mallopt(M_MMAP_MAX, 0) == 1 and mallopt(M_TRIM_THRESHOLD, -1) == 1
    if not kept:
        log.info("cpu_memory_cache: this C library's malloc refused mallopt; its defaults stay")
    return kept
