"""One owner per run folder, and a resume that notices a changed recipe."""

import json
import os
import signal
import subprocess
import sys

import pytest

from lamini_lm.errors import UserError
from lamini_lm.run_lock import LOCK_FILE, RunLock, holder
from lamini_lm.training import recipe
from tests.helpers.run import run_entry

HOLD = "import sys, time; from lamini_lm.run_lock import RunLock\nwith RunLock(sys.argv[1], 'x'):\n    print('held', flush=True); time.sleep(60)"


def _hold(folder):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_owner_is_refused_and_a_killed_owner_blocks_nothing(tmp_path):
    proc = _hold(tmp_path)
    try:
        assert holder(tmp_path)["pid"] == proc.pid
        with pytest.raises(UserError, match=rf"is in use by PID {proc.pid} on .* since .*hydra.run.dir=\.\.\."):
            with RunLock(tmp_path, "hydra.run.dir"):
                pass
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert (tmp_path / LOCK_FILE).exists() and holder(tmp_path) is None  # the kernel dropped the lock
    with RunLock(tmp_path, "hydra.run.dir"):
        assert holder(tmp_path)["pid"] == os.getpid()
    assert holder(tmp_path) is None


def test_train_py_on_a_held_folder_stops_before_writing(tmp_path):
    proc = _hold(tmp_path)
    try:
        res = run_entry("train.py", "model=tiny_gpt2", f"hydra.run.dir={tmp_path}", "logger=csv", timeout=120)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith(f"error: {tmp_path} is in use by PID {proc.pid}")
    assert not (tmp_path / ".hydra").exists()  # nothing of the second run was written


RECORD = {"model": {"name": "tiny_gpt2", "lr": 0.002}, "data": {"path": "d.jsonl", "num_workers": 2}, "seed": 42,
          "global_batch_size": 32, "micro_batch_size": 8, "optim": {"lr": 0.002},
          "trainer": {"precision": "32-true", "devices": 1, "max_epochs": 6}, "logger": {"csv": {}}}


def test_a_resume_with_a_changed_recipe_is_refused_unless_allowed(tmp_path):
    recipe.check(tmp_path, RECORD, None, False)  # a new run records its recipe
    later = {**RECORD, "trainer": {**RECORD["trainer"], "max_epochs": 9}, "logger": {},
             "data": {**RECORD["data"], "num_workers": 0}}
    recipe.check(tmp_path, later, "last.ckpt", False)  # more epochs, other logging, workers: the same recipe
    changed = {**RECORD, "seed": 7, "global_batch_size": 16}
    with pytest.raises(UserError, match=r"global_batch_size: 32 -> 16; seed: 42 -> 7; .*allow_recipe_change=true"):
        recipe.check(tmp_path, changed, "last.ckpt", False)
    assert json.loads((tmp_path / "recipe.json").read_text())["seed"] == 42  # untouched
    recipe.check(tmp_path, changed, str(tmp_path / "missing.ckpt"), True)  # accepted: recorded
    (entry,) = [json.loads(x) for x in (tmp_path / "recipe_history.jsonl").read_text().splitlines()]
    assert entry["changed"] == {"global_batch_size": [32, 16], "seed": [42, 7]}
    assert json.loads((tmp_path / entry["earlier_recipe"]).read_text())["seed"] == 42
    assert json.loads((tmp_path / "recipe.json").read_text())["seed"] == 7


def _hydra(folder, seed):
    (folder / ".hydra").mkdir(parents=True, exist_ok=True)
    (folder / ".hydra" / "config.yaml").write_text(f"seed: {seed}\n")


def test_a_refused_resume_leaves_the_runs_own_config_and_an_accepted_one_keeps_it(tmp_path):
    _hydra(tmp_path, 42)
    recipe.check(tmp_path, RECORD, None, False)
    changed = {**RECORD, "seed": 7}
    for allow in (False, True):
        recipe.keep_earlier_config({"hydra.run.dir": tmp_path})  # train.py, before Hydra writes
        _hydra(tmp_path, 7)  # what Hydra then writes for the resuming command
        if not allow:
            with pytest.raises(UserError, match="seed: 42 -> 7"):
                recipe.check(tmp_path, changed, "last.ckpt", False)
            assert (tmp_path / ".hydra" / "config.yaml").read_text() == "seed: 42\n"  # the run's own, put back
        else:
            recipe.check(tmp_path, changed, "last.ckpt", True)
    (entry,) = [json.loads(x) for x in (tmp_path / "recipe_history.jsonl").read_text().splitlines()]
    assert (tmp_path / entry["earlier_config"] / "config.yaml").read_text() == "seed: 42\n"  # kept beside recipe.0
    assert (tmp_path / ".hydra" / "config.yaml").read_text() == "seed: 7\n"
    assert not (tmp_path / recipe.EARLIER_CONFIG).exists()


def test_a_resume_that_stops_before_its_recipe_is_checked_leaves_the_runs_own_config(tmp_path):
    code = ("import sys; from pathlib import Path; from lamini_lm.training.recipe import keep_earlier_config\n"
            "run = Path(sys.argv[1]); keep_earlier_config({'hydra.run.dir': run})\n"
            "(run / '.hydra' / 'config.yaml').write_text('model: {lr: fast}\\n')\nsys.exit(2)")  # Hydra wrote, then a bad value
    _hydra(tmp_path, 42)
    assert subprocess.run([sys.executable, "-c", code, str(tmp_path)]).returncode == 2
    assert (tmp_path / ".hydra" / "config.yaml").read_text() == "seed: 42\n"
    assert not (tmp_path / recipe.EARLIER_CONFIG).exists()


def test_a_checkpoint_from_another_run_folder_is_compared_with_that_runs_recipe(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"  # run folders exist when the recipe is checked
    old.mkdir(), new.mkdir()
    recipe.check(old, RECORD, None, False)
    ckpt = str(old / "checkpoints" / "last.ckpt")
    with pytest.raises(UserError, match=rf"{ckpt} was trained with another recipe .*seed: 42 -> 7"):
        recipe.check(new, {**RECORD, "seed": 7}, ckpt, False)
    assert not (new / "recipe.json").exists()
    recipe.check(new, RECORD, ckpt, False)  # the same recipe in a new folder: recorded there
    assert json.loads((new / "recipe.json").read_text()) == json.loads((old / "recipe.json").read_text())


def test_a_folder_named_on_the_command_line_is_held_from_before_hydra_writes(tmp_path):
    from lamini_lm.run_lock import check_run_folder, release_held

    code = ("import sys, time; from lamini_lm.run_lock import check_run_folder\n"
            "check_run_folder(('hydra.run.dir',), sys.argv[1:])\nprint('held', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code, f"hydra.run.dir={tmp_path}"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        res = run_entry("train.py", "model=tiny_gpt2", f"hydra.run.dir={tmp_path}", "logger=csv", timeout=120)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert res.returncode == 2 and f"in use by PID {proc.pid}" in res.stderr and not (tmp_path / ".hydra").exists()
    # in one process the folder stays held (RunLock inside the run reuses it) until the process lets it go
    check_run_folder(("hydra.run.dir",), [f"hydra.run.dir={tmp_path}"])
    with RunLock(tmp_path, "hydra.run.dir"):
        assert holder(tmp_path)["pid"] == os.getpid()
    assert holder(tmp_path)["pid"] == os.getpid()
    release_held()
    assert holder(tmp_path) is None


def test_the_lock_file_records_the_command_without_secrets(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["generate.py", f"out_dir={tmp_path}", "+teacher.openai_key=abc123"])
    with RunLock(tmp_path, "out_dir"):
        command = holder(tmp_path)["command"]
    assert "abc123" not in command and "+teacher.openai_key=<redacted>" in command


def test_a_run_folder_named_alone_gets_the_overrides_it_was_started_with(tmp_path):
    from lamini_lm.rerun import with_own_overrides

    run = tmp_path / "run"
    assert with_own_overrides([f"hydra.run.dir={run}"]) == [f"hydra.run.dir={run}"]  # a new run: nothing to add
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text("- model=tiny_gpt2\n- trainer.max_epochs=1\n- +trainer.deterministic=true\n")
    assert with_own_overrides([f"hydra.run.dir={run}", "trainer.max_epochs=3", "trainer.deterministic=false"]) == [
        "model=tiny_gpt2", f"hydra.run.dir={run}", "trainer.max_epochs=3", "trainer.deterministic=false"]
    assert with_own_overrides(["-m", f"hydra.run.dir={run}"]) == ["-m", f"hydra.run.dir={run}"]  # a sweep: its own
    # a deletion the run was resumed with is saved too: given again, it is one key, not two
    (run / ".hydra" / "overrides.yaml").write_text("- model=tiny_gpt2\n- ~callbacks.kill\n")
    assert with_own_overrides([f"hydra.run.dir={run}", "~callbacks.kill"]) == [
        "model=tiny_gpt2", f"hydra.run.dir={run}", "~callbacks.kill"]


def _ckpt(path, step):
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {"w": torch.ones(64, 64)}, "global_step": step}, path)
    return path


def test_only_last_ckpt_resumes_on_its_own_and_anything_else_is_said(tmp_path, capsys):
    from lamini_lm.training import checkpoints

    best = _ckpt(tmp_path / "checkpoints" / "best-step4.ckpt", 4)
    last = _ckpt(tmp_path / "checkpoints" / "last.ckpt", 6)
    stale = tmp_path / "checkpoints" / "last.ckpt.tmp-123"  # a kill while a checkpoint was written
    stale.write_bytes(b"half")
    assert checkpoints.resolve("auto", tmp_path) == str(last) and not stale.exists()
    assert capsys.readouterr().err == f"note: resuming {tmp_path} from last.ckpt (step 6)\n"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])  # torn by an older version's writer
    assert checkpoints.resolve("auto", tmp_path) is None  # never a silent fallback to best-*
    assert capsys.readouterr().err == (f"note: {last} cannot be read: starting fresh (to continue from its "
                                       f"best-step4.ckpt instead: ckpt_path={best})\n")
    last.unlink()
    assert checkpoints.resolve("auto", tmp_path) is None
    assert capsys.readouterr().err.startswith(f"note: {tmp_path} has no last.ckpt: starting fresh (to continue")
    assert checkpoints.resolve(str(best), tmp_path) == str(best)  # named, it resumes
    best.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match=r"ckpt_path=.*best-step4.ckpt is not a checkpoint train.py can resume from"):
        checkpoints.resolve(str(best), tmp_path)
    capsys.readouterr()
    assert checkpoints.resolve("auto", tmp_path / "fresh") is None and checkpoints.resolve(None, tmp_path) is None
    assert capsys.readouterr().err == ""  # a new run says nothing


def test_a_checkpoint_says_how_far_its_run_had_come(tmp_path):
    import torch

    from lamini_lm.training import checkpoints

    path = tmp_path / "last.ckpt"
    torch.save({"state_dict": {}, "global_step": 10, "callbacks": {checkpoints.STATE: {"epochs_done": 2}}}, path)
    resume = checkpoints.read(path)
    assert (resume.step, resume.epochs_done) == (10, 2)
    assert resume.reached(2, -1) and not resume.reached(3, -1) and resume.reached(3, 10) and not resume.reached(-1, -1)
    _ckpt(path, 10)  # an older version's checkpoint does not say its epochs: never taken as finished by them
    assert not checkpoints.read(path).reached(2, -1)


def test_a_run_folder_that_cannot_be_made_is_one_line_before_hydra(tmp_path, capsys):
    from lamini_lm.run_lock import check_run_folder

    (tmp_path / "a_file").write_text("x")
    with pytest.raises(SystemExit) as e:
        check_run_folder(("hydra.run.dir", "out_dir"), [f"out_dir={tmp_path / 'a_file' / 'out'}"])
    assert e.value.code == 2
    assert capsys.readouterr().err.strip() == (f"error: {tmp_path / 'a_file'} is a file, so the run cannot make the "
                                               f"folder {tmp_path / 'a_file' / 'out'}: choose another (out_dir=...)")
    check_run_folder(("hydra.run.dir",), [f"hydra.run.dir={tmp_path / 'new' / 'run'}", "model=tiny_t5"])  # fine


@pytest.mark.slow
def test_a_failed_push_keeps_the_export_and_names_the_command(tmp_path):
    res = run_entry("train.py", "model=tiny_gpt2", "data.limit=48", "data.val_size=8", "global_batch_size=8",
                    "micro_batch_size=4", "trainer.max_epochs=1", "logger=csv", "callbacks.sample_generations.num_samples=0",
                    "export.push_to_hub=someone/lamini-tiny", f"hydra.run.dir={tmp_path}")  # the Hub is offline here
    assert res.returncode == 2 and "Traceback" not in res.stderr
    line = res.stderr.strip().splitlines()[-1]
    assert line.startswith("error: export.push_to_hub=someone/lamini-tiny failed")
    assert f"the export is kept in {tmp_path / 'hf'}" in line
    assert f"hf upload someone/lamini-tiny {tmp_path / 'hf'} . --repo-type model --private" in line
    assert (tmp_path / "hf" / "model.safetensors").exists() and (tmp_path / "metrics.json").exists()
