"""train.yaml's cpu_memory_cache (training/cpu_heap.py): on a CPU, the large blocks a micro-batch frees stay in the
process, so the next micro-batch writes them without the kernel faulting them in again page by page (glibc's
default serves and returns every block over 32 MB by mmap/munmap)."""

import subprocess
import sys

import pytest

STEPS = """
import resource, sys, torch
from lamini_lm.training.cpu_heap import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
def faulted():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt * resource.getpagesize() / 2 ** 20
for step in range(8):  # a micro-batch's large blocks (64, 48 and 40 MB: gradients, logits), written and freed
    before = faulted()
    blocks = [torch.ones(mb * 2 ** 18) for mb in (64, 48, 40)]
    del blocks
    print(faulted() - before)
"""


def _faulted_mb(mode: str) -> list[float]:
    # a process of its own: the setting is process-wide and cannot be undone
    out = subprocess.run([sys.executable, "-c", STEPS, mode], capture_output=True, text=True, check=True).stdout
    return [float(x) for x in out.split()]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_freed_blocks_are_written_again_without_page_faults():
    glibc, kept = _faulted_mb("default"), _faulted_mb("keep")
    assert all(mb >= 0.9 * 152 for mb in glibc)  # every step faults its 152 MB in again
    assert kept[0] >= 0.9 * 152  # the first step grows the heap
    # the next seven mostly reuse it (64-216 MB faulted in all in repeated runs: torch's 64-byte aligned requests
    # do not always fit exactly where a freed block was), against glibc's 7 x 152
    assert sum(kept[1:]) < 0.4 * sum(glibc[1:])
