"""--help (and -h) prints each entry point's own page, exit 0: what it is for, how it is called, the config groups
a user picks with their choices from conf/, generate.py's stages or evaluate.py's modes; Hydra's --cfg job and
--hydra-help still answer. The pages run in this process (tests/helpers/run.py), one through a fresh one."""

import pytest

from lamini_lm.distill.spec import STAGES
from lamini_lm.evaluation.spec import MODES
from lamini_lm.training import plan
from tests.helpers.run import run_entry, run_script_inprocess

PURPOSE = {"train.py": "Stage 2: instruction-tune a student of the LaMini herd.",
           "generate.py": "Stage 1, the distillation data: instructions, responses, D_ALL, and its analysis.",
           "evaluate.py": "Stage 3, evaluation: zero-shot lm-eval on the paper's 15 tasks, the paper's tables, human"}


def _checked(page: str, purpose: str, command: str) -> list[str]:
    lines = page.strip().splitlines()
    assert lines[0].startswith(purpose) and len(lines) < 40, page
    examples = [x for x in lines if x.startswith(f"  {command} ")]
    assert len(examples) >= 3, page  # the docstring's, all of them
    assert "model/base" not in page and "data/base" not in page and "_openai_api" not in page
    assert "--cfg job" in page and "docs/index.md" in page and "README.md" in page
    return lines


def _group(lines: list[str], name: str) -> str:
    """A group's choices, wrapped lines joined."""
    start = next(i for i, x in enumerate(lines) if x.split()[:1] == [name])
    rest = lines[start + 1:]
    more = rest[:next((i for i, x in enumerate(rest) if not x.startswith("    ")), len(rest))]
    return " ".join([lines[start].split(None, 1)[1], *[x.strip() for x in more]])


@pytest.mark.parametrize("script", ["train.py", "generate.py", "evaluate.py"])
def test_each_entry_point_prints_its_own_page(script, tmp_path, capfd, monkeypatch):
    res = run_script_inprocess(script, "--help", capfd=capfd, monkeypatch=monkeypatch, cwd=tmp_path)
    assert res.returncode == 0 and res.stderr == "", res.stderr
    lines = _checked(res.stdout, PURPOSE[script], f"python {script}")
    assert _group(lines, "hydra/launcher") == "basic*, submitit_local, submitit_slurm"
    if script == "train.py":
        assert "smollm2_135m*" in _group(lines, "model") and "gpt2_xl" in _group(lines, "model")
        assert _group(lines, "trainer").startswith("cpu*, ddp, ddp_cpu")
    if script == "generate.py":
        assert _group(lines, "teacher") == "hf_local, openai*, openai_batch"
        assert f"(stage=value; * the default): all*, {', '.join(STAGES[1:])}" in res.stdout
    if script == "evaluate.py":
        assert f"(mode=value; * the default): lm_eval*, {', '.join(MODES[1:])}" in res.stdout
    assert not (tmp_path / "outputs").exists()


def test_dash_h_and_hydras_own_flags_still_answer(tmp_path, capfd, monkeypatch):
    short = run_script_inprocess("train.py", "-h", capfd=capfd, monkeypatch=monkeypatch, cwd=tmp_path)
    assert short.returncode == 0 and short.stdout.startswith(PURPOSE["train.py"])
    cfg = run_script_inprocess("train.py", "--cfg", "job", "model=tiny_gpt2", capfd=capfd, monkeypatch=monkeypatch,
                               cwd=tmp_path)
    assert cfg.returncode == 0 and "tiny_gpt2" in cfg.stdout and "global_batch_size:" in cfg.stdout, cfg.stderr
    hydra = run_script_inprocess("generate.py", "--hydra-help", capfd=capfd, monkeypatch=monkeypatch, cwd=tmp_path)
    assert hydra.returncode == 0 and "Hydra (" in hydra.stdout


def test_the_planner_prints_its_page(capsys):
    with pytest.raises(SystemExit) as e:
        plan.main(["--help"])
    page = capsys.readouterr().out
    assert e.value.code == 0
    lines = _checked(page, "The planner: per-device memory", "python -m lamini_lm.training.plan")
    assert "gpt2_xl" in _group(lines, "model") and "lamini_paper" in _group(lines, "experiment")
    assert "hydra/launcher" not in page  # the planner launches nothing


def test_the_page_through_a_fresh_process():
    res = run_entry("train.py", "--help", timeout=120)
    assert res.returncode == 0 and res.stdout.startswith(PURPOSE["train.py"]) and res.stderr == "", res.stderr
    assert "smollm2_135m*" in res.stdout and "hydra/launcher" in res.stdout
