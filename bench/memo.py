"""A per-process memo holding at most one value per kind (loaded data, the challenge's shared original,
datamodels): workers that run many units pay a load once, and memory stays bounded whatever N is."""
from __future__ import annotations

from typing import Any, Callable

_MEMO: dict[str, tuple[str, Any]] = {}


def memoized(kind: str, key: str, build: Callable[[], Any]) -> Any:
    """The value of ``kind`` for ``key``, built on first use; a different key replaces the old value."""
    held = _MEMO.get(kind)
    if held is not None and held[0] == key:
        return held[1]
    _MEMO.pop(kind, None)  # drop the old value before building the new one
    value = build()
    _MEMO[kind] = (key, value)
    return value


def forget(kind: str) -> None:
    _MEMO.pop(kind, None)
