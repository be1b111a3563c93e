"""LaMini-shaped training examples for the training benchmarks (train_throughput.py), and the herd configs they
train: records of words that are one token in both the GPT-2 and the T5 tokenizer, so a text of n words is ~n tokens
in both, with lengths drawn like the paper's Table 1 (each of the seven subsets with its share of D_ALL and its mean
instruction / response length, lognormal within a subset).

reconstruction: sigma 0.8 is our choice: with it, random batches of 8 waste 48% (gpt2) / 65% (t5) of their tokens on
padding over a long plan, close to the 48% / 60% issue 2 reports for LaMini-shaped data.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from lamini_lm import assets
from lamini_lm.analysis.tables import paper_numbers

SIGMA = 0.8
MAX_WORDS = 480  # instruction + response; + Alpaca wrapper (~27 GPT-2 tokens) + EOS stays within 512

# The real herd configs (conf/model/gpt2.yaml, t5_small.yaml) built with random weights from the architecture they
# carry, with the offline tokenizers
SHAPES = {
    "gpt2": ["model=gpt2", "model.init=random", "model.tokenizer=${asset:gpt2_tokenizer}"],
    "t5_small": ["model=t5_small", "model.init=random", "model.tokenizer=${asset:t5_tokenizer}"],
    "t5_base": ["model=t5_base", "model.init=random", "model.tokenizer=${asset:t5_tokenizer}"],
    # SmolLM2-135M's architecture and tokenizer (its GGUF file's), random weights: a student of objective=online_kd's
    # default teacher's vocabulary, the one TRL's GKDTrainer can train beside it
    "smollm2": ["model=smollm2_135m", "model.init=random"],
}
# the shapes whose tokenizers choose the word pool (words of one token in each): the smollm2 shape reads the same
# texts (a word may be two of its tokens), so the other shapes' data stays what it was measured on
WORD_SHAPES = ("gpt2", "t5_small", "t5_base")


def word_pool(tokenizers) -> np.ndarray:
    """Lower-case words that each tokenizer encodes as exactly one token (with a leading space)."""
    import json

    vocab = json.loads((assets.path("gpt2_tokenizer") / "vocab.json").read_text())
    words = sorted({w[1:] for w in vocab if w[:1] == "Ġ" and w[1:].isascii() and w[1:].isalpha() and w[1:].islower()})
    keep = np.ones(len(words), dtype=bool)
    for tok in tokenizers:
        ids = tok([" " + w for w in words], add_special_tokens=False)["input_ids"]
        keep &= np.array([len(x) == 1 for x in ids])
    return np.array(words)[keep]


def lamini_lengths(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Instruction and response lengths (words) drawn like D_ALL: Table 1 subset shares and means."""
    paper = paper_numbers()
    paper.pop("all")
    subsets = list(paper)
    share = np.array([paper[s]["samples_M"] for s in subsets])
    pick = rng.choice(len(subsets), n, p=share / share.sum())

    def draw(key):
        mean = np.array([paper[s][key] for s in subsets])[pick]
        return np.exp(np.log(mean) - SIGMA ** 2 / 2 + SIGMA * rng.standard_normal(n))  # lognormal with that mean

    ins = np.clip(np.round(draw("avg_ins_len")), 1, MAX_WORDS - 1).astype(int)
    res = np.clip(np.round(draw("avg_res_len")), 1, None).astype(int)
    return ins, np.minimum(res, MAX_WORDS - ins)


def records(n: int, words: np.ndarray, seed: int, max_words: int = MAX_WORDS):
    import datasets

    rng = np.random.default_rng(seed)
    ins, res = lamini_lengths(n, rng)
    scale = max_words / MAX_WORDS  # --quick: the same shape, shorter
    ins, res = np.maximum(1, (ins * scale).astype(int)), np.maximum(1, (res * scale).astype(int))
    text = lambda k: " ".join(words[rng.integers(0, len(words), k)])  # noqa: E731
    return datasets.Dataset.from_dict({
        "instruction": [text(k) + "?" for k in ins],
        "response": [text(k) + "." for k in res],
    })


def compose(shape: str, *extra: str):
    """The train config of ``shape``, its model and optim nodes typed (ModelSpec, OptimSpec) as train.py types them."""
    from lamini_lm import config
    from lamini_lm.data.spec import DataSpec
    from lamini_lm.models.spec import ModelSpec
    from lamini_lm.training.spec import OptimSpec

    cfg = config.compose("train", SHAPES[shape] + list(extra))
    typed = {"model": ModelSpec, "optim": OptimSpec, "data": DataSpec}
    return SimpleNamespace(**{k: cfg[k] for k in cfg if k not in typed},
                           **{k: config.typed(cfg[k], t, k) for k, t in typed.items()})


def shape_model(shape: str, *extra: str):
    """The train config of ``shape`` (with the ``extra`` overrides: trainer=gpu on a GPU), its family and tokenizer."""
    from lamini_lm.models.backbone import build_family, load_tokenizer

    cfg = compose(shape, *extra)
    family = build_family(cfg.model)
    return cfg, family, load_tokenizer(cfg.model)


def examples(cfg, family, tokenizer, args, words):
    """The pool of tokenised examples the plans draw from, and the warm-up's."""
    from lamini_lm.data.tokenization import Tokenize

    tokenize = Tokenize(tokenizer, family.style(cfg.model.prompt_style, tokenizer), family,
                        cfg.data.max_source_length, cfg.data.max_target_length)
    pool = records(args.pool, words, args.seed, args.max_words).map(tokenize, batched=True)
    # one micro-batch of the same lengths as the timed ones: it pays the first-call costs, the heap's growth to a
    # micro-batch's working set among them (a run pays that once, in its first step)
    warm = records(args.micro_batch, words, args.seed + 2, args.max_words).map(tokenize, batched=True)
    return pool, warm
