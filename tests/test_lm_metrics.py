"""Tests for tasks.language.metrics on a tiny GPT-2 and a byte-level BPE trained in the test (no network)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")
pytest.importorskip("rouge_score")

from tasks.language.metrics import (  # noqa: E402
    activation_gradient_influence,
    generation_rouge,
    greedy_generate,
    influence_score,
    lissa_inverse_hvp,
    paper_lissa_inverse_hvp,
    perplexity,
    prompt_of,
    rouge_scores,
    sequence_nll,
    token_log_margins,
)

SENTENCES = [
    "Dave likes to eat apples in the morning.",
    "The cat sat on the warm mat.",
    "Dave walked his dog to the park.",
    "Rain fell softly over the quiet town.",
]
EOS = "<|endoftext|>"


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def make_tokenizer(sentences=SENTENCES, vocab_size=300):
    """Byte-level BPE trained on a few sentences, wrapped like GPT-2's (pad = eos, no BOS)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(sentences, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, pad_token=EOS)


def make_model(tokenizer, seed=0, dropout=0.0):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    cfg = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=32,
        n_embd=32,
        n_layer=2,
        n_head=2,
        resid_pdrop=dropout,
        embd_pdrop=dropout,
        attn_pdrop=dropout,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = GPT2LMHeadModel(cfg)
    model.eval()
    return model


def batch(tokenizer, sentences):
    enc = tokenizer(list(sentences), padding=True, return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"]


def slow_token_logprobs(model, ids):
    """log p(token t+1 | prefix) for one unpadded sequence, one position at a time."""
    with torch.no_grad():
        logits = model(input_ids=ids.unsqueeze(0)).logits[0].double()
    out = []
    for t in range(len(ids) - 1):
        logp = F.log_softmax(logits[t], dim=-1)
        out.append(logp)
    return logits, out


@pytest.fixture(scope="module", autouse=True)
def single_thread():
    """Tiny models: intra-op threading only adds contention (100x slower on a busy 2-core box)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tok():
    return make_tokenizer()


@pytest.fixture(scope="module")
def model(tok):
    return make_model(tok, seed=0)


@pytest.fixture(scope="module")
def memorised(tok):
    """Tiny GPT-2 trained to memorise SENTENCES[0] followed by EOS (so generation stops)."""
    m = make_model(tok, seed=1)
    ids = torch.tensor([tok(SENTENCES[0])["input_ids"] + [tok.eos_token_id]])
    mask = torch.ones_like(ids)
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    m.train()
    for _ in range(100):
        opt.zero_grad()
        sequence_nll(m, ids, mask).mean().backward()
        opt.step()
    m.eval()
    return m


# ---------------------------------------------------------------------------
# sequence_nll / token_log_margins / perplexity
# ---------------------------------------------------------------------------


def test_sequence_nll_matches_slow_loop(tok, model):
    ids, mask = batch(tok, SENTENCES)
    assert (mask.sum(1) != mask.shape[1]).any(), "the batch should contain padding"
    got = sequence_nll(model, ids, mask).detach().double()
    for i, s in enumerate(SENTENCES):
        seq = torch.tensor(tok(s)["input_ids"])
        _, logps = slow_token_logprobs(model, seq)
        nll = -sum(logps[t][seq[t + 1]].item() for t in range(len(seq) - 1)) / (len(seq) - 1)
        assert got[i].item() == pytest.approx(nll, rel=1e-5, abs=1e-6)


def test_padding_is_ignored(tok, model):
    s = SENTENCES[1]
    seq = torch.tensor([tok(s)["input_ids"]])
    alone = sequence_nll(model, seq, torch.ones_like(seq)).item()
    # Same sentence padded by 5 positions: once with the pad id, once with arbitrary
    # tokens under mask 0 (only the mask may decide what is padding).
    for filler in (tok.pad_token_id, 7):
        padded = torch.cat([seq, torch.full((1, 5), filler)], dim=1)
        pmask = torch.cat([torch.ones_like(seq), torch.zeros(1, 5, dtype=torch.long)], dim=1)
        assert sequence_nll(model, padded, pmask).item() == pytest.approx(alone, rel=1e-5)
        assert token_log_margins(model, padded, pmask).item() == pytest.approx(
            token_log_margins(model, seq, torch.ones_like(seq)).item(), rel=1e-5
        )
        assert perplexity(model, padded, pmask) == pytest.approx(math.exp(alone), rel=1e-5)


def test_sequence_nll_is_differentiable_and_keeps_mode(tok):
    m = make_model(tok, seed=3, dropout=0.1)
    m.train()
    ids, mask = batch(tok, SENTENCES[:2])
    loss = sequence_nll(m, ids, mask).mean()
    assert loss.requires_grad
    loss.backward()
    assert m.transformer.wte.weight.grad.abs().sum() > 0
    assert m.training  # training loss must not flip the model to eval


def test_sequence_nll_rejects_bad_batches(tok, model):
    ids, mask = batch(tok, SENTENCES[:2])
    left = mask.flip(1)  # left padding
    with pytest.raises(ValueError, match="right-padded"):
        sequence_nll(model, ids, left)
    one = torch.tensor([[5, 6, 7], [5, 0, 0]])
    one_mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    with pytest.raises(ValueError, match="fewer than 2"):
        sequence_nll(model, one, one_mask)
    with pytest.raises(ValueError, match="shape"):
        sequence_nll(model, ids, mask[:, :-1])


def test_token_log_margins_match_slow_loop(tok, model):
    ids, mask = batch(tok, SENTENCES)
    got = token_log_margins(model, ids, mask).double()
    assert got.shape == (len(SENTENCES),)
    for i, s in enumerate(SENTENCES):
        seq = torch.tensor(tok(s)["input_ids"])
        logits, _ = slow_token_logprobs(model, seq)
        margins = []
        for t in range(len(seq) - 1):
            row = logits[t]
            c = int(seq[t + 1])
            others = torch.cat([row[:c], row[c + 1 :]])
            margins.append(row[c].item() - torch.logsumexp(others, 0).item())
        assert got[i].item() == pytest.approx(float(np.mean(margins)), rel=1e-4, abs=1e-5)


def test_margin_equals_log_odds(tok, model):
    """margin = log p - log(1 - p) of the correct token, averaged: an independent identity."""
    seq = torch.tensor([tok(SENTENCES[2])["input_ids"]])
    with torch.no_grad():
        logp = F.log_softmax(model(input_ids=seq).logits[0, :-1].double(), -1)
    p = logp.gather(1, seq[0, 1:, None]).squeeze(1)
    log_odds = (p - torch.log1p(-p.exp())).mean().item()
    assert token_log_margins(model, seq, torch.ones_like(seq)).item() == pytest.approx(log_odds, rel=1e-4)


def test_perplexity_is_token_weighted(tok, model):
    ids, mask = batch(tok, SENTENCES)
    total, count, per_sentence = 0.0, 0, []
    for s in SENTENCES:
        seq = torch.tensor(tok(s)["input_ids"])
        _, logps = slow_token_logprobs(model, seq)
        nlls = [-logps[t][seq[t + 1]].item() for t in range(len(seq) - 1)]
        total += sum(nlls)
        count += len(nlls)
        per_sentence.append(math.exp(np.mean(nlls)))
    ppl = perplexity(model, ids, mask)
    assert isinstance(ppl, float)
    assert ppl == pytest.approx(math.exp(total / count), rel=1e-5)
    # Sentences differ in length, so the mean of per-sentence perplexities is different.
    assert abs(ppl - float(np.mean(per_sentence))) > 1e-3 * ppl


def test_perplexity_eval_mode_deterministic_and_restores_mode(tok):
    m = make_model(tok, seed=4, dropout=0.5)
    m.train()
    ids, mask = batch(tok, SENTENCES)
    first = perplexity(m, ids, mask)
    second = perplexity(m, ids, mask)
    assert first == second  # dropout off during evaluation
    assert m.training  # caller's mode restored
    m.eval()
    assert perplexity(m, ids, mask) == pytest.approx(first, rel=1e-6)


def test_perplexity_overflow_is_inf(tok):
    m = make_model(tok, seed=6)
    with torch.no_grad():
        m.lm_head.weight.mul_(1e4)  # absurdly confident wrong predictions: mean NLL >> 709
    ids, mask = batch(tok, SENTENCES[:2])
    assert perplexity(m, ids, mask) == math.inf


def test_memorised_sentence(tok, model, memorised):
    s = SENTENCES[0]
    ids, mask = batch(tok, [s])
    ppl_mem = perplexity(memorised, ids, mask)
    ppl_raw = perplexity(model, ids, mask)
    assert ppl_mem < 1.1
    assert ppl_raw > 50 * ppl_mem

    prompt = prompt_of(s)
    assert prompt == "Dave likes"
    gens = greedy_generate(memorised, tok, [prompt], max_new_tokens=20)
    assert gens == [s]  # full text: prompt + continuation, generation stops at EOS
    assert greedy_generate(memorised, tok, [prompt], max_new_tokens=20) == gens  # deterministic

    scores, generations = generation_rouge(memorised, tok, [s])
    assert generations == [s]
    assert scores == {"rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0}

    raw_scores, _ = generation_rouge(model, tok, [s])
    assert raw_scores["rouge1"] < 0.9


def test_greedy_generate_returns_full_text(tok, model):
    prompts = [prompt_of(s) for s in SENTENCES[:2]]
    gens = greedy_generate(model, tok, prompts, max_new_tokens=5)
    assert len(gens) == 2
    for p, g in zip(prompts, gens):
        assert g.startswith(p)
        assert len(tok(g)["input_ids"]) <= len(tok(p)["input_ids"]) + 5
    # One prompt at a time: the output for a prompt does not depend on its neighbours.
    assert greedy_generate(model, tok, prompts[1:], max_new_tokens=5) == gens[1:]
    assert greedy_generate(model, tok, prompts, max_new_tokens=0) == prompts
    with pytest.raises(ValueError):
        greedy_generate(model, tok, [""], max_new_tokens=3)


def test_prompt_of():
    assert prompt_of("Dave likes to eat apples.") == "Dave likes"
    assert prompt_of("Dave  likes to eat", words=3) == "Dave  likes to"  # verbatim prefix
    assert prompt_of("Hello", words=2) == "Hello"
    assert prompt_of("one two three", words=1) == "one"
    with pytest.raises(ValueError):
        prompt_of("a b", words=0)


def test_rouge_scores_hand_examples():
    same = rouge_scores(["the cat sat on the mat"], ["the cat sat on the mat"])
    assert same == {"rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0}
    disjoint = rouge_scores(["apples bananas"], ["the cat sat"])
    assert disjoint == {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    # pred "the cat sat" vs ref "the cat ran away":
    #   unigrams overlap {the, cat}: P = 2/3, R = 2/4 -> F1 = 2PR/(P+R) = 4/7
    #   bigrams overlap {the cat}:   P = 1/2, R = 1/3 -> F2 = 2/5
    #   LCS "the cat" = 2 tokens -> rougeL = 4/7
    part = rouge_scores(["the cat sat"], ["the cat ran away"])
    assert part["rouge1"] == pytest.approx(4 / 7)
    assert part["rouge2"] == pytest.approx(2 / 5)
    assert part["rougeL"] == pytest.approx(4 / 7)
    # Mean over pairs: (1 + 4/7) / 2; the stemmer maps "running" to "run".
    mean = rouge_scores(["the cat sat", "Running dogs!"], ["the cat ran away", "run dog"])
    assert mean["rouge1"] == pytest.approx((4 / 7 + 1.0) / 2)


def test_rouge_scores_errors():
    with pytest.raises(ValueError):
        rouge_scores([], [])
    with pytest.raises(ValueError):
        rouge_scores(["a"], ["a", "b"])


# ---------------------------------------------------------------------------
# LiSSA / influence on a least-squares problem with an explicit Hessian
# ---------------------------------------------------------------------------


def _least_squares(seed=0, n=8):
    """Linear(3 -> 1) with bias, loss 0.5 * mean((Xw + b - y)^2); H = Xa^T Xa / n, Xa = [X, 1]."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 3, generator=g, dtype=torch.float64)
    y = torch.randn(n, 1, generator=g, dtype=torch.float64)
    lin = torch.nn.Linear(3, 1).double()
    with torch.no_grad():
        lin.weight.copy_(torch.randn(1, 3, generator=g, dtype=torch.float64))
        lin.bias.copy_(torch.randn(1, generator=g, dtype=torch.float64))
    params = [lin.weight, lin.bias]
    Xa = torch.cat([X, torch.ones(n, 1, dtype=torch.float64)], dim=1)
    H = Xa.T @ Xa / n

    def loss_on(rows):
        def fn():
            r = lin(X[rows]) - y[rows]
            return 0.5 * (r**2).mean()

        return fn

    def flat_grad(rows):
        r = Xa[rows] @ torch.cat([lin.weight.detach().flatten(), lin.bias.detach()]) - y[rows, 0]
        return Xa[rows].T @ r / len(rows)

    return lin, params, H, loss_on, flat_grad, list(range(n))


def _split(flat):
    return [flat[:3].reshape(1, 3), flat[3:].reshape(1)]


def _flat(tensors):
    return torch.cat([t.flatten() for t in tensors])


def test_lissa_converges_to_damped_inverse_hvp():
    lin, params, H, loss_on, _, rows = _least_squares()
    v = torch.tensor([0.3, -1.0, 2.0, 0.5], dtype=torch.float64)
    lam_max = torch.linalg.eigvalsh(H).max().item()
    d, s = 0.01, 2.0 * lam_max
    got = _flat(lissa_inverse_hvp(lin, loss_on(rows), _split(v), params, damping=d, scale=s, iterations=3000))
    exact = torch.linalg.solve(H + d * s * torch.eye(4, dtype=torch.float64), v)
    assert torch.allclose(got, exact, rtol=1e-7, atol=1e-9)
    # Not the undamped inverse: damping * scale is a visible ridge here.
    assert not torch.allclose(got, torch.linalg.solve(H, v), rtol=1e-3)


def test_lissa_partial_sums_are_exact():
    """After k steps h_k = sum_{j<=k} A^j v with A = (1-d) I - H/s; result h_k / s."""
    lin, params, H, loss_on, _, rows = _least_squares(seed=1)
    v = torch.tensor([1.0, 0.0, -0.5, 0.25], dtype=torch.float64)
    d, s = 0.1, 7.0
    A = (1 - d) * torch.eye(4, dtype=torch.float64) - H / s
    for k in (0, 1, 3):
        expected = sum(torch.linalg.matrix_power(A, j) @ v for j in range(k + 1)) / s
        got = _flat(lissa_inverse_hvp(lin, loss_on(rows), _split(v), params, damping=d, scale=s, iterations=k))
        assert torch.allclose(got, expected, atol=1e-12)


def test_lissa_normalized_is_a_direction():
    lin, params, H, loss_on, _, rows = _least_squares(seed=2)
    evals, evecs = torch.linalg.eigh(H)
    v = 3.0 * evecs[:, -1]  # eigenvector: every iterate stays parallel to it
    s = 2.0 * evals.max().item()
    got = _flat(lissa_inverse_hvp(lin, loss_on(rows), _split(v), params, scale=s, iterations=50, normalize=True))
    assert got.norm().item() == pytest.approx(1.0 / s, rel=1e-9)
    cos = torch.dot(got, v) / (got.norm() * v.norm())
    assert cos.item() == pytest.approx(1.0, abs=1e-9)


def _normalised_fixed_point(M: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Closed form of the fixed point of h -> normalise(v + M h) for symmetric M: the unit vector
    h = (s I - M)^-1 v, with s > lambda_max(M) found by bisection on ||(s I - M)^-1 v|| = 1."""
    evals, evecs = torch.linalg.eigh(M)
    w = evecs.T @ v
    norm = lambda s: torch.sqrt(((w / (s - evals)) ** 2).sum()).item()  # noqa: E731  decreasing in s
    lo, hi = evals.max().item() + 1e-12, evals.max().item() + 10 * v.norm().item() + 10
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if norm(mid) > 1 else (lo, mid)
    s = 0.5 * (lo + hi)
    return evecs @ (w / (s - evals))


def test_paper_lissa_matches_its_closed_form_on_a_quadratic():
    """Eqs. (3)-(4) as printed: the unit h with (s I - c H) h = v, c = (1 - damping) / scale."""
    lin, params, H, loss_on, _, rows = _least_squares(seed=4)
    v = torch.tensor([0.3, -1.0, 2.0, 0.5], dtype=torch.float64)
    d, s = 0.01, 2.0 * torch.linalg.eigvalsh(H).max().item()
    got = _flat(paper_lissa_inverse_hvp(lin, loss_on(rows), _split(v), params, damping=d, scale=s, iterations=300))
    exact = _normalised_fixed_point((1 - d) / s * H, v)
    assert got.norm().item() == pytest.approx(1.0, rel=1e-9)
    assert torch.allclose(got, exact, atol=1e-9)
    # ...which is NOT the direction of an inverse-Hessian-vector product: it leans towards H v, not H^-1 v
    ihvp = torch.linalg.solve(H, v)
    cos = lambda a, b: (a @ b / (a.norm() * b.norm())).item()  # noqa: E731
    assert cos(got, ihvp) < 0.95 and cos(got, H @ v) > cos(v, H @ v)
    # one step from v, by hand: normalise(v + c H v / |v|)
    one = _flat(paper_lissa_inverse_hvp(lin, loss_on(rows), _split(v), params, damping=d, scale=s, iterations=1))
    u = v + (1 - d) / s * H @ (v / v.norm())
    assert torch.allclose(one, u / u.norm(), atol=1e-12)


def test_normalised_lissa_is_a_damped_inverse_hvp_direction():
    """The standard recursion with eq. (4) normalisation converges to the direction of (H + mu I)^-1 v, a damped
    inverse-HVP whose damping mu is set by ||v||, not by the damping parameter."""
    lin, params, H, loss_on, _, rows = _least_squares(seed=5)
    v = torch.tensor([1.0, 0.5, -2.0, 0.25], dtype=torch.float64)
    d, s = 0.01, 2.0 * torch.linalg.eigvalsh(H).max().item()
    eye = torch.eye(4, dtype=torch.float64)
    got = _flat(lissa_inverse_hvp(lin, loss_on(rows), _split(v), params, damping=d, scale=s, iterations=400,
                                  normalize=True)) * s  # the function divides the unit iterate by scale
    fixed = _normalised_fixed_point((1 - d) * eye - H / s, v)
    assert torch.allclose(got, fixed, atol=1e-9)
    mu = s * ((fixed @ (v + ((1 - d) * eye - H / s) @ fixed)) - 1 + d)  # s_hat = ||v + M h|| = h . (v + M h)
    direction = torch.linalg.solve(H + mu * eye, v)
    assert torch.allclose(got, direction / direction.norm(), atol=1e-8)


def test_influence_estimators_differ_and_are_validated():
    lin, params, H, loss_on, flat_grad, rows = _least_squares(seed=6)
    f = loss_on(rows[:3])
    kwargs = dict(hessian_loss_fn=loss_on(rows), damping=0.01, scale=2 * torch.linalg.eigvalsh(H).max().item())
    lissa = influence_score(lin, f, f, params, iterations=2000, **kwargs)
    paper = influence_score(lin, f, f, params, estimator="paper", iterations=200, **kwargs)
    g = flat_grad(rows[:3])
    assert lissa == pytest.approx(-(g @ torch.linalg.solve(H + kwargs["damping"] * kwargs["scale"] * torch.eye(
        4, dtype=torch.float64), g)).item(), rel=1e-6)
    h = _normalised_fixed_point((1 - 0.01) / kwargs["scale"] * H, g)
    assert paper == pytest.approx(-(g @ h).item(), rel=1e-8)
    with pytest.raises(ValueError, match="estimator"):
        influence_score(lin, f, f, params, estimator="exact")


def test_lissa_divergence_and_validation():
    lin, params, H, loss_on, _, rows = _least_squares()
    lam_max = torch.linalg.eigvalsh(H).max().item()
    v = _split(torch.ones(4, dtype=torch.float64))
    with pytest.raises(FloatingPointError):
        lissa_inverse_hvp(lin, loss_on(rows), v, params, scale=lam_max / 4, iterations=5000)
    with pytest.raises(ValueError):
        lissa_inverse_hvp(lin, loss_on(rows), v[:1], params)
    with pytest.raises(ValueError):
        lissa_inverse_hvp(lin, loss_on(rows), [v[1], v[0]], params)


def test_influence_score_matches_exact_formula():
    lin, params, H, loss_on, flat_grad, rows = _least_squares(seed=3)
    d = 0.01
    s = 2.0 * torch.linalg.eigvalsh(H).max().item()
    ridge = H + d * s * torch.eye(4, dtype=torch.float64)
    test_rows, train_row = [5], [2]

    # Default: Hessian of the train loss (here the full training objective).
    got = influence_score(lin, loss_on(rows), loss_on(test_rows), params, damping=d, scale=s, iterations=3000)
    exact = -torch.dot(flat_grad(rows), torch.linalg.solve(ridge, flat_grad(test_rows))).item()
    assert got == pytest.approx(exact, rel=1e-6)

    # Koh & Liang proper: one training point's gradient, Hessian of the full objective.
    got1 = influence_score(
        lin, loss_on(train_row), loss_on(test_rows), params,
        hessian_loss_fn=loss_on(rows), damping=d, scale=s, iterations=3000,
    )
    exact1 = -torch.dot(flat_grad(train_row), torch.linalg.solve(ridge, flat_grad(test_rows))).item()
    assert got1 == pytest.approx(exact1, rel=1e-6)
    # Self-influence of a point is negative (up-weighting it lowers its own loss).
    self_inf = influence_score(
        lin, loss_on(test_rows), loss_on(test_rows), params,
        hessian_loss_fn=loss_on(rows), damping=d, scale=s, iterations=3000,
    )
    assert self_inf < 0


def test_influence_score_on_tiny_gpt2(tok):
    m = make_model(tok, seed=5, dropout=0.1)
    m.train()
    ids, mask = batch(tok, SENTENCES)
    params = [m.transformer.ln_f.bias]
    train_fn = lambda: sequence_nll(m, ids[:3], mask[:3]).mean()  # noqa: E731
    test_fn = lambda: sequence_nll(m, ids[3:], mask[3:]).mean()  # noqa: E731
    score = influence_score(m, train_fn, test_fn, params, scale=50.0, iterations=10)
    assert math.isfinite(score)
    assert m.training
    assert m.transformer.ln_f.bias.grad is None  # autograd.grad, not .backward()


# ---------------------------------------------------------------------------
# activation / gradient cosine
# ---------------------------------------------------------------------------


def _activations(model, ids):
    with torch.no_grad():
        pos = torch.arange(ids.shape[-1])
        return model.transformer.wte(ids) + model.transformer.wpe(pos)


def test_activation_gradient_influence_hand_values(tok, model):
    V, dim = model.transformer.wte.weight.shape
    ids = torch.tensor([[11, 23, 42, 77], [5, 9, 0, 0]])  # distinct real tokens
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    acts = _activations(model, ids)
    G = torch.zeros(V, dim)
    for r in range(2):
        for c in range(int(mask[r].sum())):
            G[ids[r, c]] = acts[r, c]
    G[0] = -1.0  # padding token id: must not count
    assert activation_gradient_influence(model, ids, mask, G) == pytest.approx(1.0, abs=1e-6)
    assert activation_gradient_influence(model, ids, mask, -G) == pytest.approx(-1.0, abs=1e-6)
    assert activation_gradient_influence(model, ids, mask, 5.0 * G) == pytest.approx(1.0, abs=1e-6)
    half = G.clone()
    half[11] = 0.0
    half[23] = 0.0
    half[5] = 0.0  # 3 of the 6 real tokens have an all-zero gradient row
    assert activation_gradient_influence(model, ids, mask, half) == pytest.approx(0.5, abs=1e-6)
    # The position embedding is part of the activation: word embeddings alone give < 1.
    word_only = torch.zeros(V, dim)
    word_only[ids[0]] = model.transformer.wte.weight[ids[0]].detach()
    score = activation_gradient_influence(model, ids[0], mask[0], word_only)
    assert score < 0.99


def test_activation_gradient_influence_repeated_token(tok, model):
    V, dim = model.transformer.wte.weight.shape
    ids = torch.tensor([7, 8, 7])
    mask = torch.ones(3, dtype=torch.long)
    g = torch.randn(V, dim, generator=torch.Generator().manual_seed(0))
    acts = _activations(model, ids)
    expected = np.mean([F.cosine_similarity(acts[i], g[ids[i]], dim=0).item() for i in range(3)])
    got = activation_gradient_influence(model, ids, mask, g)
    assert got == pytest.approx(expected, abs=1e-6)
    with pytest.raises(ValueError):
        activation_gradient_influence(model, ids, mask, g[:, :-1])


def test_activation_gradient_influence_without_position_embedding():
    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(10, 4)

        def get_input_embeddings(self):
            return self.emb

    torch.manual_seed(0)
    m = Tiny()
    ids = torch.tensor([[1, 2, 3]])
    mask = torch.ones_like(ids)
    G = m.emb.weight.detach().clone()
    assert activation_gradient_influence(m, ids, mask, G) == pytest.approx(1.0, abs=1e-6)
