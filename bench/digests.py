"""Bytes and digests of arrays (torch tensors or numpy arrays), written once for every hash that covers them.

``array_bytes`` is the raw memory of an array in C order: any dtype (bfloat16 included, through a uint8
view), 0-dim tensors (BatchNorm's step counters) and empty ones. ``update_digest`` adds dtype and shape
before the bytes, so two arrays with equal bytes but different layouts hash apart.
"""
from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import torch

ArrayLike = torch.Tensor | np.ndarray

__all__ = ["array_bytes", "array_digest", "update_digest"]


def array_bytes(array: ArrayLike) -> bytes:
    """The contents of ``array`` as bytes (CPU, contiguous), whatever its dtype and device."""
    if isinstance(array, torch.Tensor):
        t = array.detach().cpu().contiguous()
        return t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
    return np.ascontiguousarray(array).tobytes()


def update_digest(digest: Any, array: ArrayLike) -> None:
    """Feed ``dtype|shape|`` and the bytes of ``array`` to a hashlib object."""
    shape = tuple(array.shape)
    digest.update(f"{array.dtype}|{shape}|".encode())
    digest.update(array_bytes(array))


def array_digest(*arrays: ArrayLike) -> str:
    """sha256 hex digest of the arrays' dtypes, shapes and contents, in order."""
    digest = hashlib.sha256()
    for array in arrays:
        update_digest(digest, array)
    return digest.hexdigest()
