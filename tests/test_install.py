"""The package works installed without -e, away from the checkout: the configs travel with it."""

import os
import shutil
import subprocess
import sys
import tomllib

import pytest

from tests.helpers.run import ROOT

CHECK = """
import lamini_lm, pathlib
from lamini_lm import config
here = pathlib.Path(lamini_lm.__file__).parent
assert str(here).startswith({target!r}), here
assert config.conf_dir() == here / "conf", config.conf_dir()
cfg = config.compose("generate", ["out_dir=/tmp/x"])
for k in ("example_guided", "topic_guided"):
    assert pathlib.Path(cfg.prompts[k]).is_file() and str(cfg.prompts[k]).startswith(str(here)), cfg.prompts[k]
train = config.compose("train", ["model=tiny_t5"])
assert pathlib.Path(train.data.path).is_file() and str(train.data.path).startswith(str(here))
from lamini_lm.models.backbone import build_family
assert build_family(train.model).architecture == "encoder-decoder"
print("ok")
"""


def test_pyproject_names_every_package():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT / "src").parts) for p in (ROOT / "src").rglob("__init__.py")}
    assert listed == found | {"lamini_lm.conf"}


@pytest.mark.slow
def test_a_plain_install_composes_the_configs_away_from_the_checkout(tmp_path):
    source, target = tmp_path / "source", tmp_path / "site"
    for name in ("src", "conf"):  # a copy: building in place would leave build/ in the checkout
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    res = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                          "--target", str(target), str(source)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": str(target)}
    res = subprocess.run([sys.executable, "-c", CHECK.format(target=str(target))], cwd=tmp_path, env=env,
                         capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-2000:]
