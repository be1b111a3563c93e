"""An API key given on the command line is refused before anything is written, and never echoed."""

import pytest

from lamini_lm.secret_keys import redacted, refuse_secret_overrides
from tests.helpers.run import run_entry

KEY = "sk-proj-" + "a1B2" * 8


@pytest.mark.parametrize("arg", [f"+teacher.api_key={KEY}", f"teacher.api_key={KEY}", "++hub_token=x",
                                 f"teacher.base_url={KEY}", f"-m model=gpt2,{KEY}".split(" ", 1)[1],
                                 "~wandb.password=x", "+secret=x"])
def test_secret_looking_overrides_are_refused_without_echo(arg, capsys):
    with pytest.raises(SystemExit) as e:
        refuse_secret_overrides(["model=tiny_t5", arg])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and err.startswith("error: the override ")
    assert KEY not in err and "a1B2" not in err


@pytest.mark.parametrize("arg", ["teacher.api_key_env=MY_KEY", "revision=" + "ab12" * 10, "model=gpt2",
                                 "-m", "hydra.run.dir=outputs/x", "tokenizer=gpt2_tokenizer"])
def test_ordinary_overrides_pass(arg):
    refuse_secret_overrides([arg])


def test_saved_configs_are_redacted():
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"teacher": {"api_key": KEY, "api_key_env": "OPENAI_API_KEY"}, "hub_token": "x", "n": 1})
    out = redacted(cfg)
    assert out["teacher"]["api_key"] == out["hub_token"] == "<redacted>" and KEY not in str(out)
    assert out["teacher"]["api_key_env"] == "OPENAI_API_KEY" and out["n"] == 1


def test_the_entry_points_refuse_before_hydra_writes_anything(tmp_path):
    for script in ("train.py", "generate.py", "evaluate.py"):
        res = run_entry(script, f"+teacher.api_key={KEY}", f"hydra.run.dir={tmp_path / script}", timeout=120)
        assert res.returncode == 2 and "Traceback" not in res.stderr and KEY not in res.stderr + res.stdout
        assert not (tmp_path / script).exists()  # no .hydra/overrides.yaml, no log


# a credential inside a URL, in any override: a user:password@, or a query or fragment parameter that carries one
URL_SECRETS = [f"teacher.base_url=http://user:{KEY}@127.0.0.1:9/v1", "teacher.base_url=https://user:a1B2pass@host/v1",
               "human.url='https://h/u.jsonl?api_key=a1B2a1B2'", "+model.hub_id=https://h/m?raw=1&token=a1B2a1B2",
               "human.url=https://s3/u.jsonl?X-Amz-Signature=a1B2a1B2&X-Amz-Credential=x",
               "teacher.base_url=https://h/v1#access_token=a1B2a1B2", "human.url=https://h/x?sig=a1B2a1B2",
               "teacher.base_url=http://a/v1,http://u:a1B2a1B2@b/v1",  # a sweep's second value
               "teacher.params={temperature:0,api_key:a1B2a1B2}", f"data.path=/data/{KEY}/d.jsonl"]


@pytest.mark.parametrize("arg", URL_SECRETS)
def test_a_secret_anywhere_in_a_value_is_refused_without_echo(arg, capsys):
    with pytest.raises(SystemExit) as e:
        refuse_secret_overrides(["model=tiny_t5", arg])
    err = capsys.readouterr().err
    key = arg.lstrip("+").split("=")[0]
    assert e.value.code == 2 and err.count("\n") == 1 and err.startswith(f"error: the override {key}=... looks like")
    assert "a1B2" not in err and "user:" not in err and "127.0.0.1" not in err


@pytest.mark.parametrize("arg", ["teacher.base_url=http://127.0.0.1:8000/v1", "teacher.base_url=http://[::1]:8000/v1",
                                 "teacher.base_url=https://h/openai/deployments/x?api-version=2024-02-01",
                                 "human.url=https://raw.githubusercontent.com/a/b/main/x.jsonl?raw=true",
                                 "human.url=https://h/x.jsonl?key=",  # no value: nothing to hide
                                 "data.path=/data/sk-learn-benchmarks-2024/d.jsonl",  # a folder, not a key
                                 "report.labels={my-run:LaMini-GPT-124M}", "teacher.params={max_tokens:5}"])
def test_urls_and_values_without_a_secret_pass(arg):
    refuse_secret_overrides([arg])


def test_the_lock_file_and_saved_configs_keep_no_secret_of_a_url():
    from omegaconf import OmegaConf

    from lamini_lm.secret_keys import redact_argv

    argv = ["generate.py", f"teacher.base_url=http://user:{KEY}@h/v1", "human.url=https://h/x?a=1&api_key=a1B2a1B2",
            "model=gpt2"]
    assert redact_argv(argv) == ["generate.py", "teacher.base_url=http://<redacted>@h/v1",
                                 "human.url=https://h/x?a=1&api_key=<redacted>", "model=gpt2"]
    prompt = "Sort the words, key: their last letter ({instruction})"  # a config's text: no dict in it
    cfg = OmegaConf.create({"teacher": {"base_url": f"https://u:{KEY}@h/v1"}, "urls": ["https://h/?sig=a1B2a1B2"],
                            "header": f"Bearer {KEY}", "prompt": prompt})
    assert redacted(cfg) == {"teacher": {"base_url": "https://<redacted>@h/v1"}, "urls": ["https://h/?sig=<redacted>"],
                             "header": "Bearer <redacted>", "prompt": prompt}


def test_a_config_files_url_with_a_credential_is_refused_at_the_stages_check():
    from lamini_lm.config import compose
    from lamini_lm.errors import UserError
    from lamini_lm.secret_keys import refuse_secret_values
    from lamini_lm.teachers import build

    # compose() takes the values as a config file of the user's would give them: no command-line check
    cfg = compose("generate", ["out_dir=/tmp/unused", f"teacher.base_url=http://me:{KEY}@127.0.0.1:9/v1"])
    with pytest.raises(UserError) as e:
        build(cfg.teacher, cfg.prices, progress=False)
    assert str(e.value).startswith("teacher.base_url holds a user or password in a URL in a config file")
    assert "put the key in the environment" in str(e.value) and "a1B2" not in str(e.value)
    cfg = compose("evaluate", ["paths.output_dir=/tmp/unused", "human.url='https://h/u.jsonl?api_key=a1B2a1B2'"])
    with pytest.raises(UserError, match=r"^human.url holds the parameter api_key= in a URL in a config file") as e:
        refuse_secret_values(cfg)
    assert "a1B2" not in str(e.value)
    refuse_secret_values(compose("evaluate", ["paths.output_dir=/tmp/unused"]))  # the shipped configs hold none
    refuse_secret_values({"judge": {"template": "Rate it, token: A to D"}})  # text, not a dict of secrets


@pytest.mark.slow
def test_no_file_of_a_refused_or_an_accepted_run_holds_the_secret(server, tmp_path, capfd, monkeypatch):
    """The check a user makes: grep every file the runs wrote for the secret given inside a URL."""
    from tests.helpers.run import run_script_inprocess

    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    leaky = f"http://me:{KEY}@{server.base_url.split('://')[1]}"
    refused = {"generate.py": [f"teacher.base_url={leaky}", "out_dir={tmp}/out"],
               "evaluate.py": ["model=org/m", f"human.url='https://h/u.jsonl?api_key={KEY}'"],
               "train.py": ["model=tiny_gpt2", f"+model.hub_id=https://me:{KEY}@h/m"]}
    runs = [(script, [*args, f"hydra.run.dir={{tmp}}/{script}"]) for script, args in refused.items()]
    (tmp_path / "conf" / "teacher").mkdir(parents=True)  # the user's own config file holds it
    (tmp_path / "conf" / "teacher" / "leaky.yaml").write_text(f"defaults: [openai, _self_]\nbase_url: {leaky}\n")
    runs.append(("generate.py", [f"hydra.searchpath=[file://{tmp_path / 'conf'}]", "teacher=leaky",
                                 "hydra.run.dir={tmp}/file_run", "out_dir={tmp}/file_out", "size=smoke"]))
    for script, args in runs:
        res = run_script_inprocess(script, "progress=false", *[a.format(tmp=tmp_path) for a in args], capfd=capfd,
                                   monkeypatch=monkeypatch, cwd=tmp_path)
        assert res.returncode == 2 and "a1B2" not in res.stderr + res.stdout, (script, res.stderr)
    assert not server.log  # nothing was sent
    assert sorted(p.name for p in tmp_path.iterdir()) == ["conf"]  # no run folder was left
    from tests.helpers.generate_kit import tiny

    overrides = [o for o in tiny(tmp_path / "out", server.base_url) if not o.startswith("out_dir")]
    res = run_script_inprocess("generate.py", f"out_dir={tmp_path / 'out'}", f"hydra.run.dir={tmp_path / 'run'}",
                               *overrides, capfd=capfd, monkeypatch=monkeypatch, cwd=tmp_path)
    assert res.returncode == 0 and server.log, res.stderr[-2000:]
    written = [p for p in tmp_path.rglob("*") if p.is_file() and "conf" not in p.parts]
    assert len(written) > 10 and not [p for p in written if b"a1B2" in p.read_bytes()]


@pytest.mark.parametrize("entry", ["train", "generate", "evaluate"])
def test_a_secret_in_a_config_file_of_ones_own_is_refused_before_hydra_saves_the_config(entry, tmp_path, capsys):
    # Hydra writes the composed config (unresolved) to <run>/.hydra/ before the job starts: the override check that
    # composes every job first is where a secret written into a config file is stopped
    from lamini_lm.overrides import check_overrides

    (tmp_path / "paths").mkdir()
    (tmp_path / "paths" / "mine.yaml").write_text(
        "defaults: [default, _self_]\nmirror: https://me:hunter2@mirror.example/files\n")
    with pytest.raises(SystemExit) as e:
        check_overrides(entry, [f"hydra.searchpath=[file://{tmp_path}]", "paths=mine"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "paths.mirror holds a user or password in a URL in a config file" in err
    assert "hunter2" not in err
