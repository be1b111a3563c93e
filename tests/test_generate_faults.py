"""What a cluster does to generate.py: a stop signal (Ctrl-C, SIGTERM to the process or to its group) and a disk that
fills up. Each time: one line saying what was kept, the same command finishes the run, D_ALL is byte for byte an
uninterrupted run's, and no request the server answered is sent again (every paid reply was stored).
SIGKILL at two points is tests/test_generate_resume.py's."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys

import pytest
from tests.helpers.generate_kit import KEY, ROOT, lines, run, spawn, tiny, wait_for_lines
from tests.helpers.openai_server import FakeOpenAI, key_of


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> bytes:
    """D_ALL of an uninterrupted run (a pure function of the config: the server's address is not in it)."""
    srv = FakeOpenAI()
    srv.start()
    out = tmp_path_factory.mktemp("uninterrupted")
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("OPENAI_API_KEY", KEY)
            run(tiny(out, srv.base_url))
    finally:
        srv.stop()
    return (out / "d_all.jsonl").read_bytes()


def stored_keys(out) -> set[str]:
    stores = [out / "requests" / f"{name}.jsonl" for name in ("instructions", "responses")]
    return {key_of(json.loads(line)["request"]) for p in stores if p.exists() for line in p.read_text().splitlines()}


def stored(out) -> int:
    return lines(out / "requests" / "instructions.jsonl") + lines(out / "requests" / "responses.jsonl")


@pytest.mark.slow
def test_stop_signals_store_the_replies_in_flight_and_the_same_command_finishes(server, api_key, tmp_path, reference):
    """SIGTERM to the process while instructions are generated, to its group while responses are, then Ctrl-C in a
    terminal (SIGINT to the group); then the same command in full."""
    server.latency = 0.3
    out = tmp_path / "out"
    overrides = tiny(out, server.base_url, "teacher.concurrency=4")
    for sig, group, store in ((signal.SIGTERM, False, "instructions"), (signal.SIGTERM, True, "responses"),
                              (signal.SIGINT, True, "responses")):
        proc = spawn([*overrides, f"hydra.run.dir={tmp_path / 'h'}"])
        wait_for_lines(out / "requests" / f"{store}.jsonl", lines(out / "requests" / f"{store}.jsonl") + 2, proc)
        (os.killpg if group else os.kill)(proc.pid, sig)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 128 + sig and "Traceback" not in err, err[-2000:]
        word = "interrupted" if sig == signal.SIGINT else "terminated"
        assert err.strip().splitlines()[-1] == (f"{word}: {stored(out)} finished requests are stored in "
                                                f"{out / 'requests'}; the same command continues from there")
        assert set(server.completed()) == stored_keys(out)  # every reply the server sent, in flight or not, is stored
    run(overrides)
    assert max(server.completed().values()) == 1  # nothing paid for twice
    assert (out / "d_all.jsonl").read_bytes() == reference


class SmallDisk:
    """The request store's ``os`` on a disk of ``capacity`` bytes holding ``folder`` (the stores and their reserves):
    a write beyond it writes what fits, then fails with ENOSPC, as a real disk does."""

    def __init__(self, folder, capacity: int):
        self.folder, self.capacity = folder, capacity

    def __getattr__(self, name):
        return getattr(os, name)

    def _used(self) -> int:
        return sum(p.stat().st_size for p in self.folder.iterdir()) if self.folder.exists() else 0

    def write(self, fd, data) -> int:
        room = self.capacity - self._used()
        if room <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return os.write(fd, data[:room])

    def posix_fallocate(self, fd, offset, length) -> None:
        if self._used() - os.fstat(fd).st_size + offset + length > self.capacity:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        os.posix_fallocate(fd, offset, length)


def test_a_full_disk_cuts_no_line_and_the_reserve_takes_the_replies_in_flight(tmp_path, monkeypatch):
    from lamini_lm.files import DiskFull
    from lamini_lm.teachers import store as store_module
    from lamini_lm.teachers.store import Reply, Request, RequestStore

    monkeypatch.setattr(RequestStore, "RESERVE", 4096)
    monkeypatch.setattr(store_module, "os", SmallDisk(tmp_path, 4096 + 1000))
    path = tmp_path / "s.jsonl"
    store = RequestStore(path)
    store.hold_reserve()
    reply = Reply("x" * 100, "stop", {"prompt_tokens": 1, "completion_tokens": 1}, "m")
    appended = 0
    with pytest.raises(DiskFull) as e:
        for i in range(100):
            store.append(Request({"model": "m", "messages": [{"role": "user", "content": f"q{i}"}]}), reply)
            appended += 1
    assert store.full and 1000 + 2048 < path.stat().st_size <= 1000 + 4096  # the reserve's room took the replies
    assert path.read_bytes().endswith(b"\n") and lines(path) == appended  # whole lines only, none torn
    assert str(e.value).startswith(f"the disk holding {tmp_path} is full (")
    assert f"{appended} finished requests are stored in {path}; free space there" in str(e.value)
    store.close()
    assert not store.reserve.exists() and len(RequestStore(path)) == appended


def test_a_disk_that_fills_while_requests_are_in_flight_loses_no_paid_reply(server, api_key, tmp_path, monkeypatch,
                                                                           reference):
    from lamini_lm.files import DiskFull
    from lamini_lm.teachers import store as store_module
    from lamini_lm.teachers.store import RequestStore

    server.latency = 0.05
    out = tmp_path / "out"
    overrides = tiny(out, server.base_url, "teacher.concurrency=4")
    monkeypatch.setattr(RequestStore, "RESERVE", 64 << 10)
    monkeypatch.setattr(store_module, "os", SmallDisk(out / "requests", (64 << 10) + 20_000))  # 2/3 of the stage
    with pytest.raises(DiskFull) as e:
        run(overrides)
    assert str(e.value).startswith(f"the disk holding {out / 'requests'} is full (")
    assert "needed to finish" in str(e.value) and "run the same command again" in str(e.value)
    assert set(server.completed()) == stored_keys(out)  # the replies in flight when it filled are stored too
    monkeypatch.setattr(store_module, "os", os)  # space freed
    run(overrides)
    assert max(server.completed().values()) == 1
    assert (out / "d_all.jsonl").read_bytes() == reference


def _namespaces() -> bool:
    """Whether this machine lets a user mount a tmpfs of their own (unshare: user and mount namespaces)."""
    if not shutil.which("unshare"):
        return False
    return subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "true"], capture_output=True).returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(not _namespaces(), reason="needs user namespaces (unshare -rm) for a small tmpfs")
def test_generate_on_a_real_full_disk_is_one_line_and_the_rerun_after_freeing_space_finishes(server, tmp_path,
                                                                                              reference):
    """A tmpfs with room for what a run writes before its first request, the store's 4 MiB reserve and 8 kB: the
    instructions' store fills up while its requests are in flight; then the disk grows (space freed)."""
    server.latency = 0.05
    disk, kept = tmp_path / "disk", tmp_path / "kept"
    disk.mkdir()
    cmd = " ".join([sys.executable, str(ROOT / "generate.py"), *tiny(disk / "run", server.base_url),
                    f"hydra.run.dir={disk / 'run'}"])
    used = f"$(df -k --output=used {disk} | tail -1)"
    script = (f"mount -t tmpfs -o size=64m tmpfs {disk} && {cmd} stage=topics >/dev/null && "
              f"mount -o remount,size=$(({used} + 4096 + 8))k {disk} && {{ {cmd} 2>{tmp_path / 'first.err'}; "
              f"echo $? > {tmp_path / 'first.rc'}; mount -o remount,size=64m {disk} && {cmd} 2>{tmp_path / 'second.err'}; "
              f"echo $? > {tmp_path / 'second.rc'}; cp -r {disk / 'run'} {kept}; }}")
    env = {**os.environ, "OPENAI_API_KEY": KEY, "PYTHONPATH": str(ROOT / "src")}
    subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script], env=env, timeout=120,
                   check=True)
    first = (tmp_path / "first.err").read_text()
    assert (tmp_path / "first.rc").read_text().strip() == "2" and "Traceback" not in first, first[-2000:]
    (line,) = [x for x in first.splitlines() if x.startswith("error:")]
    assert line.startswith(f"error: the disk holding {disk / 'run' / 'requests'} is full (") and "needed to finish" in line
    assert "finished requests are stored in" in line and " 0 finished" not in line  # it filled with replies in flight
    assert (tmp_path / "second.rc").read_text().strip() == "0", (tmp_path / "second.err").read_text()[-2000:]
    assert max(server.completed().values()) == 1
    assert (kept / "d_all.jsonl").read_bytes() == reference
