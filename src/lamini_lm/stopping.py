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


def while_starting() -> None:
    """Outside a stage's own handling of the signals (``stop_signals``; train.py's StopOnSignal), SIGINT and SIGTERM
    end the process with one line instead of a traceback from whatever was running: the start-up (imports, config
    checks, loading) and, in a sweep, the time between two jobs. Entry points call it first thing. Nothing is being
    written then that a stop could leave half-done."""

    def starting(signum, frame) -> None:
        for s in SIGNALS:
            signal.signal(s, signal.SIG_DFL)
        print(f"{WORDS[signum]}: outside any work, nothing half-written (what finished before is kept)", file=sys.stderr)
        if "hydra" in sys.modules:  # Hydra may have made this job's folder already (before the job's code runs)
            from hydra.core.hydra_config import HydraConfig

            if HydraConfig.initialized():
                from lamini_lm.run_lock import discard_refused_run

                discard_refused_run()  # only a folder that holds nothing but start records
        raise SystemExit(128 + signum)  # no KeyboardInterrupt: nothing may take it for a stop to save work

    for s in SIGNALS:
        signal.signal(s, starting)


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
