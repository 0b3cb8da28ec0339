"""The digits task: real data, splits, forget-set selectors, and batched training equal to the plain loop."""
import numpy as np
import pytest
import torch

from tasks.digits import Digits


def test_load_is_a_stratified_deterministic_split():
    train, val = Digits().load()
    assert len(train) + len(val) == 1797 and len(val) == 360
    assert train.x.shape[1:] == (1, 8, 8) and float(train.x.max()) <= 1.0
    counts = torch.bincount(val.y, minlength=10)
    assert int(counts.min()) >= 34 and int(counts.max()) <= 38  # stratified: ~36 per class
    again, _ = Digits().load()
    assert torch.equal(train.x, again.x)


def test_random_selector():
    task = Digits(forget_size=50)
    train, _ = task.load()
    ids = task.select_forget(train, np.random.default_rng(0))
    assert len(ids) == 50 and len(set(ids.tolist())) == 50 and np.all(np.diff(ids) > 0)


def test_skewed_selector_draws_most_of_the_set_from_few_classes():
    task = Digits(forget_size=40, selector="skewed", skew_classes=2, skew_fraction=0.8)
    train, _ = task.load()
    ids = task.select_forget(train, np.random.default_rng(1))
    counts = np.sort(np.bincount(train.y.numpy()[ids], minlength=10))[::-1]
    assert len(ids) == 40 and counts[:2].sum() >= 32
    uniform = Digits(forget_size=40).select_forget(train, np.random.default_rng(1))
    assert np.sort(np.bincount(train.y.numpy()[uniform], minlength=10))[::-1][:2].sum() < 20


def _weights(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


@pytest.mark.parametrize("arch,tolerance", [("mlp", 1e-6), ("cnn", 1e-3)])
def test_batched_training_equals_one_model_at_a_time(arch, tolerance):
    task = Digits(arch=arch, width=16, epochs=2)
    train, _ = task.load()
    seeds = [3, 4, 5]
    alone = [task.train(task.make_model(s), train, s) for s in seeds]
    together = task.train_many([task.make_model(s) for s in seeds], train, seeds)
    for a, b in zip(alone, together):
        assert float((_weights(a) - _weights(b)).abs().max()) < tolerance
    assert float((_weights(together[0]) - _weights(together[1])).abs().max()) > 1e-2  # seeds differ


def test_a_trained_mlp_is_accurate():
    task = Digits(epochs=10)
    train, val = task.load()
    model = task.train(task.make_model(0), train, 0)
    assert task.evaluate(model, val)["accuracy"] > 0.9
