"""Live allocated bytes of this process (glibc's mallinfo2), and their peak sampled on a thread: the memory
columns of the training benchmarks. On a GPU (--device cuda): the CUDA caching allocator's own count of allocated
bytes and its exact peak (torch.cuda.max_memory_allocated, reset when the peak starts), no thread."""

from __future__ import annotations

import functools


@functools.cache
def _mallinfo2():
    import ctypes

    class Info(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                   "fsmblks", "uordblks", "fordblks", "keepcost")]

    fn = ctypes.CDLL(None).mallinfo2
    fn.restype = Info
    return fn


def live_bytes() -> int:
    """Bytes the process has allocated and not freed: glibc's mallinfo2, in-heap + mmapped blocks (where torch's
    CPU tensors live). Unlike resident memory it leaves out what the allocator keeps after a free, so it follows
    live tensors with the allocator as users run it (an earlier version made glibc unmap every freed block
    instead, which cost ~38% of the training speed)."""
    info = _mallinfo2()()
    return info.uordblks + info.hblkhd


# Every wake-up of the sampling thread takes the GIL and a core from the step: alternating gpt2 steps with and
# without it on the idle machine, a 5 ms sampling cost 5-19% of the step (noisy), 25-100 ms 0-5%; the peak read the
# same 1,550 MB at 5, 25, 50 and 100 ms (a step's peak lasts through much of its backward)
INTERVAL = 0.05


class LivePeak:
    """live_bytes() sampled every INTERVAL seconds on a thread until close(), which returns the peak."""

    def __init__(self):
        import threading

        self.peak = live_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.wait(INTERVAL):
            self.peak = max(self.peak, live_bytes())

    def close(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


class CudaPeak:
    """LivePeak's counterpart on the GPU: the allocator's peak of allocated bytes since this object was made (the
    peak statistics are reset then; every allocation is counted, none can fall between two samples)."""

    def __init__(self):
        import torch

        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        self.peak = torch.cuda.memory_allocated()

    def close(self) -> int:
        import torch

        torch.cuda.synchronize()
        self.peak = torch.cuda.max_memory_allocated()
        return self.peak


def allocated(device: str = "cpu") -> int:
    """Bytes allocated and not freed now: live_bytes() on the CPU, the CUDA allocator's count on a GPU."""
    if device == "cpu":
        return live_bytes()
    import torch

    return torch.cuda.memory_allocated()


def peak_meter(device: str = "cpu"):
    """The peak of allocated() from now until its close(): LivePeak on the CPU, CudaPeak on a GPU."""
    return LivePeak() if device == "cpu" else CudaPeak()
