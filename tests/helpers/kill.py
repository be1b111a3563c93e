"""Faults at a chosen optimizer step, from inside train.py (callbacks: no timing involved)."""

import errno
import os
import signal

import lightning.pytorch as pl


class KillAtStep(pl.Callback):
    """Sends ``sig`` (a name: SIGKILL, SIGTERM, SIGINT) once after optimizer step ``step``: as the next micro-batch
    starts (``during="train"``; that step's metrics are logged by then) or as the validation after it starts
    (``during="validation"``, at an epoch's end); to this process, or with ``group`` to its process group (the test
    starts train.py as a group leader, and this refuses to signal any other group)."""

    def __init__(self, step: int, sig: str = "SIGKILL", group: bool = False, during: str = "train"):
        self.step, self.sig, self.group, self.during = step, getattr(signal, sig), group, during
        self.sent = False

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self.during == "train":
            self._send(trainer)

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        if self.during == "validation":
            self._send(trainer)

    def _send(self, trainer):
        if self.sent or trainer.global_step < self.step:
            return
        self.sent = True
        if not self.group:
            os.kill(os.getpid(), self.sig)
        elif os.getpgid(0) == os.getpid():
            os.killpg(0, self.sig)
        else:
            raise RuntimeError("KillAtStep(group=True) needs train.py to lead its process group")


class FailCheckpointWrite(pl.Callback):
    """The first checkpoint written at or after optimizer step ``step`` fails once its bytes are in the temporary
    file, as its flush to disk starts: the process is killed (``fault="kill"``), or the disk is full
    (``fault="full"``: the OSError a full disk gives)."""

    def __init__(self, step: int, fault: str = "kill"):
        self.step, self.fault = step, fault
        self.armed = self.done = False

    def on_fit_start(self, trainer, pl_module):
        fsync = os.fsync

        def failing_fsync(fd):
            if self.armed:
                self.armed, self.done = False, True
                if self.fault == "kill":
                    os.kill(os.getpid(), signal.SIGKILL)
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return fsync(fd)

        os.fsync = failing_fsync

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        if not self.done and trainer.global_step >= self.step:
            self.armed = True
