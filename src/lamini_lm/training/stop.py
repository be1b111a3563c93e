"""What train.py does with SIGINT (Ctrl-C) and SIGTERM (SLURM preemption and time limits, Kubernetes, `timeout`,
`kill`): the first lets the optimizer step under way finish (at an epoch's last step, its validation too), saves
last.ckpt there, so that the rerun continues exactly, and exits 130 or 143 (128 + the signal) with one line saying
what was saved and the command that continues. A second signal stops at once. Before training starts and after it
ends there is no step to finish: the run stops at once; the checkpoints on disk are what a rerun continues from.

Lightning's own SIGTERM handler (its signal connector) stops after the micro-batch under way, inside an accumulated
step whose partial gradient no checkpoint holds, saves nothing and exits 0; ours takes its place while training
runs, and every rank stops at the same step. The SLURM requeue signal (SIGUSR1 to Lightning's SLURMEnvironment,
SIGUSR2 to submitit, hydra/launcher=submitit_slurm) is left to their handlers: the requeued job resumes from
last.ckpt. DataLoader workers ignore both signals (data/batching.py), so only the main process reacts."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import lightning.pytorch as pl
import torch

from lamini_lm.run_lock import is_first_process
from lamini_lm.stopping import SIGNALS, WORDS  # the signals and words of generate.py and evaluate.py too
from lamini_lm.training.saving import save_last, saved_at



class Stopped(BaseException):
    """The run stops for a signal. Not an Exception, which code on the way might take for a failure, nor a
    KeyboardInterrupt, which Lightning turns into exit 1."""

    def __init__(self, signum: int, when: str, saved: Path | None = None, step: int | None = None):
        super().__init__(signal.Signals(signum).name)
        self.signum, self.when, self.saved, self.step = signum, when, saved, step

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    def line(self, run_dir: Path) -> str:
        again = f"`python train.py hydra.run.dir={run_dir}`"
        if self.saved:
            what = f"saved {self.saved} at step {self.step}; continue with {again}"
        elif self.when == "after":
            what = f"training had finished, the export was not written; {again} writes it"
        else:
            what = f"stopped before training started, nothing new to save; continue with {again}"
        return f"{WORDS[self.signum]}: {what}"


class StopOnSignal(pl.Callback):
    """See the module's docstring. ``handling()`` takes the two signals for the run; the callback hooks say where
    the training loop is."""

    def __init__(self, last: Path):
        self.last = last
        self.requested: int | None = None
        self._when = "before"  # before training, during it ("step"), or after it
        self._step = 0
        self._saved: Stopped | None = None  # raised where the run stops, after last.ckpt was saved
        self._pid = os.getpid()

    @contextmanager
    def handling(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
            yield
            return
        previous = {s: signal.getsignal(s) for s in SIGNALS}
        self._take()
        try:
            yield
        finally:
            for s, h in previous.items():
                signal.signal(s, h)

    def _take(self) -> None:
        for s in SIGNALS:
            signal.signal(s, self._handle)

    def _handle(self, signum, frame) -> None:
        if os.getpid() != self._pid:  # a DataLoader worker, forked with this handler, before it ignores signals
            return
        name = signal.Signals(signum).name
        if self.requested is not None:
            for s in SIGNALS:
                signal.signal(s, signal.SIG_DFL)
            _say(f"{WORDS[signum]}: a second {name}, stopping at once; the checkpoints on disk are what "
                 "`python train.py hydra.run.dir=<run>` continues from")
            os.kill(os.getpid(), signum)
            return
        self.requested = signum
        if self._when != "step":
            raise Stopped(signum, self._when)
        _say(f"{name}: finishing the optimizer step under way to save it in {self.last} (send it again to stop at "
             "once)")

    def on_train_start(self, trainer, pl_module) -> None:
        self._take()  # over the SIGTERM handler Lightning registered since
        self._step = trainer.global_step
        self._when = "step"

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self._step:  # a micro-batch that only accumulated
            return
        self._step = trainer.global_step
        if batch_idx + 1 < trainer.num_training_batches:  # an epoch's last step stops after its validation
            self._save_if_asked(trainer)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        # the stop itself waits for the next batch: Lightning logs a step's metrics after its last micro-batch's
        # hooks, and this step's row belongs in the history the checkpoint continues
        if self._saved:
            raise self._saved

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._save_if_asked(trainer)
        if self._saved:
            raise self._saved

    def on_train_end(self, trainer, pl_module) -> None:
        self._when = "after"

    def on_exception(self, trainer, pl_module, exception) -> None:
        self._when = "after" if self._when == "step" else self._when

    def _save_if_asked(self, trainer) -> None:
        # every rank stops at the same step, also when the signal reached only some of them: a collective over the
        # signal numbers asked for (the largest wins)
        asked = torch.tensor(self.requested or 0, device=trainer.strategy.root_device)
        signum = int(trainer.strategy.reduce(asked, reduce_op="max"))
        if not signum:
            return
        if saved_at(self.last) != trainer.global_step:  # not already saved at this step (by LastCheckpoint)
            save_last(trainer, self.last)
        self._saved = Stopped(signum, "step", self.last, trainer.global_step)


def _say(text: str) -> None:
    if is_first_process():  # every rank of a job may get the signal: one says it
        print(text, file=sys.stderr, flush=True)
