"""The objective group's shared parts: the divergences against the formulas computed here by hand, the family's
target logits in their documented order, the sequence objective as the plain NLL."""

import math

import numpy as np
import pytest
import torch

from lamini_lm.training.objectives import divergence as D


def _softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


def _kl(p, q):
    return sum(a * math.log(a / b) for a, b in zip(p, q) if a > 0)


def _reference(p, q, kind, beta):
    """The divergence between teacher p and student q (probability lists) as GKD's Eq. 1 and TRL's reading of its
    ends define it."""
    if kind == "forward_kl" or (kind == "jsd" and beta == 0):
        return _kl(p, q)
    if kind == "reverse_kl" or (kind == "jsd" and beta == 1):
        return _kl(q, p)
    m = [beta * a + (1 - beta) * b for a, b in zip(p, q)]
    return beta * _kl(p, m) + (1 - beta) * _kl(q, m)


KINDS = [("forward_kl", 0.5), ("reverse_kl", 0.5), ("jsd", 0.5), ("jsd", 0.1), ("jsd", 0.0), ("jsd", 1.0)]


@pytest.mark.parametrize("kind,beta", KINDS)
@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_full_vocabulary_divergences_are_the_formulas(kind, beta, temperature):
    rng = np.random.default_rng(0)
    t, s = rng.normal(size=(3, 7)) * 2, rng.normal(size=(3, 7)) * 2
    got = D.full(torch.tensor(t), torch.tensor(s), kind, temperature, beta)
    want = [_reference(_softmax(a / temperature), _softmax(b / temperature), kind, beta) for a, b in zip(t, s)]
    assert got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-15)
    assert (got > 0).all()


def _buckets(top_probs, rest, temperature):
    """k + 1 bucket probabilities (the rest floored, then all renormalised) tempered: p^(1/T), renormalised."""
    p = np.array([*top_probs, max(rest, D.REST_FLOOR)])
    p = p / p.sum()
    w = p ** (1 / temperature)
    return w / w.sum()


@pytest.mark.parametrize("kind,beta", KINDS)
@pytest.mark.parametrize("temperature", [1.0, 0.5, 3.0])
def test_top_k_divergence_completes_both_sides_with_a_rest_bucket(kind, beta, temperature):
    rng = np.random.default_rng(1)
    student = rng.normal(size=(2, 6))
    # row 0: the teacher's top-3 as student ids 4, 0, 2; row 1: only two alternatives (the third is padding), and
    # a top-k whose float16 rounding sums past 1 (its rest is floored)
    ids = torch.tensor([[4, 0, 2], [1, 5, -1]])
    teacher = torch.tensor([[math.log(0.5), math.log(0.2), math.log(0.1)],
                            [math.log(0.7), math.log(0.3001), -math.inf]], dtype=torch.float64)
    got = D.top_k(torch.log_softmax(torch.tensor(student), -1), ids, teacher, kind, temperature, beta)
    want = []
    for row, (s_row, i_row, t_row) in enumerate(zip(student, ids.tolist(), teacher.tolist())):
        q = _softmax(s_row)
        keep = [j for j, i in enumerate(i_row) if i >= 0]
        t_top = [math.exp(t_row[j]) for j in keep]
        s_top = [q[i_row[j]] for j in keep]
        want.append(_reference(_buckets(t_top, 1 - sum(t_top), temperature),
                               _buckets(s_top, 1 - sum(s_top), temperature), kind, beta))
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)


def test_top_k_becomes_the_full_divergence_as_k_reaches_the_vocabulary():
    rng = np.random.default_rng(2)
    t, s = torch.tensor(rng.normal(size=(4, 9))), torch.tensor(rng.normal(size=(4, 9)))
    t_lp = torch.log_softmax(t, -1)
    order = t_lp.argsort(-1, descending=True)
    for kind, beta in KINDS:
        full = D.full(t, s, kind, 1.0, beta)
        sparse = D.top_k(torch.log_softmax(s, -1), order, t_lp.gather(-1, order), kind, 1.0, beta)
        # the two rests are both floored at REST_FLOOR: the only difference left
        torch.testing.assert_close(sparse, full, rtol=0, atol=1e-5)
        assert not torch.allclose(D.top_k(torch.log_softmax(s, -1), order[:, :3], t_lp.gather(-1, order[:, :3]),
                                          kind, 1.0, beta), full, atol=1e-3)


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_uld_is_the_l1_distance_of_sorted_probabilities(temperature):
    rng = np.random.default_rng(3)
    student = rng.normal(size=(2, 8)) * 2
    # the teacher's top-3 (of another vocabulary) in any order; row 1 has two
    teacher = torch.tensor([[math.log(0.1), math.log(0.6), math.log(0.2)], [math.log(0.9), -math.inf, math.log(0.05)]],
                           dtype=torch.float64)
    got = D.uld(torch.log_softmax(torch.tensor(student), -1), teacher, temperature)
    want = []
    for s_row, t_row in zip(student, teacher.tolist()):
        t_top = sorted((math.exp(x) for x in t_row if x > -math.inf), reverse=True)
        s_top = sorted(_softmax(s_row), reverse=True)[:len(t_top)]
        t_b, s_b = _buckets(t_top, 1 - sum(t_top), temperature), _buckets(s_top, 1 - sum(s_top), temperature)
        want.append(float(np.abs(t_b - s_b).sum()))
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)
    # a student whose sorted probabilities are the teacher's is at 0, whichever tokens hold them
    probs = torch.tensor([[0.5, 0.3, 0.2]], dtype=torch.float64)
    assert D.uld(probs.log()[:, [2, 0, 1]], probs.log(), temperature).abs().max() < 1e-12


@pytest.mark.parametrize("temperature", [0.5, 1.0, 4.0])
def test_a_student_equal_to_the_stored_teacher_is_at_zero_with_finite_gradients(temperature):
    torch.manual_seed(0)
    logits = torch.randn(5, 11, dtype=torch.float64, requires_grad=True)
    top = torch.log_softmax(logits, -1).detach().topk(4, -1)
    ids, t_lp = top.indices.clone(), top.values.clone()
    ids[0, 2:], t_lp[0, 2:] = -1, -math.inf  # padding on one row
    for kind, beta in KINDS:
        lp = torch.log_softmax(logits, -1)
        d = D.top_k(lp, ids, t_lp, kind, temperature, beta)
        assert d.abs().max() < 1e-12, kind
        (g,) = torch.autograd.grad(d.sum() + D.uld(lp, t_lp, temperature).sum(), logits)
        assert torch.isfinite(g).all(), kind


def test_an_unknown_divergence_is_refused():
    with pytest.raises(ValueError, match="not one of forward_kl, reverse_kl, jsd"):
        D.full(torch.zeros(1, 2), torch.zeros(1, 2), "kl")


@pytest.mark.parametrize("model_name", ["tiny_gpt2", "tiny_t5"])
def test_target_logits_come_in_the_documented_order_padded_and_packed(model_name):
    """Each example's targets as Family.target_positions lists them, examples in order, padded or packed: what an
    objective's per-target columns are aligned with. mask_prompt=false makes the decoder's first label a token no
    mode predicts."""
    from lamini_lm import config
    from lamini_lm.data.collate import Collate
    from lamini_lm.data.tokenization import Tokenize
    from lamini_lm.models.backbone import build_family, load_model, load_tokenizer
    from lamini_lm.models.spec import ModelSpec
    from lamini_lm.training.objectives.sequence import Sequence

    spec = config.typed(config.compose("train", [f"model={model_name}"]).model, ModelSpec, "model")
    family = build_family(spec)
    torch.manual_seed(0)
    model = load_model(spec, family).to(torch.float64).eval()
    tok = load_tokenizer(spec)
    records = {"instruction": ["Name a colour.", "Say hi to the people of a small town."],
               "response": ["Blue, like the sky.", "Hi!"]}
    rows = Tokenize(tok, family.style(), family, 64, 64, mask_prompt=False)(records)
    rows = {"input_ids": rows["input_ids"], "labels": rows["labels"]}
    want = [y[p] for y in rows["labels"] for p in family.target_positions(y)]
    got = {}
    with torch.no_grad():
        for packed in (False, True):
            batch = Collate(tok.pad_token_id, family.separate_labels, packed=packed)((rows, None))
            logits, targets = family.target_logits(model, batch)
            assert targets.tolist() == want and logits.shape == (len(want), model.config.vocab_size)
            got[packed] = logits
            # the sequence objective is the family's NLL, unchanged
            loss = Sequence().loss(family, model, batch)
            assert loss.logs == {} and torch.equal(loss.total, family.token_nll(model, batch))
            assert torch.isclose(loss.total, torch.nn.functional.cross_entropy(logits, targets, reduction="sum"),
                                 rtol=1e-12)
    torch.testing.assert_close(got[True], got[False], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("packed", [False, True])
def test_a_column_of_width_0_is_one_sequence_per_example(packed):
    """An objective's per-example sequences (a teacher's own token ids) come apart per example, in the batch's
    example order, beside the per-target columns."""
    from lamini_lm.data.collate import Collate

    rows = {"input_ids": [[5, 6, 7], [8, 9]], "labels": [[-100, 6, 7], [-100, 9]],
            "teacher_ids": [np.array([1, 2, 3, 4], np.int32), np.array([5], np.int32)],
            "per_target": [np.array([1.0, 2.0]), np.array([3.0])]}
    batch = Collate(0, False, packed=packed, columns={"teacher_ids": 0, "per_target": 1})((rows, None))
    assert [t.tolist() for t in batch["teacher_ids"]] == [[1, 2, 3, 4], [5]]
    assert batch["teacher_ids"][0].dtype == torch.int32
    assert batch["per_target"].tolist() == [[1.0], [2.0], [3.0]]
