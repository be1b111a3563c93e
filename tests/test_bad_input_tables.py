"""One bad-input table per entry point. Each case runs train.py, generate.py or evaluate.py end to end and checks
what the user sees: exit 2, one `error:` line naming the file, line or key, no traceback, no secret echoed, and
nothing in the run folder beyond what the project writes before its checks (no checkpoint, export or D_ALL).

The cases run in this process (tests/helpers/run.py: run_script_inprocess), ~0.5 s each instead of the ~4 s of a
fresh interpreter; BAD_INPUT_TABLES_SUBPROCESS=1 runs the same tables through fresh processes (run_entry).
An override may name `{tmp}`: the case's folder, holding the small inputs `_inputs` writes, and `{tmp}/held`, a
folder whose run lock the test holds while the case runs."""

import json
import os

import pytest

from lamini_lm.run_lock import RunLock
from tests.helpers.run import fails_with, run_entry, run_script_inprocess

pytestmark = pytest.mark.slow  # ~150 cases through the real entry points, ~75 s: the full suite's

KEY = "sk-proj-" + "a1B2" * 8  # shaped like an OpenAI key: never echoed
HF_KEY = "hf_" + "Zx9" * 10  # shaped like a Hugging Face token
GOOD = {"instruction": "Say hi.", "response": "Hi!", "instruction_source": "alpaca"}
# what a run folder may hold after a refused run: Hydra's record of the run, its log, the owner's lock; train.py
# also records its recipe before it builds anything, and the CSV logger its hyperparameters before the data is read
WRITTEN_BEFORE_CHECKS = {".hydra", ".owner.lock", "train.log", "generate.log", "evaluate.log", "recipe.json", "csv"}
# a key is set and the server is a closed port, should a request ever go out
KEYED = ["teacher.api_key_env=HOME", "teacher.base_url=http://127.0.0.1:9/v1"]
# the instruction stage of the alpaca subset alone: it reads the seed file before sending anything
ALPACA_ONLY = ["stage=instructions", *KEYED, "size=smoke", "size.self_instruct_without_topic=0",
               "size.self_instruct_with_topic=0", "size.alpaca=5"]


def _inputs(tmp):
    """The broken and missing inputs the cases name: a few lines each."""
    def lines(name, *records):
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / name).write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))

    # train.py's data
    lines("broken.jsonl", *[GOOD] * 4, '{"instruction": "Say hi.", "response": ', *[GOOD] * 3)
    lines("no_response.jsonl", *[GOOD] * 2, {"instruction": "Say hi.", "instruction_source": "alpaca"})
    lines("sharegpt.jsonl", GOOD, {**GOOD, "instruction_source": "sharegpt"})
    lines("number.jsonl", GOOD, {**GOOD, "response": 3})
    lines("blank.jsonl", *[{**GOOD, "response": " "}] * 20)
    lines("own_fields.jsonl", {"prompt": "Say hi.", "output": "Hi!"}, {"prompt": "Say bye."})
    lines("chat_open.jsonl", {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hi!"},
                                           {"role": "user", "content": "Bye"}]})
    (tmp / "empty.jsonl").write_text("\n")
    (tmp / "a_file").write_text("not a folder, not a checkpoint\n")
    (tmp / "empty_dir").mkdir()
    (tmp / "gguf_dir").mkdir()
    (tmp / "gguf_dir" / "Other.Q4_0.gguf").write_bytes(b"GGUF")
    # generate.py's seed files and an earlier run's broken instructions
    (tmp / "alpaca_broken.json").write_text('[{"instruction": ')
    (tmp / "alpaca.txt").write_text("x\n")
    lines("alpaca_noinst.jsonl", {"prompt": "x", "output": "y"})
    lines("prev/instructions.jsonl", "{broken")
    lines("conf/teacher/leaky.yaml", "defaults: [openai, _self_]", f"base_url: http://me:{KEY}@127.0.0.1:9/v1")
    # evaluate.py's models, results, instructions, responses and rating sheets
    lines("not_a_model/notes.txt", "x")
    lines("bad_summary/summary.json", "{not json")
    lines("taskless/summary.json", {"model": "x", "rows": []})
    (tmp / "bad_paper.csv").write_text("table,model\n4,x\n")
    lines("user_oriented_bad.jsonl", {"id": "user_oriented_task_0"})
    lines("user_oriented.jsonl", {"id": "user_oriented_task_0", "motivation_app": "Gmail", "instruction": "Write a note.",
                                  "instances": [{"input": "", "output": ""}]})
    response = {"model": "m", "id": "user_oriented_task_0", "instruction": "Write a note.", "input": "", "response": "Hi"}
    lines("uneven_responses/m.jsonl", response)
    lines("partial_responses/m.jsonl", {k: v for k, v in response.items() if k != "instruction"})
    lines("broken_export/config.json", "{broken")
    lines("typeless_export/config.json", {})
    lines("uneven_responses/n.jsonl", {**response, "model": "n", "id": "user_oriented_task_1"})
    lines("evaluated/org__m/model.json", {"name": "org/m", "location": "org/m", "local": False, "revision": "v1"})
    for name, rating in (("no_sheets", None), ("bad_rating", "E"), ("unrated", "A")):
        lines(f"{name}/key.csv", "item_id,instruction_id,rater,model", "a1,user_oriented_task_0,1,m",
              "b2,user_oriented_task_0,1,n")
        if rating:
            lines(f"{name}/rater_1.csv", "item_id,instruction_id,instruction,input,response,rating,comment",
                  f"a1,user_oriented_task_0,x,,y,{rating},")


def _run(script, defaults, case, tmp_path, capfd, monkeypatch):
    """``script`` with the table's ``defaults`` (its run folders in ``tmp_path``), then the case's overrides."""
    overrides, fragments = case
    _inputs(tmp_path)
    argv = [o.format(tmp=tmp_path) for o in [*defaults, *overrides]]
    argv = [a for a in argv if a.startswith("-")] + [a for a in argv if not a.startswith("-")]  # flags first
    with RunLock(tmp_path / "held", "the test"):
        if os.environ.get("BAD_INPUT_TABLES_SUBPROCESS"):
            res = run_entry(script, *argv, timeout=300)
        else:
            res = run_script_inprocess(script, *argv, capfd=capfd, monkeypatch=monkeypatch, cwd=tmp_path)
    fails_with(res, *[f.format(tmp=tmp_path) for f in fragments])
    for run in (tmp_path / "run", tmp_path / "out"):
        written = {p.name for p in run.iterdir()} if run.exists() else set()
        assert written <= WRITTEN_BEFORE_CHECKS, (run, written)
    for made in ("*.ckpt", "hf", "d_all.jsonl", "metrics.json", "summary.csv", "sheets"):
        assert not list(tmp_path.rglob(made)), made
    for secret in (KEY, "a1B2a1B2", HF_KEY):
        assert secret not in res.stderr + res.stdout


# train.py: the tiny GPT-2 with the CSV logger (no W&B run); most cases stop before a model is built
TRAIN = {
    # the config check (TrainSpec), before any heavy import
    "lr-not-a-number": (["model.lr=fast"], ["model.lr", "could not be converted to Float"]),
    "misnamed-model-key": (["+model.learning_rate=1e-4"], ["model.learning_rate", "no such key"]),
    "val-size-zero": (["data.val_size=0"], ["val_size=0", "fraction in (0, 1) or a positive number"]),
    "one-beta": (["optim.betas=[0.9]"], ["betas=[0.9]", "two numbers"]),
    "jsonl-without-path": (["data=jsonl"], ["data.path: missing a value"]),
    "unknown-subset": (["data.subsets=[sharegpt]"], ["sharegpt", "self_instruct_without_topic"]),
    "random-init-without-architecture": (["model.architecture=null"], ["model.init=random needs model.architecture"]),
    "unknown-init": (["model.init=scratch"], ["model.init=scratch", "pretrained, random"]),
    "global-batch-zero": (["global_batch_size=0"], ["global_batch_size"]),
    "wandb-mode-typo": (["logger=wandb", "logger.wandb.mode=onlin"],
                        ["logger.wandb.mode: 'onlin' is not one of online, offline, disabled"]),
    "unknown-packing": (["data.packing=zip"], ["packing=zip", "padding_free"]),
    "push-without-export": (["export.enabled=false", "export.push_to_hub=me/model"],
                            ["export.push_to_hub needs export.enabled=true"]),
    "push-to-hub-true": (["export.push_to_hub=true"], ["export.push_to_hub: true is not a Hub repo id",
                                                       "give one (<user>/<name>)"]),
    # the command line, before Hydra runs or writes anything
    "misspelt-key": (["trainer.max_epoch=5"], ["no such key trainer.max_epoch; did you mean trainer.max_epochs?"]),
    "misspelt-group": (["modle=gpt2"], ["no such key modle; did you mean model?"]),
    "misspelt-key-in-a-group": (["data=jsonl", "data.pth=x"], ["no such key data.pth; did you mean data.path?"]),
    "unknown-model": (["model=tiny_gpt3"], ["model/tiny_gpt3", "did you mean tiny_gpt2?", "gpt2_xl, gpt_neo_125m"]),
    "broken-syntax": (["seed=1="], ["seed=1="]),
    "sweep-without-m": (["model=tiny_gpt2,tiny_t5"], ["model=tiny_gpt2,tiny_t5", "add -m"]),
    "sweep-bad-last-value": (["-m", "seed=1,2", "model=tiny_gpt2,tiny_t6"], ["model/tiny_t6"]),
    "api-key-override": ([f"+teacher.api_key={KEY}"], ["the override teacher.api_key=... looks like a secret"]),
    "hub-token-override": ([f"+hub_token={HF_KEY}"], ["the override hub_token=... looks like a secret"]),
    "run-dir-below-a-file": (["hydra.run.dir={tmp}/a_file/run"], ["a_file is a file", "hydra.run.dir=..."]),
    "run-dir-held": (["hydra.run.dir={tmp}/held"], ["{tmp}/held is in use by PID", "hydra.run.dir=..."]),
    # what is built from the config: reader, family, tokenizer, model, batches, checkpoint
    "reader-setting-typo": (["+data.reader.bogus=1"], ["data.reader.bogus is not a setting of", "path, subsets, limit"]),
    "reader-not-importable": (["data.reader._target_=nowhere.Reader"], ["data.reader._target_=nowhere.Reader"]),
    "family-not-importable": (["model.family._target_=nowhere.Family"], ["model.family._target_=nowhere.Family"]),
    "unknown-prompt-style": (["model.prompt_style=klingon"], ["unknown prompt style 'klingon'"]),
    "tokenizer-missing": (["model.tokenizer={tmp}/nope"], ["could not load the tokenizer '{tmp}/nope'"]),
    "gguf-not-in-folder": (["model=smollm2_135m", "model.hub_id={tmp}/gguf_dir", "model.gguf_file=nope.gguf"],
                           ["model.gguf_file=nope.gguf is not in the model folder {tmp}/gguf_dir (it has "
                            "Other.Q4_0.gguf)", "model.gguf_file=null"]),
    "url-credential-override": (["+model.hub_id=https://me:" + KEY + "@hub.example/m"],
                                ["the override model.hub_id=... looks like a secret (a user or password in a URL)"]),
    "params-mismatch": (["model.params=1B"], ["model.params=1B but model 'tiny_gpt2' has 3.3M parameters"]),
    "indivisible-global-batch": (["global_batch_size=30", "micro_batch_size=8"],
                                 ["global_batch_size=30", "micro_batch_size=8"]),
    "missing-checkpoint": (["ckpt_path={tmp}/nope.ckpt"], ["nope.ckpt"]),
    "not-a-checkpoint": (["ckpt_path={tmp}/a_file"], ["ckpt_path={tmp}/a_file is not a checkpoint", "ckpt_path=null"]),
    "hub-model-offline": (["model=gpt2_xl"], ["'openai-community/gpt2-xl'", "model.init=random"]),
    # the data: a file named by file and line
    "missing-data-file": (["data=jsonl", "data.path={tmp}/nope.jsonl"], ["nope.jsonl", "does not exist"]),
    "broken-json-line": (["data=jsonl", "data.path={tmp}/broken.jsonl"], ["{tmp}/broken.jsonl:5", "broken JSON"]),
    "missing-response-field": (["data=jsonl", "data.path={tmp}/no_response.jsonl"],
                               ["{tmp}/no_response.jsonl:3", "missing field 'response'"]),
    "unknown-source-in-data": (["data=jsonl", "data.path={tmp}/sharegpt.jsonl"],
                               ["{tmp}/sharegpt.jsonl:2", "'instruction_source' is 'sharegpt'"]),
    "number-as-response": (["data=jsonl", "data.path={tmp}/number.jsonl"],
                           ["{tmp}/number.jsonl:2", "field 'response' must be a string"]),
    "empty-data-file": (["data=jsonl", "data.path={tmp}/empty.jsonl"], ["empty.jsonl holds no records"]),
    "all-responses-blank": (["data=jsonl", "data.path={tmp}/blank.jsonl"], ["empty instruction or response"]),
    "val-size-above-the-data": (["data.val_size=100000"], ["data.val_size=100000", "leaves none to train on"]),
    "own-field-missing": (["data=jsonl", "data.path={tmp}/own_fields.jsonl", "data.fields.instruction=prompt",
                           "data.fields.response=output"],
                          ["{tmp}/own_fields.jsonl:2: missing field 'output' (data.fields.response=output)"]),
    "neither-fields-nor-messages": (["data=jsonl", "data.path={tmp}/own_fields.jsonl"],
                                    ["{tmp}/own_fields.jsonl:1", "data.fields.instruction=", "data.fields.messages="]),
    "chat-not-ending-with-assistant": (["data=jsonl", "data.path={tmp}/chat_open.jsonl"],
                                       ["{tmp}/chat_open.jsonl:1", "ends with a user turn"]),
    "data-path-a-folder": (["data=jsonl", "data.path={tmp}/empty_dir"], ["is a folder, not a data file", "data.path"]),
    # the model's architecture and attention, before its weights are built
    "unknown-model-type": (["model.architecture.model_type=nonesuch"], ["model.architecture.model_type=nonesuch"]),
    "misspelt-architecture-field": (["+model.architecture.n_lay=2"],
                                    ["model.architecture.n_lay is not a field of GPT2Config", "n_layer"]),
    "unknown-attention": (["model.attn_implementation=bogus"], ["model.attn_implementation=bogus"]),
    # Lightning's trainer, loggers and callbacks, built before the model
    "trainer-setting-it-lacks": (["+trainer.foo=1"], ["trainer.foo is not a setting of lightning.pytorch.Trainer"]),
    "trainer-precision": (["trainer.precision=17"], ["trainer: Precision 17 is invalid"]),
    "trainer-negative-epochs": (["trainer.max_epochs=-5"], ["trainer:", "max_epochs", "-5"]),
    "trainer-no-devices": (["trainer.devices=0"], ["trainer:", "devices=0"]),
    "callback-setting-it-lacks": (["+callbacks.throughput.bogus=1"], ["callbacks.throughput.bogus is not a setting"]),
    "callback-without-target": (["+callbacks.x.y=1"], ["callbacks.x has no _target_"]),
    "logger-setting-it-lacks": (["+logger.csv.bogus=1"], ["logger.csv.bogus is not a setting"]),
    "no-logger": (["~logger"], ["no logger is configured", "logger=csv"]),
    "group-set-to-null": (["trainer=null"], ["(trainer=null): a config group takes a config's name"]),
}

# generate.py: nothing is sent (OPENAI_API_KEY unset, or a closed port)
GENERATE = {
    # the config check (GenerateSpec), before a teacher is built or a file is read
    "n-examples-not-a-number": (["instructions.n_examples=three"], ["instructions.n_examples", "Integer"]),
    "per-call-typo": (["+instructions.per_cal=5"], ["instructions.per_cal: no such key", "per_call"]),
    "top-level-typo": (["+sizes.alpaca=3"], ["sizes: no such key"]),
    "negative-size": (["size.alpaca=-5"], ["size.alpaca: -5 is negative"]),
    "push-to-hub-true": (["push_to_hub=true"], ["push_to_hub: true is not a Hub repo id", "give one (<user>/<name>)"]),
    "unknown-subset-size": (["+size.sharegpt=10"], ["size.sharegpt: no such key", "self_instruct_without_topic"]),
    "per-call-zero": (["instructions.per_call.generated_p3=0"],
                      ["instructions.per_call.generated_p3: 0 must be at least 1"]),
    "overgenerate-below-one": (["instructions.overgenerate=0.5"], ["instructions.overgenerate: 0.5 must be at least 1"]),
    "missing-seed-file": (["seed_pools.alpaca.path={tmp}/nope.json"],
                          ["seed_pools.alpaca.path", "nope.json does not exist"]),
    "missing-prompt-template": (["prompts.example_guided={tmp}/nope.txt"],
                                ["prompts.example_guided", "nope.txt does not exist"]),
    "example-line-without-slot": (["prompts.example_line='<example></example>'"],
                                  ["prompts.example_line", "{{instruction}}"]),
    "unknown-filter": (["+filters.profanity={{}}"], ["filters.profanity", "not a known filter"]),
    "filter-setting-typo": (["+filters.length.min_word=3"], ["filters.length.min_word", "min_words, max_words"]),
    "dedup-threshold-above-one": (["dedup.threshold=1.5"], ["dedup.threshold: 1.5 must be in (0, 1]"]),
    "unknown-stage": (["stage=everything"], ["stage: 'everything' is not a stage"]),
    "dump-without-path": (["topics=wikipedia_dump"], ["topics.dump", "missing a value"]),
    # the command line
    "misspelt-key": (["instructions.n_example=3"],
                     ["no such key instructions.n_example; did you mean instructions.n_examples?"]),
    "group-of-another-stage": (["model=gpt2"], ["no such key model"]),
    "unknown-teacher": (["teacher=gpt5"], ["teacher/gpt5", "hf_local, openai, openai_batch"]),
    "sweep-without-m": (["size=paper,smoke"], ["size=paper,smoke", "add -m"]),
    "api-key-override": ([f"+teacher.api_key={KEY}"], ["the override teacher.api_key=... looks like a secret"]),
    "key-as-base-url": ([f"teacher.base_url={KEY}"], ["the override teacher.base_url=... looks like a secret"]),
    "key-inside-base-url": ([f"teacher.base_url=http://user:{KEY}@127.0.0.1:9/v1"],
                            ["the override teacher.base_url=... looks like a secret (a user or password in a URL)",
                             "give the URL without it"]),
    "key-in-a-config-files-base-url": (["hydra.searchpath=[file://{tmp}/conf]", "teacher=leaky", "size=smoke"],
                                       ["teacher.base_url holds a user or password in a URL in a config file",
                                        "put the key in the environment"]),
    "out-dir-below-a-file": (["out_dir={tmp}/a_file/out"], ["a_file is a file", "out_dir=..."]),
    "out-dir-held": (["out_dir={tmp}/held"], ["{tmp}/held is in use by PID", "out_dir=..."]),
    # the teacher and a stage's inputs, before anything is sent
    "teacher-setting-typo": (["+teacher.concurency=4"], ["teacher.concurency", "concurrency"]),
    "teacher-not-importable": (["teacher._target_=nowhere.Teacher"], ["teacher._target_=nowhere.Teacher"]),
    "unknown-http-transport": (["teacher.http_transport=pigeon"], ["teacher.http_transport=pigeon", "aiohttp"]),
    "missing-api-key": (["teacher.api_key_env=SURELY_UNSET_KEY_VAR"], ["SURELY_UNSET_KEY_VAR"]),
    "max-tokens-missing": ([*KEYED, "size=smoke", "~teacher.max_tokens.instructions"],
                           ["teacher.max_tokens.instructions is missing"]),
    "gguf-not-in-folder": (["teacher=hf_local", "teacher.model_path={tmp}/empty_dir", "teacher.gguf_file=nope.gguf"],
                           ["teacher.gguf_file nope.gguf is not in {tmp}/empty_dir"]),
    "responses-before-instructions": (["stage=responses", *KEYED],
                                      ["instructions.jsonl does not exist", "stage=instructions"]),
    "broken-instructions-file": (["stage=responses", *KEYED, "out_dir={tmp}/prev"],
                                 ["{tmp}/prev/instructions.jsonl:1: broken JSON", "rerun stage=instructions"]),
    "missing-topic-dump": (["stage=topics", "topics=wikipedia_dump", "topics.dump={tmp}/nope.sql.gz"],
                           ["topics.dump", "nope.sql.gz does not exist"]),
    "broken-seed-json": ([*ALPACA_ONLY, "seed_pools.alpaca.path={tmp}/alpaca_broken.json"],
                         ["alpaca_broken.json:1", "broken JSON"]),
    "seed-file-of-unknown-kind": ([*ALPACA_ONLY, "seed_pools.alpaca.path={tmp}/alpaca.txt"],
                                  ["alpaca.txt", "use .jsonl, .json or .parquet"]),
    "seed-without-instruction-field": ([*ALPACA_ONLY, "seed_pools.alpaca.path={tmp}/alpaca_noinst.jsonl"],
                                       ["alpaca_noinst.jsonl:1", "missing field 'instruction'"]),
    "hub-seed-offline": (ALPACA_ONLY, ["seed_pools.alpaca: cannot load hub dataset 'tatsu-lab/alpaca'",
                                       "seed_pools.alpaca.path"]),
    # stage=analyze
    "analyze-hub-offline": (["stage=analyze"], ["'MBZUAI/LaMini-instruction'", "analysis.input="]),
    "analyze-missing-input": (["stage=analyze", "analysis.input={tmp}/nope.jsonl"],
                              ["analysis.input", "nope.jsonl does not exist"]),
    "analyze-folder-without-data": (["stage=analyze", "analysis.input={tmp}/empty_dir"],
                                    ["empty_dir is a folder without d_all.jsonl"]),
    "analyze-empty-input": (["stage=analyze", "analysis.input={tmp}/empty.jsonl", "analysis.wandb.enabled=false"],
                            ["analysis.input", "empty.jsonl has no records"]),
    "analyze-broken-line": (["stage=analyze", "analysis.input={tmp}/broken.jsonl", "analysis.wandb.enabled=false"],
                            ["{tmp}/broken.jsonl:5"]),
    "analyze-unknown-output": (["stage=analyze", "analysis.outputs=[table9]"], ["analysis.outputs", "table9"]),
    "analyze-bad-pattern": (["stage=analyze", "analysis.table2.token_pattern='(['"],
                            ["analysis.table2.token_pattern", "not a regular expression"]),
    # teacher settings, checked when the teacher is built: before any request
    "no-concurrency": ([*ALPACA_ONLY, "teacher.concurrency=0"], ["teacher.concurrency=0", "at least 1"]),
    "negative-rpm": ([*ALPACA_ONLY, "teacher.rpm=-1"], ["teacher.rpm=-1", "at least 0"]),
    "negative-timeout": ([*ALPACA_ONLY, "teacher.timeout=-1"], ["teacher.timeout=-1", "above 0"]),
    "base-url-without-scheme": ([*ALPACA_ONLY, "teacher.base_url=notaurl"], ["teacher.base_url=notaurl", "http://"]),
    "hf-local-model-missing": (["teacher=hf_local", "teacher.model_path={tmp}/nowhere"],
                               ["teacher.model_path={tmp}/nowhere does not exist"]),
}

# evaluate.py: failures before lm-eval runs, a model loads or the Hub is asked
EVALUATE = {
    # model=
    "no-model": ([], ["no model given", "model="]),
    "missing-model-folder": (["model={tmp}/missing"], ["model={tmp}/missing does not exist"]),
    "folder-without-export": (["model={tmp}/not_a_model"], ["model={tmp}/not_a_model is not a model export"]),
    "model-is-a-file": (["model={tmp}/a_file"], ["model={tmp}/a_file is a file"]),
    "same-name-twice": (["model=[org/m,org/m]"], ["two models would share the result name(s) org/m"]),
    "list-of-lists": (["model=[[a]]"], ["models must be a folder or hub id, or a list of them"]),
    "name-for-two-models": (["model=[org/a,org/b]", "name=mine"], ["name=mine names one model but model= gives 2"]),
    "name-taken-by-another-model": (["model=org/m", "hydra.run.dir={tmp}/evaluated"],
                                    ["{tmp}/evaluated/org__m holds the results of another model named 'org/m' "
                                     "(org/m at revision v1), not of org/m at revision main", "name=..."]),
    # the lm-eval settings
    "unknown-task": (["model=org/m", "tasks=[PIQA,squad]"], ["unknown task(s) squad"]),
    "unknown-paper-model": (["model=org/m", "paper_model=gpt-5"], ["paper_model=gpt-5 is not in the paper's tables"]),
    "paper-model-for-two": (["model=[org/a,org/b]", "paper_model=LaMini-GPT-124M"], ["paper_model= names one model"]),
    "unknown-mode": (["mode=train"], ["mode=train is not a mode"]),
    "unknown-wrapper": (["wrapper=chatml"], ["wrapper=chatml is not a wrapper"]),
    "limit-zero": (["lm_eval.limit=0"], ["lm_eval.limit=0 must be a positive number"]),
    "batch-size-word": (["lm_eval.batch_size=big"], ["lm_eval.batch_size='big'"]),
    "shots-typo": (["+lm_eval.shots=5"], ["lm_eval.shots: no such key"]),
    "wandb-mode-typo": (["wandb.mode=onlin"], ["wandb.mode: 'onlin' is not one of online, offline, disabled"]),
    # the command line
    "unknown-suite": (["eval=lamini16"], ["eval/lamini16", "lamini15, lamini15_local"]),
    "misspelt-key": (["wraper=none"], ["no such key wraper; did you mean wrapper?"]),
    "sweep-without-m": (["model=org/a,org/b"], ["add -m"]),
    "sweep-bad-suite": (["-m", "models=[a],[b]", "eval=lamini15_local,nope"], ["eval/nope"]),
    "api-key-override": ([f"+teacher.api_key={KEY}"], ["the override teacher.api_key=... looks like a secret"]),
    "key-as-model": ([f"model={HF_KEY}"], ["looks like a secret"]),
    "key-in-a-url-parameter": ([f"human.url='https://h/u.jsonl?api_key={KEY}'"],
                               ["the override human.url=... looks like a secret (the parameter api_key= in a URL)"]),
    "run-dir-below-a-file": (["hydra.run.dir={tmp}/a_file/run"], ["a_file is a file", "hydra.run.dir=..."]),
    "run-dir-held": (["hydra.run.dir={tmp}/held", "model=org/m"], ["{tmp}/held is in use by PID", "hydra.run.dir=..."]),
    # mode=report
    "report-without-results": (["mode=report"], ["no results given", "report.results="]),
    "report-missing-results": (["mode=report", "report.results=[{tmp}/nope]"],
                               ["results path {tmp}/nope does not exist"]),
    "report-empty-folder": (["mode=report", "report.results=[{tmp}/empty_dir]"],
                            ["empty_dir holds no evaluate.py results"]),
    "report-broken-summary": (["mode=report", "report.results=[{tmp}/bad_summary]"],
                              ["bad_summary/summary.json is not an evaluate.py summary.json"]),
    "report-summary-without-tasks": (["mode=report", "report.results=[{tmp}/taskless]"],
                                     ["taskless/summary.json is not an evaluate.py summary.json"]),
    "report-missing-paper-results": (["mode=report", "report.results=[{tmp}/empty_dir]",
                                      "report.paper_results={tmp}/nope.csv"], ["nope.csv does not exist"]),
    "report-broken-paper-results": (["mode=report", "report.results=[{tmp}/empty_dir]",
                                     "report.paper_results={tmp}/bad_paper.csv"], ["bad_paper.csv:2"]),
    # the human evaluation
    "human-raters-zero": (["human.raters=0"], ["human.raters=0"]),
    "human-select-missing-file": (["mode=human_select", "human.path={tmp}/nope.jsonl"],
                                  ["human.path={tmp}/nope.jsonl does not exist"]),
    "human-select-bad-record": (["mode=human_select", "human.path={tmp}/user_oriented_bad.jsonl"],
                                ["user_oriented_bad.jsonl:1", "missing field 'motivation_app'"]),
    "human-select-bad-pattern": (["mode=human_select", "human.path={tmp}/user_oriented.jsonl",
                                  "human.nlp_task_patterns=['(']"], ["human.nlp_task_patterns"]),
    "human-download-refused": (["mode=human_select", "human.cache={tmp}/nope.jsonl",
                                "human.url=http://127.0.0.1:9/x.jsonl"], ["cannot download", "human.path="]),
    "human-generate-ids-not-in-file": (["mode=human_generate", "model=org/m", "human.path={tmp}/user_oriented.jsonl"],
                                       ["are not in the instruction file"]),
    "human-sheets-without-responses": (["mode=human_sheets", "human.responses={tmp}/empty_dir"],
                                       ["empty_dir holds no <model>.jsonl responses", "mode=human_generate"]),
    "human-sheets-uneven-responses": (["mode=human_sheets", "human.responses={tmp}/uneven_responses"],
                                      ["answered a different set of instructions"]),
    "human-ingest-without-key": (["mode=human_ingest", "human.sheets={tmp}/empty_dir"],
                                 ["empty_dir/key.csv does not exist", "mode=human_sheets"]),
    "human-ingest-without-sheets": (["mode=human_ingest", "human.sheets={tmp}/no_sheets"],
                                    ["no_sheets holds no rater_<k>.csv sheets", "mode=human_sheets"]),
    "human-ingest-bad-rating": (["mode=human_ingest", "human.sheets={tmp}/bad_rating"],
                                ["bad_rating/rater_1.csv:2: rating 'E' for item a1 must be A, B, C or D"]),
    "human-ingest-unrated-item": (["mode=human_ingest", "human.sheets={tmp}/unrated"],
                                  ["1 item(s) have no rating (e.g. b2)"]),
    "human-judge-without-api-key": (["mode=human_judge", "human.responses={tmp}/empty_dir"],
                                    ["OPENAI_API_KEY is not set"]),
    "human-judge-without-responses": (["mode=human_judge", "human.responses={tmp}/empty_dir", *KEYED],
                                      ["empty_dir holds no <model>.jsonl responses"]),
    "broken-export-config": (["model={tmp}/broken_export"], ["broken_export is not a readable model export"]),
    "export-without-model-type": (["model={tmp}/typeless_export"], ["typeless_export is not a readable model export"]),
    "human-sheets-response-without-instruction": (["mode=human_sheets", "human.responses={tmp}/partial_responses"],
                                                  ["m.jsonl:1: not a response record", "instruction, response"]),
}


def _table(cases):
    return [pytest.param(case, id=name) for name, case in cases.items()]


@pytest.mark.parametrize("case", _table(TRAIN))
def test_train_py_refuses_bad_input_in_one_line(case, tmp_path, capfd, monkeypatch):
    _run("train.py", ["model=tiny_gpt2", "logger=csv", "hydra.run.dir={tmp}/run"], case, tmp_path, capfd, monkeypatch)


@pytest.mark.parametrize("case", _table(GENERATE))
def test_generate_py_refuses_bad_input_in_one_line(case, tmp_path, capfd, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    _run("generate.py", ["progress=false", "hydra.run.dir={tmp}/run", "out_dir={tmp}/out"], case, tmp_path, capfd,
         monkeypatch)


@pytest.mark.parametrize("case", _table(EVALUATE))
def test_evaluate_py_refuses_bad_input_in_one_line(case, tmp_path, capfd, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # the judge's key
    _run("evaluate.py", ["hydra.run.dir={tmp}/run"], case, tmp_path, capfd, monkeypatch)
