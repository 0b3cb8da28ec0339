"""CIFAR-10 batches that are not what they claim: every one is a clear error, and none can run code."""
from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from bench.errors import BenchError
from tasks.vision.cifar10 import Cifar10
from test_vision import write_cifar


def _rewrite(root, name, obj=None, raw=None):
    path = root / "cifar-10-batches-py" / name
    if raw is not None:
        path.write_bytes(raw)
    else:
        with open(path, "wb") as handle:
            pickle.dump(obj, handle)


def _batch(n=20, labels=None, data=None):
    return {"batch_label": "x", "labels": list(range(10)) * (n // 10) if labels is None else labels,
            "data": np.zeros((n, 3072), np.uint8) if data is None else data, "filenames": ["f"] * n}


class Crafted:
    """What an attacker would drop into data_root: unpickling it calls os.mkdir."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


@pytest.fixture
def root(tmp_path):
    write_cifar(tmp_path)
    return tmp_path


def _load(root):
    return Cifar10(data_root=str(root), verify=False).load()


@pytest.mark.parametrize("case,message", [
    ("truncated", "is truncated"),
    ("garbage", "is not a valid batch"),
    ("wrong-shape", "'data' should be a uint8 array of shape [N, 3072], is uint8 of shape (20, 100)"),
    ("wrong-dtype", "'data' should be a uint8 array"),
    ("wrong-keys", "has no 'labels' entry"),
    ("out-of-range", "labels outside 0..9 (e.g. 12)"),
    ("count-mismatch", "has 20 images but 19 labels"),
    ("not-a-dict", "holds a list, not a batch dict"),
])
def test_malformed_batches_are_clear_errors(root, case, message):
    good = (root / "cifar-10-batches-py" / "data_batch_2").read_bytes()
    if case == "truncated":
        _rewrite(root, "data_batch_2", raw=good[: len(good) // 2])
    elif case == "garbage":
        _rewrite(root, "data_batch_2", raw=os.urandom(500))
    elif case == "wrong-shape":
        _rewrite(root, "data_batch_2", _batch(data=np.zeros((20, 100), np.uint8)))
    elif case == "wrong-dtype":
        _rewrite(root, "data_batch_2", _batch(data=np.zeros((20, 3072), np.float32)))
    elif case == "wrong-keys":
        _rewrite(root, "data_batch_2", {"data": np.zeros((20, 3072), np.uint8), "targets": [0] * 20})
    elif case == "out-of-range":
        _rewrite(root, "data_batch_2", _batch(labels=[12] + [0] * 19))
    elif case == "count-mismatch":
        _rewrite(root, "data_batch_2", _batch(labels=[0] * 19))
    elif case == "not-a-dict":
        _rewrite(root, "data_batch_2", [1, 2, 3])
    with pytest.raises(BenchError) as info:
        _load(root)
    text = str(info.value)
    assert message in text and "data_batch_2" in text and "download=true" in text


def test_a_crafted_pickle_is_refused_and_never_runs(root, tmp_path):
    marker = tmp_path / "pwned"
    _rewrite(root, "data_batch_3", {"data": Crafted(str(marker)), "labels": [0]})
    with pytest.raises(BenchError, match="refers to posix.mkdir, which the CIFAR-10 format never contains"):
        _load(root)
    assert not marker.exists()


def test_real_format_still_reads(root):
    train, test = _load(root)
    assert train.x.shape == (100, 3, 32, 32) and len(test) == 20


def test_replaced_data_changes_the_cache_key(root, monkeypatch):
    """The cache keyed on data_root's path string reused models trained on replaced images."""
    import bench.fingerprint as fp
    from oracles.ensemble import model_spec
    from oracles.cache import cache_key
    monkeypatch.setattr(fp, "SCAN_TTL_S", 0.0)
    task = Cifar10(data_root=str(root), verify=False)
    before = cache_key(model_spec(task, np.array([], dtype=np.int64), 0))
    assert cache_key(model_spec(task, np.array([], dtype=np.int64), 0)) == before  # stable
    path = root / "cifar-10-batches-py" / "data_batch_4"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # same size, new content
    path.write_bytes(bytes(data))
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))
    assert cache_key(model_spec(task, np.array([], dtype=np.int64), 0)) != before
    assert task.training_recipe()["data"] != "missing"
