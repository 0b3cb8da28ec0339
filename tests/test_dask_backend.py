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
