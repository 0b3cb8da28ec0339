"""CIFAR-10's python batches, read without trusting them.

The batches are pickles, and unpickling runs whatever a file names: a crafted ``data_batch_1`` under
``data_root`` would execute code. So batches are read with an unpickler that resolves only the few
globals the real format contains (numpy's array reconstruction), then checked field by field: keys,
shapes, dtype, label range. Any problem is a ``BenchError`` naming the file and the fix.
"""
from __future__ import annotations

import hashlib
import io
import pickle
from pathlib import Path

import numpy as np

from bench.errors import BenchError

TRAIN_FILES = ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5"]
TEST_FILES = ["test_batch"]
META_FILE = "batches.meta"
FOLDER = "cifar-10-batches-py"
IMAGE_BYTES = 3 * 32 * 32
NUM_CLASSES = 10

#: every global a real CIFAR-10 batch (pickled by Python 2, or re-pickled by Python 3 / numpy 1 or 2) refers to
ALLOWED_GLOBALS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
})


class CifarFormatError(BenchError):
    """A CIFAR-10 file that is not in the real format (or refers to code)."""


class _BatchUnpickler(pickle.Unpickler):
    """Resolves only ``ALLOWED_GLOBALS``; anything else (os.system, builtins.eval, ...) is refused."""

    def find_class(self, module: str, name: str):  # noqa: ANN201 - pickle's signature
        if (module, name) in ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"it refers to {module}.{name}, which the CIFAR-10 format never contains "
                                     "(a crafted pickle can run code, so it was not loaded)")


def _fix(path: Path) -> str:
    return (f"restore {path.name} from cifar-10-python.tar.gz, or delete {path.parent} and add "
            "--task-arg download=true")


def unpickle(path: Path) -> object:
    """The object in ``path``, read with the restricted unpickler (latin1, as the Python 2 originals need)."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise CifarFormatError(f"cannot read CIFAR-10 file {path}: {err.strerror or err}") from None
    try:
        return _BatchUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            MemoryError, OverflowError) as err:
        reason = str(err) or type(err).__name__
        if isinstance(err, EOFError) or "truncated" in reason:
            reason = "the file is truncated"
        raise CifarFormatError(f"CIFAR-10 file {path} is not a valid batch: {reason}; {_fix(path)}") from None


def _field(batch: dict, name: str, path: Path) -> object:
    for key in (name, name.encode()):
        if key in batch:
            return batch[key]
    keys = ", ".join(sorted(str(k) for k in batch)) or "none"
    raise CifarFormatError(f"CIFAR-10 file {path} has no '{name}' entry (its keys: {keys}); {_fix(path)}")


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images [N, 32, 32, 3] and int64 labels [N] from one batch file, checked against the format."""
    batch = unpickle(path)
    if not isinstance(batch, dict):
        raise CifarFormatError(f"CIFAR-10 file {path} holds a {type(batch).__name__}, not a batch dict; {_fix(path)}")
    data, labels = _field(batch, "data", path), _field(batch, "labels", path)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != IMAGE_BYTES:
        shape = getattr(data, "shape", None)
        dtype = getattr(data, "dtype", type(data).__name__)
        raise CifarFormatError(f"CIFAR-10 file {path}: 'data' should be a uint8 array of shape [N, {IMAGE_BYTES}], "
                               f"is {dtype} of shape {shape}; {_fix(path)}")
    if not isinstance(labels, (list, np.ndarray)):
        raise CifarFormatError(f"CIFAR-10 file {path}: 'labels' should be a list, is {type(labels).__name__}")
    try:
        label_array = np.asarray(labels)
    except (ValueError, TypeError):
        label_array = np.asarray([], dtype=object)
    if label_array.ndim != 1 or not np.issubdtype(label_array.dtype, np.integer):
        raise CifarFormatError(f"CIFAR-10 file {path}: 'labels' should be a list of integers; {_fix(path)}")
    if len(label_array) != len(data):
        raise CifarFormatError(f"CIFAR-10 file {path} has {len(data)} images but {len(label_array)} labels; "
                               f"{_fix(path)}")
    bad = label_array[(label_array < 0) | (label_array >= NUM_CLASSES)]
    if bad.size:
        raise CifarFormatError(f"CIFAR-10 file {path} has labels outside 0..{NUM_CLASSES - 1} "
                               f"(e.g. {int(bad[0])}); {_fix(path)}")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), label_array.astype(np.int64)


def md5(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
