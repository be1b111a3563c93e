"""A Ctrl-C or SIGTERM while an entry point is still starting (imports, config checks) is one line and 128 + the
signal, no traceback, and leaves no run folder (stopping.while_starting). Each stage's own handling of the signals
once work has begun is tested with that stage (test_train_faults.py, test_generate_faults.py, test_eval_faults.py)."""

import os
import signal
import subprocess
import sys
import time

import pytest
from tests.helpers.run import ROOT


@pytest.mark.parametrize("signum, after", [(signal.SIGINT, 1.0), (signal.SIGTERM, 2.5)])
def test_a_signal_while_starting_is_one_line_and_leaves_nothing(tmp_path, signum, after):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    # from tmp_path: the run folder (outputs/train/<time>) would be made there. train.py spends ~8 s (measured) on
    # imports, config checks and loading before its first step: 1 s in is in the imports or the checks, 2.5 s in
    # mostly inside the Hydra job, its folder made
    proc = subprocess.Popen([sys.executable, str(ROOT / "train.py"), "model=tiny_gpt2"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(after)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, err[-2000:]
    word = "interrupted" if signum == signal.SIGINT else "terminated"
    assert err.strip().splitlines() == [f"{word}: outside any work, nothing half-written (what finished before is kept)"]
    # at most the empty outputs/train/ above run folders, as a refused command leaves it
    assert not [p for p in tmp_path.rglob("*") if p.is_file() or len(p.relative_to(tmp_path).parts) > 2]
