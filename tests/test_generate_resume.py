"""Kill generate.py with SIGKILL mid-run, run the same command again: the same dataset, nothing lost,
no finished request sent again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from tests.helpers.generate_kit import KEY, ROOT, assert_no_key, run, tiny
from tests.helpers.openai_server import key_of


def _lines(path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def _stored_keys(out) -> set[str]:
    keys = set()
    for name in ("instructions", "responses"):
        p = out / "requests" / f"{name}.jsonl"
        if p.exists():
            for line in p.read_text().splitlines():
                keys.add(key_of(json.loads(line)["request"]))
    return keys


@pytest.mark.slow
def test_sigkill_then_rerun_gives_the_uninterrupted_dataset(server, tmp_path, monkeypatch):
    server.latency = 0.03
    server.p429, server.p500, server.retry_after = 0.1, 0.05, 0.05
    overrides = tiny(tmp_path / "killed", server.base_url, "size.self_instruct_without_topic=40",
                     "size.self_instruct_with_topic=20", "teacher.concurrency=4", "hydra.run.dir=" + str(tmp_path / "h"))
    env = {**os.environ, "OPENAI_API_KEY": KEY, "PYTHONPATH": str(ROOT / "src")}
    cmd = [sys.executable, str(ROOT / "generate.py"), *overrides]
    out = tmp_path / "killed"
    # kill once while instructions are generated, once while responses are, then finish
    snapshots = []
    for store, at_least in (("instructions", 3), ("responses", 15)):
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        path = out / "requests" / f"{store}.jsonl"
        deadline = time.time() + 60
        while _lines(path) < at_least and proc.poll() is None and time.time() < deadline:
            time.sleep(0.005)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        snapshots.append((_stored_keys(out), time.time()))
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    # a request finished before a kill is never sent again by a later run
    for stored, killed_at in snapshots:
        assert stored and not ({k for t, k, s in server.log if t > killed_at} & stored)
    # only requests in flight at a kill can have been answered twice
    twice = {k for k, n in server.completed().items() if n > 1}
    assert len(twice) <= 2 * 4

    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    ref = tmp_path / "uninterrupted"
    run(tiny(ref, server.base_url, "size.self_instruct_without_topic=40", "size.self_instruct_with_topic=20"))
    assert (out / "d_all.jsonl").read_bytes() == (ref / "d_all.jsonl").read_bytes()
    assert (out / "instructions.jsonl").read_bytes() == (ref / "instructions.jsonl").read_bytes()
    assert len((out / "d_all.jsonl").read_text().splitlines()) == 60
    assert_no_key(out)
    assert_no_key(tmp_path / "h")


@pytest.mark.slow
def test_ctrl_c_says_what_is_stored_and_the_same_command_continues(server, tmp_path):
    server.latency = 0.05
    out = tmp_path / "out"
    overrides = tiny(out, server.base_url, "size.self_instruct_without_topic=40", "size.self_instruct_with_topic=0",
                     "teacher.concurrency=2", "hydra.run.dir=" + str(tmp_path / "h"))
    env = {**os.environ, "OPENAI_API_KEY": KEY, "PYTHONPATH": str(ROOT / "src")}
    cmd = [sys.executable, str(ROOT / "generate.py"), *overrides]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    path = out / "requests" / "responses.jsonl"
    deadline = time.time() + 90
    while _lines(path) < 5 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err, err[-2000:]
    line = err.strip().splitlines()[-1]
    stored = _lines(out / "requests" / "instructions.jsonl") + _lines(path)
    assert line == (f"interrupted: {stored} finished requests are stored in {out / 'requests'}; the same command "
                    "continues from there")
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and len((out / "d_all.jsonl").read_text().splitlines()) == 40, done.stderr[-2000:]


def test_a_second_generate_on_the_same_out_dir_is_refused(tmp_path, monkeypatch):
    from lamini_lm.distill.pipeline import run as pipeline_run
    from lamini_lm.errors import UserError
    from lamini_lm.run_lock import RunLock
    from tests.helpers.generate_kit import compose

    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    cfg = compose([f"out_dir={tmp_path}", "size=smoke", "stage=assemble"])
    with RunLock(tmp_path, "out_dir"):  # another process's hold looks the same (tests/test_train_ownership.py)
        with pytest.raises(UserError, match=rf"{tmp_path} is in use by PID {os.getpid()} .*\(out_dir=\.\.\.\)"):
            pipeline_run(cfg)
