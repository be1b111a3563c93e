"""Run an entry point the way a user does: a fresh process, offline, in the repository root."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_entry(script: str, *overrides: str, timeout: int = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """``env`` adds to (or overrides) this process's environment."""
    env = {**os.environ, **(env or {})}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, script, *overrides], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def fails_with(res: subprocess.CompletedProcess, *fragments: str) -> str:
    """Assert what an entry point does with a user's mistake: exit 2, one `error:` line holding every fragment,
    no traceback. Returns that line."""
    assert res.returncode == 2, res.stderr[-2000:]
    lines = [x for x in res.stderr.strip().splitlines() if x.startswith("error:")]
    assert len(lines) == 1, res.stderr[-2000:]
    assert "Traceback" not in res.stderr
    for f in fragments:
        assert f in lines[0], lines[0]
    return lines[0]


def run_script_inprocess(script: str, *argv: str, capfd, monkeypatch, cwd: Path) -> subprocess.CompletedProcess:
    """``script`` run in this process as ``python script *argv`` would run it (``runpy``, as ``__main__``), from
    ``cwd``: its exit code and what it printed, as ``run_entry`` gives them, without the seconds a fresh process
    spends importing. An exception that escapes becomes what Python would print: a traceback and exit 1.

    Hydra's global state (GlobalHydra, HydraConfig, JobRuntime), the environment, the root logger, the signal handlers
    and the working directory are restored afterwards, so cases can follow each other, and other tests follow them, in one process."""
    import logging
    import runpy
    import signal
    import traceback

    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.utils import JobRuntime

    from lamini_lm.run_lock import release_held

    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)  # Hydra's traceback switch: the user's view is without it
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, "argv", [str(ROOT / script), *argv])
    env, root = dict(os.environ), logging.getLogger()
    handlers, level = root.handlers[:], root.level
    hydra_cfg, job_runtime = HydraConfig.instance().cfg, JobRuntime.instance().conf  # the run sets both
    # the script's while_starting() takes SIGINT/SIGTERM: given back, so that this (xdist worker) process ends as before
    signals = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    GlobalHydra.instance().clear()
    capfd.readouterr()  # only what the script prints
    code = 0
    try:
        runpy.run_path(str(ROOT / script), run_name="__main__")
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if isinstance(e.code, str):
            print(e.code, file=sys.stderr)
    except Exception:  # noqa: BLE001 - what the interpreter would do with it
        traceback.print_exc()
        code = 1
    finally:
        # a library imported during the run (lightning) may have bound a log handler to this test's captured
        # stream, closed after the test: point it at the process's own stream, which capfd captures too
        own = {id(sys.stdout): sys.__stdout__, id(sys.stderr): sys.__stderr__}
        for logger in [root, *logging.Logger.manager.loggerDict.values()]:
            for h in getattr(logger, "handlers", []):
                if isinstance(h, logging.StreamHandler) and "stream" in vars(h) and id(h.stream) in own:
                    h.setStream(own[id(h.stream)])
        for s, h in signals.items():
            signal.signal(s, h)
        release_held()  # the run folders the script took at its start, as its process's end would
        GlobalHydra.instance().clear()
        HydraConfig.instance().cfg, JobRuntime.instance().conf = hydra_cfg, job_runtime
        os.environ.clear()
        os.environ.update(env)
        for h in root.handlers[:]:
            if h not in handlers:
                root.removeHandler(h)
                h.close()
        for h in handlers:
            if h not in root.handlers:
                root.addHandler(h)
        root.setLevel(level)
    out, err = capfd.readouterr()
    return subprocess.CompletedProcess([script, *argv], code, out, err)
