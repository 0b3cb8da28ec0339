import numpy as np
import pytest
import torch

from bench.task import TaskData
from tasks.digits import Digits
from tasks.linear_gaussian import LinearGaussian


@pytest.fixture
def small_linear() -> LinearGaussian:
    """Paper 003's toy shrunk so a test runs in milliseconds, still with more dimensions than points."""
    return LinearGaussian(n=40, d=120, n_val=20, forget_size=4)


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own model cache, so none reads another's models or the user's cache."""
    root = tmp_path_factory.mktemp("model-cache")
    monkeypatch.setenv("BENCH_CACHE", str(root))
    return root


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """Tiny models on a shared 2-core machine run several times faster on one thread (as workers do)."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def skewed_digits():
    """(task, data, original): digits width 32 with a class-skewed forget set of 60, one trained original.

    Shared by the classifier-method tests, which check that methods forget it and keep retain accuracy.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is several times faster than two contending ones
    try:
        task = Digits(width=32, epochs=10, forget_size=60, selector="skewed")
        train, val = task.load()
        data = TaskData(train, val, task.select_forget(train, np.random.default_rng(0)))
        original = task.train(task.make_model(1), train, 1).eval()
    finally:
        torch.set_num_threads(threads)
    return task, data, original
