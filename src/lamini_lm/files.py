"""Writing files and folders so that a kill leaves either their old version or their new one, never half of one,
and a full disk is one line naming the folder and the space needed."""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from lamini_lm.errors import UserError

FULL = (errno.ENOSPC, errno.EDQUOT)  # no space left on the device, or none left in the user's quota


def _tmp(path: Path) -> Path:
    # the writer's PID in the name: two writers never share a temporary file, and a stale one is recognisable
    return path.with_name(f"{path.name}.tmp-{os.getpid()}")


def sync_dir(folder: str | Path) -> None:
    """Make a rename or a new file in ``folder`` durable (the folder's entry list on disk)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` for any writer that takes a path; when the block ends without an error the
    file is flushed to disk and replaces ``path`` in one step, otherwise it is removed."""
    path = Path(path)
    tmp = _tmp(path)
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        sync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` whole."""
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


@contextmanager
def open_atomic(path: str | Path) -> Iterator[TextIO]:
    """``open(path, "w", newline="", encoding="utf-8")`` (what csv writers want) that replaces ``path`` whole."""
    with replacing(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        yield f


def save_figure(fig, path: str | Path, **kwargs) -> None:
    """``fig.savefig(path)`` written whole (the format from ``path``'s suffix, as matplotlib would take it)."""
    with replacing(path) as tmp:
        fig.savefig(tmp, format=Path(path).suffix.lstrip("."), **kwargs)


@contextmanager
def replacing_dir(folder: str | Path) -> Iterator[Path]:
    """A new folder ``<folder>.tmp-<pid>`` to fill; when the block ends without an error it takes ``folder``'s
    place (an old ``folder`` is removed only then), otherwise it is removed. A kill leaves the old folder or the
    new one under the name, never a half-written one (between the two renames, briefly, none)."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    for stale in folder.parent.iterdir():  # left by a killed writer (the run folder's lock rules out a live one)
        if stale.name.startswith((f"{folder.name}.tmp-", f"{folder.name}.old-")):
            shutil.rmtree(stale, ignore_errors=True)
    tmp = _tmp(folder)
    tmp.mkdir()
    try:
        yield tmp
        for p in tmp.rglob("*"):
            if p.is_file():
                with open(p, "rb") as f:
                    os.fsync(f.fileno())
        old = folder.with_name(f"{folder.name}.old-{os.getpid()}")
        if folder.exists():
            folder.rename(old)
        tmp.rename(folder)
        sync_dir(folder.parent)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def is_full(e: BaseException) -> bool:
    """Whether ``e`` says the disk (or the quota) is full; sqlite (lm-eval's cache) says it in words."""
    if isinstance(e, OSError):
        return e.errno in FULL
    return type(e).__name__ == "OperationalError" and "disk is full" in str(e)


def megabytes(n: float) -> str:
    """A size as people read it, to three digits: 512 kB, 4.19 MB, 1.23 GB."""
    return f"{n / 1e3:.0f} kB" if n < 1e6 else f"{n / 1e6:.3g} MB" if n < 1e9 else f"{n / 1e9:.3g} GB"


def free_space(folder: str | Path) -> int | None:
    """Bytes free for this user on the disk holding ``folder`` (its nearest existing parent); None if unknown."""
    p = Path(folder).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        st = os.statvfs(p)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


class DiskFull(UserError):
    """The disk holding a run's folder is full: one line naming the folder, the space free and needed, what is
    kept and what to do."""

    def __init__(self, folder: str | Path, needed: int | None, kept: str, then: str):
        self.folder, self.needed, self.kept, self.then = Path(folder), needed, kept, then
        free = free_space(folder)
        space = f"{megabytes(free or 0)} free" + (f", about {megabytes(needed)} needed to finish" if needed else "")
        super().__init__(f"the disk holding {folder} is full ({space}); {kept}; free space there (or choose a "
                         f"folder on another disk), then {then}")
