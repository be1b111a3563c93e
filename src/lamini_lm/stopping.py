"""How generate.py and evaluate.py stop when told to: SIGTERM (what SLURM preemption, Kubernetes, `timeout` and
`kill` send) is taken like Ctrl-C. The work stops, one line says what was kept and which command continues,
and the exit status is 128 + the signal: 130 for SIGINT, 143 for SIGTERM. A second signal stops at once.

While paid requests are in flight (a teacher's ``with draining():``), the first signal does not cut them off,
which would pay for their replies and lose them: the teacher sends nothing more (it checks ``requested()``),
the replies in flight arrive and are stored, and the stop happens when the block ends.
"""

from __future__ import annotations

import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager

SIGNALS = (signal.SIGINT, signal.SIGTERM)
WORDS = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated"}  # how every stage's last line begins
_state = {"draining": 0, "requested": None}  # blocks that drain; the signal received while in one


class Stopped(KeyboardInterrupt):
    """A stop signal, raised where the main thread is (a KeyboardInterrupt, so cleanup written for Ctrl-C runs)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _stop(signum, frame) -> None:
    for s in SIGNALS:  # a second signal takes its default action: the process ends at once
        signal.signal(s, signal.SIG_DFL)
    if not _state["draining"]:
        raise Stopped(signum)
    _state["requested"] = signum
    print(f"{signal.Signals(signum).name}: sending nothing more; the requests in flight finish and are stored "
          "(a second signal stops at once)", file=sys.stderr)


def requested() -> bool:
    """Whether a stop was asked for while draining: send nothing more."""
    return _state["requested"] is not None


@contextmanager
def draining() -> Iterator[None]:
    """A block in which a stop signal lets the work in flight finish; Stopped is raised when it ends."""
    _state["draining"] += 1
    try:
        yield
    finally:
        _state["draining"] -= 1
    signum = _state["requested"]
    if signum is not None and not _state["draining"]:
        _state["requested"] = None
        raise Stopped(signum)


@contextmanager
def stop_signals(kept: Callable[[], str]) -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM stop the work; then ``kept()`` (what was kept and the command that
    continues) is printed after ``interrupted:`` (SIGINT) or ``terminated:`` (SIGTERM), and the process exits."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return
    previous = {s: signal.signal(s, _stop) for s in SIGNALS}
    try:
        yield
    except KeyboardInterrupt as e:
        signum = getattr(e, "signum", signal.SIGINT)
        for s in SIGNALS:
            signal.signal(s, signal.SIG_DFL)
        # what the stopped frames held goes now, so that a progress bar's last line comes before ours, not after
        traceback.clear_frames(e.__traceback__)
        print(f"{WORDS[signum]}: {kept()}", file=sys.stderr)
        sys.exit(128 + signum)
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
