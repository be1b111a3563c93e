"""One owner per run folder: a second train.py or generate.py on the same folder stops with one line
naming the holder, instead of mixing its checkpoints, exports, metrics or requests with the first's.

The lock is an advisory flock on ``<folder>/.owner.lock``: the kernel drops it when its process ends, however
it ends, so a killed run never blocks its own resume. The file keeps who holds it (PID, host, start, command
with secret-looking values removed). A folder named on the command line is taken before Hydra writes into it.
A job that refuses its input leaves no folder behind (hydra_job): typos do not pile up empty runs in outputs/.
"""

from __future__ import annotations

import atexit
import fcntl
import functools
import json
import os
import shutil
import socket
import sys
import time
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

from lamini_lm.errors import UserError, exit_on_user_error
from lamini_lm.secret_keys import redact_argv

LOCK_FILE = ".owner.lock"


def _describe(holder: dict) -> str:
    return (f"PID {holder.get('pid', '?')} on {holder.get('host', '?')} since {holder.get('started', '?')} "
            f"({holder.get('command', '?')})")


# folders this process owns until it ends: taken before Hydra writes .hydra/ into a folder named on the command
# line (check_run_folder), so that a second run is refused before it can overwrite the first's .hydra/
_HELD: dict[Path, int] = {}
_MADE: set[Path] = set()  # of those, the ones this process made: removed at exit if the run wrote nothing there


def _acquire(folder: Path, setting: str) -> int:
    """An exclusive flock on ``folder``'s lock file, recording this process as the holder; one line if it is taken."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:  # e.g. a path under /proc, which os.access calls writable
        raise UserError(f"cannot write the run folder {folder} ({e.strerror}): choose another ({setting}=...)") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        taken = _read(fd)
        os.close(fd)
        raise UserError(f"{folder} is in use by {_describe(taken)}: wait for it to finish or stop it, "
                        f"or give this run another folder ({setting}=...)") from None
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                             "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                             "command": " ".join(redact_argv(sys.argv))[:300]}).encode())
    return fd


class RunLock:
    """``with RunLock(folder):`` owns ``folder`` for the block (one process at a time); a folder this process
    already owns since its start (check_run_folder) stays owned until the process ends."""

    def __init__(self, folder: str | Path, setting: str):
        self.folder, self.setting = Path(folder), setting  # setting: the key that chose the folder, for the message
        self.fd: int | None = None

    def __enter__(self) -> RunLock:
        if self.folder.resolve() not in _HELD:
            self.fd = _acquire(self.folder, self.setting)
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


@atexit.register
def release_held() -> None:
    """Give up the folders taken at start, removing the ones this process made and left empty (a run stopped by
    a bad input leaves no folder behind); runs at exit, and for in-process callers such as tests."""
    while _HELD:
        folder, fd = _HELD.popitem()
        if folder in _MADE and [p.name for p in folder.iterdir()] == [LOCK_FILE]:
            (folder / LOCK_FILE).unlink()
            folder.rmdir()
        os.close(fd)
    _MADE.clear()


# what a job writes before it has checked its inputs: Hydra's record of the run (and its <job>.log), the owner's
# lock, train.py's recipe (training/recipe.py)
START_RECORDS = {".hydra", LOCK_FILE, "recipe.json"}


def hydra_job(task):
    """Wrap a Hydra task function: a UserError is one line and exit 2 (exit_on_user_error), and a job stopped by
    one before it wrote anything of its own leaves no run folder (discard_refused_run; stopping.while_starting
    does the same for a stop signal)."""

    @functools.wraps(task)
    def job(cfg):
        try:
            return task(cfg)
        except UserError:
            discard_refused_run()
            raise

    return exit_on_user_error(job)


def discard_refused_run() -> None:
    """Inside a Hydra job that refused its input: remove the folder Hydra made for it when it holds only the start
    records, then the sweep's folder when that holds only Hydra's multirun.yaml. Never a folder that existed
    before this command (a resume), nor in the other ranks of a distributed job, which share rank 0's folder."""
    hydra = HydraConfig.get()
    sweep = hydra.mode == RunMode.MULTIRUN
    job_dir = Path(hydra.runtime.output_dir).resolve()
    named = {o.split("=", 1)[0].lstrip("+") for o in hydra.overrides.hydra}
    # a folder named on the command line is new if check_run_folder made it; an unnamed one is new by its name,
    # the launch time to the microsecond (conf/hydra/default.yaml)
    new = job_dir in _MADE if job_dir in _HELD else ("hydra.sweep.dir" if sweep else "hydra.run.dir") not in named
    if not (new and is_first_process() and job_dir.is_dir()):
        return
    if {p.name for p in job_dir.iterdir()} - START_RECORDS - {f"{hydra.job.name}.log"}:
        return  # the job wrote something of its own
    if job_dir in _HELD:  # taken at start: release_held removes it with its lock at exit
        shutil.rmtree(job_dir / ".hydra", ignore_errors=True)
        for p in job_dir.iterdir():
            if p.name != LOCK_FILE:
                p.unlink()
    else:
        shutil.rmtree(job_dir)
    sweep_dir = Path(hydra.sweep.dir).resolve()
    if sweep and [p.name for p in sweep_dir.iterdir()] == ["multirun.yaml"]:
        shutil.rmtree(sweep_dir)


def _read(fd: int) -> dict:
    try:
        return json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        return {}


def holder(folder: str | Path) -> dict | None:
    """Who holds ``folder`` now (its lock file's record), or None when nobody does."""
    path = Path(folder) / LOCK_FILE
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _read(fd)
    finally:
        os.close(fd)  # closing drops the shared lock too
    return None


def is_first_process() -> bool:
    """False in the other ranks of a distributed job, which share their rank 0's folder."""
    return all(os.environ.get(k, "0") == "0" for k in ("RANK", "SLURM_PROCID", "LOCAL_RANK"))


@exit_on_user_error
def check_run_folder(settings: tuple[str, ...], argv: list[str] | None = None) -> dict[str, Path]:
    """Before Hydra writes .hydra/ into a folder named on the command line (a resume: hydra.run.dir=<run>,
    or generate's out_dir=): stop if it cannot be written or another process holds it; else take it for this
    process's lifetime. Returns the folders named, by setting."""
    given = {}
    for arg in sys.argv[1:] if argv is None else argv:
        key, sep, value = arg.partition("=")
        if sep and key.lstrip("+") in settings:
            given[key.lstrip("+")] = Path(value.strip("'\""))
    for key, folder in (given or {"(the launch folder)": Path.cwd()}).items():
        existing = next(p for p in (folder.absolute(), *folder.absolute().parents) if p.exists())
        if not existing.is_dir():
            raise UserError(f"{existing} is a file, so the run cannot make the folder {folder}: choose another"
                            f"{f' ({key}=...)' if key in settings else ''}")
        if not os.access(existing, os.W_OK):
            where = f" ({key}=...)" if key in settings else ""
            raise UserError(f"{existing} is not writable, so the run cannot write {folder}: choose another folder{where}")
        if key in settings and is_first_process() and folder.resolve() not in _HELD:
            if not folder.exists():
                _MADE.add(folder.resolve())
            _HELD[folder.resolve()] = _acquire(folder, key)
    return given
