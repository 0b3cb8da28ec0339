import pytest

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
