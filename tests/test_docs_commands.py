"""Every command line the README and docs/*.md print, composed with the real configs: a documented command is one the
configs accept.

Collected: each statement of a fenced bash/sh/shell/console block that runs one of our entry points (train.py,
generate.py, evaluate.py, or a `python -m lamini_lm.<module>` the test knows). Lines ending in a backslash are joined,
statements are split on `&&`, `||`, `;` and `|`, and shlex reads the quoting as the shell would. Placeholders
(`<run>`, `<export>`, ...) are replaced by values from PLACEHOLDERS, which exist in the test; an unknown placeholder
fails, so a new page stays testable. Shell variables a block assigns (`L=outputs/loop`) are expanded.

Checked for each command, without running it:
- the overrides of every job of a sweep compose (`lamini_lm.overrides.check_overrides`, what the entry points run
  first; evaluate.py's `model=` alias applied first);
- the composed config of every job passes the stage's typed check (`lamini_lm.config.typed` with TrainSpec,
  GenerateSpec / AnalyzeSpec, EvaluateSpec), as the stage does before it builds anything.
The cheap ones also run for real (`slow`): every `--help`, the planner (unless it measures), `assets list`, the tiny
exports. The training, generation and evaluation runs themselves are run by their own tests (test_train_e2e.py,
test_train_distributed.py, test_loop.py, ...), not twice here."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import re
import shlex
from pathlib import Path

import pytest

from tests.helpers.run import ROOT, run_entry

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELLS = {"bash", "sh", "shell", "console"}
SCRIPTS = {"train.py": "train", "generate.py": "generate", "evaluate.py": "evaluate"}
MODULES = {"lamini_lm.training.plan", "lamini_lm.assets", "lamini_lm.evaluation.tiny"}  # a new one: teach the test
SEPARATORS = {"&&", "||", ";", "|", "&"}


def _placeholders(ws: Path) -> dict[str, str]:
    """Each placeholder the docs use, and what stands for it here (a folder or file made by `workspace`, or a value)."""
    return {
        "run": str(ws / "run"),                # a train.py run folder
        "export": str(ws / "run" / "hf"),      # its export
        "ckpt": str(ws / "run" / "checkpoints" / "last.ckpt"),
        "sweep": str(ws / "sweep"),            # a training multirun folder (*/hf below it)
        "eval_run": str(ws / "eval"),          # an evaluate.py run folder
        "out": str(ws / "gen"),                # a generate.py out_dir (d_all.jsonl in it)
        "human": str(ws / "user_oriented_instructions.jsonl"),   # a copy of self-instruct's human-eval file
        "sheet": str(ws / "rating_sheet_filled.csv"),            # a filled Figure 4 rating sheet
        "folder": str(ws / "hub_folder"),      # a local model folder
        "gguf": "model.Q4_1.gguf",             # a GGUF file in it
        "model": "Qwen/Qwen2.5-7B-Instruct",   # the model a vLLM server serves
        "host": "localhost",
        "partition": "gpu",
        "hub_id": "tatsu-lab/alpaca",
        "repo_id": "me/LaMini-GPT-124M-repro",
    }


PLACEHOLDER_NAMES = set(_placeholders(Path("/")))
PLACEHOLDER = re.compile(r"<([^<>\s]+)>")
VARIABLE = re.compile(r"\$(?:\{([A-Za-z_]\w*)\}|([A-Za-z_]\w*))")
ASSIGNMENT = re.compile(r"[A-Za-z_]\w*=")
UNKNOWN = "@@unknown:"  # an unknown placeholder becomes @@unknown:ph:name@@, an unset variable @@unknown:var:NAME@@


@dataclasses.dataclass
class Command:
    text: str              # the statement as printed (placeholders kept): the test id
    where: list[str]       # README.md:12, docs/train.md:40, ...
    entry: str = ""        # train.py | generate.py | evaluate.py | lamini_lm.<module>
    args: list[str] = dataclasses.field(default_factory=list)  # its arguments, placeholders replaced
    problem: str = ""      # what stopped the collection (quoting, an unknown placeholder or module)


def _blocks(path: Path):
    """(first line number, language, lines) of every fenced code block; a fence may be indented (in a list)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = re.match(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)", lines[i])
        if not m:
            i += 1
            continue
        indent, fence, lang = len(m.group(1)), m.group(2), m.group(3).lower()
        body, j = [], i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence):
            body.append(lines[j][indent:] if not indent or lines[j][:indent].isspace() else lines[j].lstrip())
            j += 1
        yield i + 2, lang, body
        i = j + 1


def _logical_lines(lang: str, first: int, body: list[str]):
    """(line number, text) of each command: continuation lines joined; a console block's commands start with `$ `."""
    n, pending, start = first, None, first
    for k, line in enumerate(body):
        n = first + k
        if pending is None:
            if lang == "console":
                if not line.startswith("$ "):
                    continue
                line = line[2:]
            pending, start = "", n
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        yield start, pending + line
        pending = None
    if pending:
        yield start, pending


def _tokens(text: str) -> list[str]:
    lex = shlex.shlex(text, posix=True, punctuation_chars=True)
    lex.whitespace_split = True
    return list(lex)


def _statements(tokens: list[str]) -> list[list[str]]:
    out, cur = [], []
    for t in tokens:
        if t in SEPARATORS:
            out.append(cur)
            cur = []
        else:
            cur.append(t)
    return [s for s in out + [cur] if s]


def _shown(tokens: list[str]) -> str:
    """A statement as one line, quoted only where the shell needs it."""
    return " ".join(t if re.fullmatch(r"[\w@%+=:,./<>\[\]$~-]+", t) else shlex.quote(t) for t in tokens)


def _entry(tokens: list[str]) -> tuple[str, list[str]] | None:
    """(entry point, its arguments) when the statement runs one of ours: `python <script>` or `python -m lamini_lm.x`,
    after any `NAME=value` environment prefix."""
    i = 0
    while i < len(tokens) and ASSIGNMENT.match(tokens[i]):
        i += 1
    rest = tokens[i:]
    if len(rest) < 2 or rest[0] not in ("python", "python3"):
        return None
    if rest[1] in SCRIPTS:
        return rest[1], rest[2:]
    if rest[1] == "-m" and len(rest) > 2 and rest[2].startswith("lamini_lm"):
        return rest[2], rest[3:]
    return None


def collect(ws: Path, paths: list[Path] = DOCS) -> list[Command]:
    values = _placeholders(ws)
    found: dict[str, Command] = {}
    for path in paths:
        rel = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)
        for first, lang, body in _blocks(path):
            if lang not in SHELLS:
                continue
            variables: dict[str, str] = {}
            for line_no, text in _logical_lines(lang, first, body):
                where = f"{rel}:{line_no}"
                # the line as printed (placeholders neutralised so that shlex reads `<run>` as a word, not a redirection)
                printed = PLACEHOLDER.sub(lambda m: f"@@ph:{m.group(1)}@@", text)
                real = PLACEHOLDER.sub(lambda m: values.get(m.group(1), f"{UNKNOWN}ph:{m.group(1)}@@"), text)
                real = VARIABLE.sub(lambda m: variables.get(m.group(1) or m.group(2), f"{UNKNOWN}var:{m.group(1) or m.group(2)}@@"),
                                    real)
                try:
                    shown, tokens = _statements(_tokens(printed)), _statements(_tokens(real))
                except ValueError as e:  # an unbalanced quote: the shell would refuse it too
                    found.setdefault(text, Command(text, [where], problem=f"shlex: {e}"))
                    continue
                for s_shown, s_real in zip(shown, tokens):
                    words = s_real[1:] if s_real[0] == "export" else s_real
                    if words and all(ASSIGNMENT.match(w) for w in words):  # L=outputs/loop, export X=1 Y=2
                        variables.update(w.split("=", 1) for w in words)
                        continue
                    hit = _entry(s_real)
                    if hit is None:
                        continue
                    label = re.sub(r"@@ph:([^@]+)@@", r"<\1>", _shown(s_shown))
                    if label in found:
                        found[label].where.append(where)
                        continue
                    entry, args = hit
                    problem = ""
                    if entry not in SCRIPTS and entry not in MODULES:
                        problem = f"python -m {entry}: the test does not know this entry point; add it to MODULES"
                    unknown = sorted({f"<{n}>" if kind == "ph" else f"${n}"
                                      for kind, n in re.findall(rf"{UNKNOWN}(ph|var):([^@\s]+)@@", " ".join(args))})
                    if unknown:
                        problem = (f"unknown placeholder or unset variable {', '.join(unknown)}: add it to "
                                   "PLACEHOLDERS in tests/test_docs_commands.py (or assign the variable in the block)")
                    found[label] = Command(label, [where], entry, args, problem)
    return list(found.values())


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """The folders and files the placeholders stand for."""
    ws = tmp_path_factory.mktemp("docs_commands")
    for d in ("run/hf", "run/checkpoints", "sweep/0/hf", "eval", "gen", "hub_folder"):
        (ws / d).mkdir(parents=True)
    (ws / "run" / "checkpoints" / "last.ckpt").write_bytes(b"")
    record = {"instruction": "Name a colour.", "response": "Blue.", "instruction_source": "alpaca"}
    (ws / "gen" / "d_all.jsonl").write_text(json.dumps(record) + "\n")
    (ws / "user_oriented_instructions.jsonl").write_text("")
    (ws / "rating_sheet_filled.csv").write_text("")
    (ws / "hub_folder" / "model.Q4_1.gguf").write_bytes(b"")
    return ws


@pytest.fixture(scope="module", autouse=True)
def composed_once():
    """Many commands share jobs (the herd's 15 members in five commands): each distinct composition is made once.
    Composing reads the config files and changes nothing, and the checks here only read what it returns."""
    import functools

    from lamini_lm import config

    original = config.compose
    compose = functools.lru_cache(maxsize=None)(
        lambda name, overrides, hydra: original(name, list(overrides), return_hydra_config=hydra))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(config, "compose", lambda name, overrides=(), return_hydra_config=False:
                   compose(name, tuple(overrides), return_hydra_config))
        yield


# collected once at import for the test ids (a folder name stands in for the workspace; the values are replaced by
# the real workspace's in each test)
_WS = Path("/WS")
CASES = collect(_WS)


def _case(command: Command, ws: Path) -> Command:
    """``command`` with the workspace's real paths in its arguments."""
    return dataclasses.replace(command, args=[a.replace(str(_WS), str(ws)) for a in command.args])


def _load_script(name: str):
    """A root script (evaluate.py) as a module, under a name of its own: `evaluate` is also a PyPI package."""
    spec = importlib.util.spec_from_file_location(f"_docs_entry_{name}", ROOT / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _hydra_args(command: Command) -> tuple[str, list[str]]:
    """(config name, argv as Hydra reads it) of a Hydra entry point."""
    if command.entry == "lamini_lm.training.plan":
        return "train", list(command.args)  # the planner takes train.py's command line
    name = SCRIPTS[command.entry]
    args = list(command.args)
    if name == "evaluate":
        args = _load_script("evaluate")._model_alias(args)
    return name, args


def _typed_check(config_name: str, entry: str, job: list[str], out: Path) -> None:
    """The stage's own check of its composed config (a UserError naming the key when it fails)."""
    from lamini_lm import config

    from omegaconf import open_dict

    run_dir = next((o.split("=", 1)[1] for o in job if o.startswith("hydra.run.dir=")), str(out))
    cfg = config.compose(config_name, job, return_hydra_config=True).copy()  # check_overrides' own composition
    with open_dict(cfg):
        cfg.paths.output_dir = run_dir  # what Hydra's runtime would fill in
        del cfg["hydra"]
    if entry in ("train.py", "lamini_lm.training.plan"):
        from lamini_lm.training.spec import TrainSpec  # the planner's keys (plan.*) are part of it

        config.typed(cfg, TrainSpec)
    elif entry == "generate.py":
        if cfg.stage == "analyze":
            from lamini_lm.analysis.spec import AnalyzeSpec

            config.typed(cfg, AnalyzeSpec, keys=("analysis", "out_dir", "seed"))
        else:
            from lamini_lm.distill.spec import GenerateSpec

            config.typed(cfg, GenerateSpec, keys=[k for k in cfg if k not in ("paths", "hydra")])
    elif entry == "evaluate.py":
        from lamini_lm.evaluation.spec import EvaluateSpec

        config.typed(cfg, EvaluateSpec)


def _check_other(command: Command) -> None:
    """The entry points without Hydra: their arguments as their own parsers read them."""
    if command.entry == "lamini_lm.assets":
        from lamini_lm import assets

        args = command.args
        assert args and args[0] in ("fetch", "list"), f"python -m lamini_lm.assets takes fetch or list, not {args}"
        names = [a for a in args[1:] if not a.startswith("-")]
        assert set(args[1:]) - set(names) <= ({"--force"} if args[0] == "fetch" else set()), args
        assert set(names) <= set(assets.ASSETS), f"unknown asset(s) {set(names) - set(assets.ASSETS)}"
        assert args[0] == "fetch" or not names, args
    elif command.entry == "lamini_lm.evaluation.tiny":
        assert len(command.args) <= 1 and not any(a.startswith("-") for a in command.args), \
            f"python -m lamini_lm.evaluation.tiny takes one folder: {command.args}"


def test_the_docs_print_commands_to_check():
    assert len(CASES) >= 40, [c.text for c in CASES]
    for needed in ("python train.py", "python generate.py", "python evaluate.py", "python -m lamini_lm.training.plan"):
        assert any(c.text.startswith(needed) for c in CASES), needed


def test_a_placeholder_the_test_does_not_know_fails(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("```bash\npython train.py hydra.run.dir=<somewhere_new>\n```\n")
    (cmd,) = collect(tmp_path, [page])
    assert "<somewhere_new>" in cmd.problem and "PLACEHOLDERS" in cmd.problem


def _params(cases: list[Command]) -> list:
    """A command that names experiment=lamini_herd composes all 15 members (~5 s): in the slow tier."""
    return [pytest.param(c, id=c.text, marks=[pytest.mark.slow] if "experiment=lamini_herd" in c.args else [])
            for c in cases]


def problem(command: Command, ws: Path, capsys) -> str:
    """Why the entry point would refuse ``command`` before doing anything, or "" when it composes and checks."""
    if command.problem:
        return f"{command.problem} ({', '.join(command.where)})"
    if command.entry not in SCRIPTS and command.entry != "lamini_lm.training.plan":
        _check_other(command)
        return ""
    from hydra._internal.utils import get_args_parser

    from lamini_lm.errors import UserError
    from lamini_lm.overrides import check_overrides

    config_name, argv = _hydra_args(command)
    args = get_args_parser().parse_args(argv)
    planner = command.entry == "lamini_lm.training.plan"  # it plans every member a herd experiment sweeps
    try:  # every value of every swept key (the command line's, and a config's own sweep such as the herd's)
        jobs = check_overrides(config_name, argv, app=not planner)
    except SystemExit as e:
        if args.help and e.code == 0:  # --help answered: nothing to compose
            return ""
        return (f"{' '.join(command.where)}: the overrides do not compose (exit {e.code}): "
                f"{capsys.readouterr().err.strip()}")
    for job in jobs:
        try:
            _typed_check(config_name, command.entry, job, ws / "out")
        except UserError as e:
            return f"{' '.join(command.where)}: the typed check refuses the job {' '.join(job)}: {e}"
    return ""


@pytest.mark.parametrize("command", _params(CASES))
def test_the_command_composes_with_the_real_config(command, workspace, capsys):
    assert problem(_case(command, workspace), workspace, capsys) == ""


@pytest.mark.parametrize("line, expected", [
    ("python train.py model=tiny_gpt2 trainer.max_epoch=2", "trainer.max_epoch"),  # a misspelt key: the composition
    ("python train.py model=tiny_gpt2 global_batch_size=0", "must be positive"),  # a bad value: the typed check
    ("python evaluate.py mode=report 'report.results=[<eval_run>]", "shlex"),   # an unbalanced quote
    ("python -m lamini_lm.assets fetch no_such_asset", "unknown asset"),
])
def test_a_command_the_entry_point_would_refuse_fails(line, expected, tmp_path, workspace, capsys):
    page = tmp_path / "page.md"
    page.write_text(f"```bash\n{line}\n```\n")
    (cmd,) = collect(workspace, [page])
    try:
        found = problem(cmd, workspace, capsys)
    except AssertionError as e:  # the checks of the entry points without Hydra
        found = str(e)
    assert expected in found, found


def _runs_for_real(c: Command) -> bool:
    if c.problem:
        return False
    if "--help" in c.args or "-h" in c.args:
        return True
    if c.entry == "lamini_lm.training.plan":  # the blocks of its output in the docs run in test_docs_planner.py
        return not any(a.startswith("plan.measure=") for a in c.args) and \
            f"<!-- planner: {c.text} -->" not in "".join(p.read_text() for p in DOCS)
    return c.entry == "lamini_lm.evaluation.tiny" or (c.entry == "lamini_lm.assets" and c.args[:1] == ["list"])


REAL = [c for c in CASES if _runs_for_real(c)]


@pytest.mark.slow
@pytest.mark.parametrize("command", REAL, ids=[c.text for c in REAL])
def test_the_cheap_command_runs(command, workspace, tmp_path, monkeypatch, capsys):
    """A script as a fresh process; a `python -m lamini_lm.<module>` in this one (runpy runs its __main__ as the
    interpreter would, without the seconds a new process spends importing)."""
    import runpy
    import sys

    command = _case(command, workspace)
    args = [a.replace("tiny_models", str(tmp_path / "tiny_models")) for a in command.args]
    if command.entry in SCRIPTS:
        res = run_entry(command.entry, *args, timeout=300)
        code, out, err = res.returncode, res.stdout, res.stderr
    else:
        monkeypatch.setattr(sys, "argv", [command.entry, *args])
        try:
            runpy.run_module(command.entry, run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as e:
            code = e.code or 0
        out, err = capsys.readouterr()
    assert code == 0, f"{' '.join(command.where)}: exit {code}\n{err[-3000:]}"
    if "--help" in args:
        assert "docs" in out.lower(), f"--help should say where the docs are:\n{out[-2000:]}"
    elif command.entry == "lamini_lm.evaluation.tiny":
        for kind in ("gpt2", "t5"):
            assert (tmp_path / "tiny_models" / kind / "hf" / "config.json").is_file()
    else:
        assert out.strip(), err[-2000:]
