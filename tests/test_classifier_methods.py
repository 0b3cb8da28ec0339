"""Classifier unlearning methods (scrub, random-label, salun, neggrad-plus, l1-sparse, fisher) on tiny digits.

One original is trained on a small MLP with a skewed forget set (80% of 60 points from two classes), so
forgetting is concentrated and measurable; every method then runs once at its defaults with a fixed seed.
"""
import numpy as np
import pytest
import torch

from bench.context import UnlearnContext
from bench.registry import METHODS
from bench.task import TaskData
from methods.fisher import FisherForgetting
from methods.neggrad import L1Sparse, NegGradPlus
from methods.relabel import RandomLabel, SalUn
from methods.toolkit import fisher_diagonal, random_wrong_labels, saliency_mask
from tasks.digits import Digits

SEED = 7
RETAIN_KEPT = 0.8  # an unlearned model keeps at least this fraction of the original's retain accuracy


@pytest.fixture(scope="module")
def setup(skewed_digits):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield skewed_digits
    torch.set_num_threads(threads)


def empirical_fisher(model, ctx, batches, batch_size):
    """Fisher forgetting's retain Fisher: the toolkit's fisher_diagonal over its charged batches."""
    method = FisherForgetting(steps=batches, batch_size=batch_size)
    return fisher_diagonal(model, ctx.task, method._charged_batches(ctx, model))


def _context(setup, seed=SEED, **kwargs):
    task, data, _ = setup
    return UnlearnContext(task=task, data=data, seed=seed, **kwargs)


def _run(setup, method, seed=SEED):
    ctx = _context(setup, seed)
    out = method.unlearn(setup[2], ctx)
    assert ctx.steps_used == method.steps
    return out


def _accuracy(setup, model, split):
    task, data, _ = setup
    return task.evaluate(model, getattr(data, split))["accuracy"]


def _loss(setup, model, split):
    task, data, _ = setup
    return task.evaluate(model, getattr(data, split))["loss"]


def _flat(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_the_forget_set_is_concentrated_and_learned(setup):
    task, data, original = setup
    counts = np.sort(np.bincount(data.train.y.numpy()[data.forget_idx], minlength=10))[::-1]
    assert counts[:2].sum() >= 48
    assert _accuracy(setup, original, "forget") > 0.9 and _accuracy(setup, original, "retain") > 0.9


# Methods that, at their defaults, lower forget accuracy below the original's (noop's) and keep retain accuracy.
# Measured (forget / retain accuracy; original 0.967 / 0.946): scrub 0.483 / 0.847, random-label 0.917 / 0.946,
# salun 0.917 / 0.946 (both with the relabelled term at weight 0.1), fisher 0.950 / 0.909. Fisher's damage is not selective here: it passes the forget check
# by one example of 60 and loses more retain points than forget points, because this forget set is learned
# through features the retain set shares (test_fisher_counts_..._where_fisher_is_small checks the mechanism).
@pytest.mark.parametrize("name", ["scrub", "random-label", "salun", "fisher"])
def test_method_forgets_and_keeps_retain_accuracy(setup, name):
    original = setup[2]
    out = _run(setup, METHODS.get(name)())
    assert _accuracy(setup, out, "forget") < _accuracy(setup, original, "forget")
    assert _accuracy(setup, out, "retain") >= RETAIN_KEPT * _accuracy(setup, original, "retain")
    assert _loss(setup, out, "forget") > _loss(setup, original, "forget")


def test_neggrad_plus_ascends_on_forget(setup):
    """Declared limitation: at the paper's beta = 0.999 the forget term weighs 0.001, and this original
    generalises to its forget set (forget accuracy 0.967, validation 0.91), so 100 steps leave forget
    accuracy where retain fine-tuning leaves it (measured forget / retain 0.983 / 0.957; with beta = 0.9,
    0.917 / 0.956). Weaker check: the ascent term raises the forget loss over the same run without it
    (beta = 1, identical batches), and a stronger forget weight (beta = 0.9) does forget."""
    original = setup[2]
    neggrad, finetune = _run(setup, NegGradPlus()), _run(setup, NegGradPlus(beta=1.0))
    assert _loss(setup, neggrad, "forget") > _loss(setup, finetune, "forget")
    assert _accuracy(setup, neggrad, "retain") >= RETAIN_KEPT * _accuracy(setup, original, "retain")
    strong = _run(setup, NegGradPlus(beta=0.9))
    assert _accuracy(setup, strong, "forget") < _accuracy(setup, original, "forget")
    assert _accuracy(setup, strong, "retain") >= RETAIN_KEPT * _accuracy(setup, original, "retain")


def test_l1_sparse_shrinks_weights(setup):
    """Declared limitation: l1-sparse is retain fine-tuning with a small decaying L1 penalty; on an original
    that generalises to its forget set, fine-tuning does not lower forget accuracy (measured forget / retain
    0.983 / 0.956; Jia et al. target large over-fitted models, where sparsity narrows the gap to retraining).
    Weaker check: the penalty is active (the L1 norm ends below that of the same run with gamma = 0, which
    itself changes the original) and retain accuracy is kept."""
    original = setup[2]
    sparse, plain = _run(setup, L1Sparse()), _run(setup, L1Sparse(gamma=0.0))
    assert not torch.equal(_flat(plain), _flat(original))
    assert float(_flat(sparse).abs().sum()) < float(_flat(plain).abs().sum()) - 1.0
    assert _accuracy(setup, sparse, "retain") >= RETAIN_KEPT * _accuracy(setup, original, "retain")


def test_l1_sparse_penalty_decays_linearly_to_zero():
    method = L1Sparse(gamma=5e-4, steps=4)
    assert [method.penalty_weight(t) for t in range(4)] == pytest.approx([5e-4, 3.75e-4, 2.5e-4, 1.25e-4])


def test_random_labels_are_never_the_true_label():
    y = torch.arange(10).repeat(500)
    labels = random_wrong_labels(y, 10, torch.Generator().manual_seed(0))
    assert not bool((labels == y).any())
    assert labels.min() >= 0 and labels.max() <= 9
    counts = torch.bincount(labels[y == 3], minlength=10)  # the nine wrong classes, about evenly
    assert counts[3] == 0 and int(counts[torch.arange(10) != 3].min()) > 30
    again = random_wrong_labels(y, 10, torch.Generator().manual_seed(0))
    assert torch.equal(labels, again)


def test_salun_changes_only_masked_weights(setup):
    original = setup[2]
    method = SalUn()
    masks = saliency_mask(original, setup[0], _context(setup).forget, method.mask_fraction, method.batch_size)
    total = sum(m.numel() for m in masks.values())
    assert sum(int(m.sum()) for m in masks.values()) == round(0.5 * total)
    out = _run(setup, method)
    before, after = dict(original.named_parameters()), dict(out.named_parameters())
    changed = 0
    for name, mask in masks.items():
        assert torch.equal(after[name][~mask], before[name][~mask]), f"{name}: an unmasked weight changed"
        changed += int((after[name][mask] != before[name][mask]).sum())
    assert changed > 0.5 * sum(int(m.sum()) for m in masks.values())
    for p in out.parameters():  # no gradient hooks left behind on the returned model
        assert not p._backward_hooks


def test_salun_with_an_empty_mask_changes_nothing(setup):
    original = setup[2]
    out = _run(setup, SalUn(mask_fraction=0.0, steps=5))
    assert torch.equal(_flat(out), _flat(original))


def test_salun_mask_follows_forget_gradient(setup):
    """The masked weights have larger forget-loss gradients than the unmasked ones (global threshold)."""
    task, data, original = setup
    masks = saliency_mask(original, setup[0], _context(setup).forget, 0.5, None)
    loss = task.loss(original, data.forget.x, data.forget.y).mean()
    grads = torch.autograd.grad(loss, list(original.parameters()))  # leaves the original's .grad alone
    magnitude = torch.cat([g.abs().flatten() for g in grads])
    chosen = torch.cat([m.flatten() for m in masks.values()])
    assert float(magnitude[chosen].min()) >= float(magnitude[~chosen].max()) - 1e-12


def test_random_label_and_salun_share_the_objective(setup):
    """With every weight in the mask, SalUn is random-label training."""
    a = _run(setup, RandomLabel(steps=10))
    b = _run(setup, SalUn(mask_fraction=1.0, steps=10))
    assert torch.equal(_flat(a), _flat(b))


def test_fisher_noise_is_seeded_and_vanishes_at_alpha_zero(setup):
    original = setup[2]
    a, b = _run(setup, FisherForgetting()), _run(setup, FisherForgetting())
    assert torch.equal(_flat(a), _flat(b))
    c = _run(setup, FisherForgetting(), seed=SEED + 1)
    assert not torch.equal(_flat(a), _flat(c))
    assert not torch.equal(_flat(a), _flat(original))
    silent = _run(setup, FisherForgetting(alpha=0.0))
    assert torch.equal(_flat(silent), _flat(original))


def test_fisher_counts_one_step_per_minibatch_and_puts_noise_where_fisher_is_small(setup):
    task, data, original = setup
    ctx = _context(setup)
    fisher = empirical_fisher(original, ctx, 5, 32)
    assert ctx.steps_used == 5
    f = torch.cat([v.flatten() for v in fisher.values()])
    assert bool((f >= 0).all()) and float(f.max()) > 0
    # the empirical Fisher of one batch equals the mean of squared per-example gradients, done by hand
    one = _context(setup)
    batch = next(one.batches(data.retain, 4))
    by_vmap = empirical_fisher(original, _context(setup), 1, 4)
    params = list(original.parameters())
    squares = [torch.zeros_like(p) for p in params]
    for i in range(4):
        loss = task.loss(original, batch.x[i:i + 1], batch.y[i:i + 1]).sum()
        for s, g in zip(squares, torch.autograd.grad(loss, params)):
            s += g.pow(2) / 4
    for s, (name, _) in zip(squares, original.named_parameters()):
        assert torch.allclose(by_vmap[name], s, atol=1e-7)
    # larger noise where the retain Fisher is small
    noised = _run(setup, FisherForgetting())
    delta = (_flat(noised) - _flat(original)).abs()
    full = torch.cat([v.flatten() for v in empirical_fisher(original, _context(setup), 20, None).values()])
    low, high = full <= full.quantile(0.25), full >= full.quantile(0.75)
    assert float(delta[low].mean()) > 2 * float(delta[high].mean())
