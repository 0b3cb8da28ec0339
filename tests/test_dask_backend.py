"""A real two-worker dask.distributed LocalCluster gives the same models as the local backend."""
import numpy as np
import pytest
import torch

from bench.executor import Executor
from oracles.ensemble import build_ensemble
from tasks.digits import Digits

pytest.importorskip("dask.distributed")


def test_dask_local_cluster_equals_local_processes():
    task = Digits(width=16, epochs=2)
    seeds = [11, 12, 13, 14]
    kwargs = dict(device=torch.device("cpu"), store=None, label="test", progress=False)
    local = build_ensemble(task, np.array([1, 2]), seeds, executor=Executor(workers=2), **kwargs)
    dask = build_ensemble(task, np.array([1, 2]), seeds, executor=Executor(backend="dask", workers=2), **kwargs)
    for a, b in zip(local.models, dask.models):
        for p, q in zip(a.parameters(), b.parameters()):
            assert torch.equal(p, q)  # both run one torch thread per worker: bit-identical


def test_dask_scheduler_address_is_used():
    from dask.distributed import LocalCluster

    task = Digits(width=16, epochs=1)
    kwargs = dict(device=torch.device("cpu"), store=None, label="test", progress=False)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        remote = build_ensemble(task, np.array([], dtype=np.int64), [5, 6], executor=Executor(
            backend="dask", scheduler=cluster.scheduler_address), **kwargs)
    local = build_ensemble(task, np.array([], dtype=np.int64), [5, 6], executor=Executor(workers=2), **kwargs)
    for a, b in zip(local.models, remote.models):
        assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
