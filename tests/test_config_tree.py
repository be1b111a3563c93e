"""The configs are found one way: always the tree beside the lamini_lm that Python imports (config.conf_dir). Two
checkouts sharing one environment: an entry point whose own conf/ differs from that tree stops in one line."""

import os
import shutil
import subprocess
import sys

import pytest

from lamini_lm import config
from tests.helpers.run import ROOT, fails_with

SCRIPTS = ("train.py", "generate.py", "evaluate.py")


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    """A second checkout: the package, the configs and the entry points, with tiny_gpt2's lr changed."""
    root = tmp_path_factory.mktemp("clone")
    for name in ("src", "conf"):
        shutil.copytree(ROOT / name, root / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in SCRIPTS:
        shutil.copy(ROOT / name, root / name)
    model = root / "conf" / "model" / "tiny_gpt2.yaml"
    model.write_text(model.read_text().replace("lr: 2.0e-3", "lr: 0.5"))
    assert "lr: 0.5" in model.read_text()
    return root


def _run(script, *args, package):
    """``script`` run in a fresh process with lamini_lm imported from ``package`` (a checkout)."""
    env = {**os.environ, "PYTHONPATH": str(package / "src")}
    return subprocess.run([sys.executable, str(script), *args], cwd=package, env=env, capture_output=True, text=True,
                          timeout=300)


def test_the_tree_is_the_one_beside_the_imported_package():
    assert config.conf_dir() == ROOT / "conf"  # this checkout's, imported from its src/ (the editable install)
    assert config.compose("train", ["model=tiny_gpt2"]).model.lr == 2.0e-3


def test_the_imported_packages_configs_are_read(clone):
    res = _run(clone / "train.py", "--cfg", "job", "model=tiny_gpt2", package=clone)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "lr: 0.5" in res.stdout  # the clone's package: its own configs


@pytest.mark.parametrize("script", SCRIPTS)
def test_an_entry_point_whose_checkout_differs_from_the_imported_configs_is_one_line(clone, tmp_path, script):
    # this checkout's entry point, the clone's package (as after `pip install -e <clone>`)
    run = tmp_path / "run"
    line = fails_with(_run(ROOT / script, f"hydra.run.dir={run}", package=clone),
                      f"{ROOT / 'conf'} differs from the configs of the lamini_lm this Python imports, "
                      f"{clone / 'conf'} (model/tiny_gpt2.yaml)", f"pip install -e {ROOT}")
    assert script in line and not run.exists()
    # and the other way round: the clone's entry point, this checkout's package
    fails_with(_run(clone / script, package=ROOT), f"{clone / 'conf'} differs", f"{ROOT / 'conf'}")


def test_checkouts_with_the_same_configs_run_either_entry_point(tmp_path):
    twin = tmp_path / "twin"
    shutil.copytree(ROOT / "conf", twin / "conf", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "train.py", twin / "train.py")
    res = _run(twin / "train.py", "--cfg", "job", "model=tiny_gpt2", package=ROOT)
    assert res.returncode == 0 and "lr: 0.002" in res.stdout, res.stderr[-2000:]
