"""What a cluster does to a training run: SIGINT and SIGTERM to the process or to its whole group, SIGKILL, during a
checkpoint write, a disk that fills, a rerun of a finished run. After each, the run folder alone continues it, and the
final weights equal an uninterrupted run's bit for bit, with every step's row in metrics.csv once."""

import csv
import json
import os
import subprocess
import sys

import pytest
import torch

from lamini_lm.run_lock import LOCK_FILE
from tests.helpers.run import ROOT

# 2 epochs x 5 optimizer steps of 2 micro-batches (42 training records: 2 left out of each epoch); last.ckpt every 3
# steps (3, 6, 9) and at each epoch's end (5, 10); one DataLoader worker, which a signal to the group reaches too;
# dropout on (tiny_gpt2), so the RNG state matters
COMMON = ["model=tiny_gpt2", "data.limit=50", "data.val_size=8", "global_batch_size=8", "micro_batch_size=4",
          "trainer.max_epochs=2", "logger=csv", "callbacks.sample_generations.num_samples=0",
          "callbacks.last_checkpoint.every_n_train_steps=3", "+trainer.deterministic=true", "data.num_workers=1",
          # short rows and a given FLOP roof (none measured at each start): seconds less per process
          "data.max_source_length=48", "data.max_target_length=32", "callbacks.throughput.peak_flops=1e12"]
# bit-identical weights need the same kernels and thread count in every run (tests/test_train_distributed.py)
THREADS = str(torch.get_num_threads())


def _fault(n: int, kind: str, **params) -> list[str]:
    """Fault number ``n`` of a run (tests/helpers/kill.py), in place of the one before: the run folder keeps the
    overrides it was started with, and each rerun adds its own."""
    out = [f"~callbacks.fault{n - 1}"] if n > 1 else []
    out.append(f"+callbacks.fault{n}._target_=tests.helpers.kill.{kind}")
    return out + [f"+callbacks.fault{n}.{k}={v}" for k, v in params.items()]


def _train(*overrides: str) -> subprocess.CompletedProcess:
    """train.py as a shell starts it: the leader of its own process group (which a group signal reaches whole)."""
    env = {**os.environ, "OMP_NUM_THREADS": THREADS, "MKL_NUM_THREADS": THREADS}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "train.py", *overrides], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300, start_new_session=True)


def _weights(run):
    from safetensors.torch import load_file

    return load_file(run / "hf" / "model.safetensors")


def _history(run):
    """metrics.csv's rows without the timings (which differ run to run)."""
    with open(run / "csv" / "metrics.csv", newline="") as f:
        return [{k: v for k, v in row.items() if not k.startswith("perf/")} for row in csv.DictReader(f)]


def _step(run):
    return torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True, mmap=True)["global_step"]


def _last_line(res):
    assert "Traceback" not in res.stderr, res.stderr[-3000:]
    return res.stderr.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    run = tmp_path_factory.mktemp("straight")
    res = _train(*COMMON, f"hydra.run.dir={run}")
    assert res.returncode == 0, res.stderr[-3000:]
    assert ("2 of the 42 training records do not fill a last global batch of 8: each epoch leaves 2 out" in
            (run / "train.log").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["data/left_out_per_epoch"] == 2 and metrics["data/val_duplicates_of_train"] == 0
    return run


@pytest.mark.slow
@pytest.mark.timeout(900)  # eight fresh train.py processes, one after the other
def test_a_run_stopped_every_way_a_cluster_stops_it_ends_as_if_never_stopped(straight, tmp_path):
    run = tmp_path / "run"
    again = f"continue with `python train.py hydra.run.dir={run}`"
    last = run / "checkpoints" / "last.ckpt"

    # Ctrl-C in the terminal (to the whole group: the DataLoader worker too) while step 3 runs: it finishes and is
    # saved, the run stops with 130
    res = _train(*COMMON, f"hydra.run.dir={run}", *_fault(1, "KillAtStep", step=2, sig="SIGINT", group="true"))
    assert res.returncode == 130, res.stderr[-3000:]
    assert _last_line(res) == f"interrupted: saved {last} at step 3; {again}"
    assert _step(run) == 3 and not (run / "hf").exists()

    # SIGTERM to the group during the validation at epoch 1's end: saved after it
    res = _train(f"hydra.run.dir={run}", *_fault(2, "KillAtStep", step=5, sig="SIGTERM", group="true",
                                                 during="validation"))
    assert res.returncode == 143, res.stderr[-3000:]
    assert f"note: {run} was started with model=tiny_gpt2 data.limit=50" in res.stderr  # the run folder's overrides
    assert f"note: resuming {run} from last.ckpt (step 3)" in res.stderr
    assert _last_line(res) == f"terminated: saved {last} at step 5; {again}"

    # the disk fills while step 6's checkpoint is written: one line, exit 2, the step-5 checkpoint kept whole
    res = _train(f"hydra.run.dir={run}", *_fault(3, "FailCheckpointWrite", step=6, fault="full"))
    line = _last_line(res)
    assert res.returncode == 2 and line.startswith(f"error: the disk holding {last.parent} is full"), res.stderr[-3000:]
    assert "last.ckpt (" in line and "bytes) was not written" in line and again in line
    assert _step(run) == 5 and [p.name for p in last.parent.glob("last.ckpt*")] == ["last.ckpt"]

    # SIGKILL while step 6's checkpoint is written: the temporary file is left, last.ckpt is not touched
    res = _train(f"hydra.run.dir={run}", *_fault(4, "FailCheckpointWrite", step=6))
    assert res.returncode == -9 and _step(run) == 5
    assert [p.name for p in last.parent.glob("last.ckpt.tmp*")]

    # SIGTERM to the process alone as the last step starts: the run ends its last epoch, saves, and stops before the
    # export
    res = _train(f"hydra.run.dir={run}", *_fault(5, "KillAtStep", step=9, sig="SIGTERM"))
    assert res.returncode == 143 and _last_line(res) == f"terminated: saved {last} at step 10; {again}"
    assert not (run / "hf").exists() and not list(last.parent.glob("*.tmp*"))  # the torn temporary file is gone

    res = _train(f"hydra.run.dir={run}", "~callbacks.fault5")
    assert res.returncode == 0, res.stderr[-3000:]
    a, b = _weights(straight), _weights(run)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert _history(run) == _history(straight)  # every step's row once, val/loss of both epochs included
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["global_step"] == 10 and metrics["val/loss"] > 0 and metrics["perf/padding_share"] < 1

    # a rerun of the finished run changes nothing and says how to train longer
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file() and ".hydra" not in p.parts}
    res = _train(f"hydra.run.dir={run}")
    assert res.returncode == 0, res.stderr[-3000:]
    assert _last_line(res) == (f"note: {run} has finished training (2 epochs, step 10) and its export is {run / 'hf'}; "
                               f"nothing to do. To train it longer: python train.py hydra.run.dir={run} "
                               "trainer.max_epochs=3")
    after = {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file() and ".hydra" not in p.parts}
    assert {p.name for p in after if after[p] != before.get(p)} <= {"train.log", LOCK_FILE}  # Hydra's log, the owner


@pytest.mark.slow
def test_resuming_with_another_seed_stops_naming_the_keys(straight):
    # the finished run asked for one more epoch (no recipe change) but with another seed (one): refused, its .hydra/ kept
    saved = (straight / ".hydra" / "overrides.yaml").read_text()
    res = _train(f"hydra.run.dir={straight}", "seed=7", "trainer.max_epochs=3")
    assert res.returncode == 2 and "seed: 42 -> 7" in _last_line(res) and "max_epochs" not in _last_line(res)
    assert (straight / ".hydra" / "overrides.yaml").read_text() == saved


def test_a_checkpoint_is_written_whole_and_a_full_disk_is_one_line(tmp_path, monkeypatch):
    import errno

    from lamini_lm.files import DiskFull
    from lamini_lm.training.saving import AtomicCheckpointIO

    io = AtomicCheckpointIO(tmp_path)
    last = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"global_step": 5, "w": torch.ones(3)}, last)
    assert torch.load(last, weights_only=True)["global_step"] == 5

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)  # the data is written, its flush to disk fails
    with pytest.raises(DiskFull) as e:
        io.save_checkpoint({"global_step": 6, "w": torch.ones(3)}, last)
    assert str(e.value).startswith(f"the disk holding {last.parent} is full")
    assert "bytes) was not written and the checkpoints already there are unchanged" in str(e.value)
    assert str(e.value).endswith(f"continue with `python train.py hydra.run.dir={tmp_path}`")
    assert torch.load(last, weights_only=True)["global_step"] == 5 and os.listdir(last.parent) == ["last.ckpt"]


def test_the_history_keeps_the_rows_of_the_steps_before_the_resume(tmp_path):
    from lightning.pytorch.loggers import CSVLogger

    from lamini_lm.training.history import keep_history

    (tmp_path / "csv").mkdir()
    (tmp_path / "csv" / "metrics.csv").write_text("epoch,step,train/loss\n0,0,3.0\n0,1,2.5\n0,2,2.0\n")
    logger = CSVLogger(tmp_path, name="csv", version="")
    keep_history([logger], 2)  # resumed at step 2: the row of step 2 is written again by the resumed run
    logger.log_metrics({"train/loss": 2.0, "val/loss": 2.2}, step=2)
    logger.save()
    assert (tmp_path / "csv" / "metrics.csv").read_text().splitlines() == [
        "epoch,step,train/loss,val/loss", "0,0,3.0,", "0,1,2.5,", ",2,2.0,2.2"]


@pytest.mark.slow
def test_a_second_signal_stops_at_once(tmp_path):
    code = ("import os, signal, sys; from pathlib import Path; from lamini_lm.training.stop import StopOnSignal\n"
            "stop = StopOnSignal(Path(sys.argv[1]))\n"
            "with stop.handling():\n"
            "    stop._when = 'step'  # training: the first signal waits for the step under way\n"
            "    os.kill(os.getpid(), signal.SIGTERM)\n"
            "    print('asked', stop.requested, flush=True)\n"
            "    os.kill(os.getpid(), signal.SIGTERM)\n"
            "    print('still running', flush=True)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    res = subprocess.run([sys.executable, "-c", code, str(tmp_path / "last.ckpt")], env=env, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == -15 and res.stdout == "asked 15\n", res.stderr
    assert res.stderr.splitlines() == [
        (f"SIGTERM: finishing the optimizer step under way to save it in {tmp_path / 'last.ckpt'} (send it again to "
         "stop at once)"),
        ("terminated: a second SIGTERM, stopping at once; the checkpoints on disk are what `python train.py "
         "hydra.run.dir=<run>` continues from")]


def test_a_resumed_run_continues_its_wandb_run(tmp_path):
    from lamini_lm.training.history import wandb_resume

    assert wandb_resume(tmp_path) == {}  # a new run
    (tmp_path / "wandb").mkdir()
    (tmp_path / "wandb" / "latest-run").symlink_to("offline-run-20260101_120000-a6tkut5i")
    assert wandb_resume(tmp_path) == {"id": "a6tkut5i", "resume": "allow"}
