"""What a cluster does to exports and evaluations: an export killed while it is written, or cut short afterwards, is
refused by evaluate.py and inference.load in one line naming what is missing; an evaluation stopped by SIGTERM
says what it kept, and the command it names finishes it with the uninterrupted run's summary."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from tests.helpers.eval_compose import compose, tiny_root
from tests.helpers.run import ROOT, fails_with, run_script_inprocess

REDO = "export it again by running train.py on its run (python train.py hydra.run.dir={run})"


def refused_by_both(folder, capfd, monkeypatch, tmp_path, *fragments: str) -> None:
    """evaluate.py model=<folder> and inference.load(<folder>): exit 2 / one UserError, each holding ``fragments``."""
    from lamini_lm import inference
    from lamini_lm.errors import UserError

    res = run_script_inprocess("evaluate.py", f"model={folder}", "eval=lamini15_local", "wandb.enabled=false",
                               f"hydra.run.dir={tmp_path / 'eval'}", capfd=capfd, monkeypatch=monkeypatch, cwd=tmp_path)
    fails_with(res, *fragments)
    with pytest.raises(UserError) as e:
        inference.load(folder)
    assert all(f in str(e.value) for f in fragments), str(e.value)


@pytest.mark.slow
def test_an_export_killed_while_written_leaves_no_hf_folder_and_is_refused(tmp_path, capfd, monkeypatch):
    run = tmp_path / "run"
    # SIGKILL once the weights are written, before the tokenizer: what a node loss does mid-export
    code = ("import os, signal\n"
            "from transformers import PreTrainedTokenizerBase\n"
            "PreTrainedTokenizerBase.save_pretrained = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)\n"
            "from lamini_lm.evaluation.tiny import make_export\n"
            f"make_export({str(run / 'hf')!r}, 'gpt2')\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=120)
    assert res.returncode == -signal.SIGKILL, res.stderr[-2000:]
    (partial,) = run.glob("hf.tmp-*")
    assert (partial / "model.safetensors").exists() and not (run / "hf").exists()
    refused_by_both(run / "hf", capfd, monkeypatch, tmp_path, f"the export to {run / 'hf'} was interrupted "
                    f"({partial.name} is incomplete and there is no hf/)", REDO.format(run=run))


@pytest.mark.parametrize("case, fragments", [
    ("cut short", ["model.safetensors has ", " bytes, its marker says "]),
    ("a file gone", ["tokenizer.json is missing"]),
    ("an old export cut short", ["model.safetensors is cut short (", " bytes of "]),
    ("an old export of three files", ["README.md is missing, and with it the export's marker EXPORT_COMPLETE.json "
                                      "(the export was interrupted)"]),
])
def test_an_incomplete_or_cut_short_export_is_refused_in_one_line(case, fragments, tmp_path, tmp_path_factory, capfd,
                                                                  monkeypatch):
    run = tmp_path / "run"
    shutil.copytree(tiny_root(tmp_path_factory) / "gpt2" / "hf", run / "hf")
    (run / ".hydra").mkdir()  # a training run's folder
    hf = run / "hf"
    if case.startswith("an old export"):  # written before the marker existed
        (hf / "EXPORT_COMPLETE.json").unlink()
    if case.endswith("cut short"):
        with open(hf / "model.safetensors", "r+b") as f:  # a kill or a full disk halfway through the tensors
            f.truncate((hf / "model.safetensors").stat().st_size // 2)
    if case == "a file gone":
        (hf / "tokenizer.json").unlink()
    if case == "an old export of three files":
        for p in hf.iterdir():
            if p.name not in ("config.json", "generation_config.json", "model.safetensors"):
                p.unlink()
    refused_by_both(hf, capfd, monkeypatch, tmp_path, f"{hf} is not a complete model export: ", *fragments,
                    REDO.format(run=run))


def test_an_export_from_before_the_marker_loads_when_whole(tmp_path, tmp_path_factory):
    from lamini_lm import inference
    from lamini_lm.evaluation import model_refs

    hf = tmp_path / "run" / "hf"
    shutil.copytree(tiny_root(tmp_path_factory) / "gpt2" / "hf", hf)
    (hf / "EXPORT_COMPLETE.json").unlink()
    assert inference.load(hf)[3].name == "alpaca"
    assert model_refs.resolve(str(hf))[0].info["weights_sha256"]


def _cached(db) -> int:
    try:
        with sqlite3.connect(db, timeout=0.1) as c:
            return c.execute("select count(*) from unnamed").fetchone()[0]
    except sqlite3.Error:  # not created yet, or being written
        return 0


@pytest.mark.slow
def test_an_evaluation_stopped_by_sigterm_is_finished_by_the_command_it_names(tmp_path, tmp_path_factory, capfd,
                                                                              monkeypatch):
    from lamini_lm.evaluation.run import run_lm_eval

    export = tiny_root(tmp_path_factory) / "gpt2" / "hf"
    args = [f"models={export}", "eval=lamini15_local", "tasks=[SST]", "lm_eval.limit=24"]
    (reference,) = run_lm_eval(compose(tmp_path / "uninterrupted", *args))
    out = tmp_path / "stopped"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen([sys.executable, "evaluate.py", *args, "wandb.enabled=false", f"hydra.run.dir={out}"],
                            cwd=ROOT, env=env, text=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while proc.poll() is None and time.time() < deadline and \
            not any(_cached(db) for db in out.glob("*/lm_cache_*.db")):
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read()[-2000:]
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "Traceback" not in err, err[-2000:]
    (db,) = out.glob("gpt2/lm_cache_*.db")  # a journal may sit beside it, left by the kill
    assert err.strip().splitlines()[-1] == (f"terminated: lm-eval's answered requests are cached in {db}; "
                                            f"`python evaluate.py hydra.run.dir={out}` continues from there")
    res = run_script_inprocess("evaluate.py", f"hydra.run.dir={out}", capfd=capfd, monkeypatch=monkeypatch, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-2000:]
    assert json.loads((out / "gpt2" / "summary.json").read_text())["tasks"] == reference["tasks"]
