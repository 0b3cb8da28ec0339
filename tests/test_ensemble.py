"""Ensemble building: cache reuse, growth, verification of corrupt entries, and backends."""
import numpy as np
import torch

from bench.executor import Executor
from oracles.ensemble import build_ensemble, model_spec
from oracles.cache import ModelStore
from tasks.digits import Digits

TASK = Digits(width=16, epochs=2)
NONE = np.array([], dtype=np.int64)


def _build(store, seeds, excluded=NONE, executor=None):
    return build_ensemble(TASK, excluded, seeds, device=torch.device("cpu"), store=store,
                          executor=executor or Executor(), label="test", progress=False)


def _same_models(a, b, atol=0.0):
    return all(torch.allclose(p, q, atol=atol, rtol=0) for m, n in zip(a.models, b.models)
               for p, q in zip(m.parameters(), n.parameters()))


def test_second_build_comes_from_the_cache(tmp_path):
    store = ModelStore(tmp_path)
    first = _build(store, [1, 2, 3])
    second = _build(store, [1, 2, 3])
    assert first.cached == 0 and second.cached == 3
    assert _same_models(first, second)
    assert all(s > 0 for s in second.train_seconds)  # timings come back from the manifests


def test_growing_an_ensemble_reuses_existing_models(tmp_path):
    store = ModelStore(tmp_path)
    _build(store, [1, 2])
    grown = _build(store, [1, 2, 3, 4])
    assert grown.cached == 2


def test_oracles_are_keyed_by_the_forget_set(tmp_path):
    store = ModelStore(tmp_path)
    _build(store, [1], excluded=np.array([0, 5]))
    assert _build(store, [1], excluded=np.array([0, 6])).cached == 0
    assert _build(store, [1], excluded=np.array([5, 0])).cached == 1  # order does not matter


def test_a_corrupt_entry_is_reported_and_rebuilt(tmp_path):
    store = ModelStore(tmp_path)
    clean = _build(store, [7])
    path = store.path_for(__import__("oracles.cache", fromlist=["cache_key"]).cache_key(model_spec(TASK, NONE, 7)))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    messages = []
    rebuilt = _build(ModelStore(tmp_path, log=messages.append), [7])
    assert rebuilt.cached == 0
    assert any("checksum mismatch" in m for m in messages)
    assert _same_models(clean, rebuilt)


def test_local_processes_match_in_process_training(tmp_path):
    in_process = _build(None, [1, 2, 3, 4])
    workers = _build(None, [1, 2, 3, 4], executor=Executor(workers=2))
    assert _same_models(in_process, workers, atol=1e-5)
