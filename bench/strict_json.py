"""Strict JSON for records: Python's json writes NaN and Infinity, which are not JSON and break other readers.

A non-finite number becomes ``null``, and the record says where and why (``nulls``: path -> reason), so
nothing is silently dropped and every JSON parser can read the file.
"""
from __future__ import annotations

import math
from typing import Any


def _reason(value: float) -> str:
    if math.isnan(value):
        return "NaN (not a number: the quantity is undefined for this run)"
    return f"{'+' if value > 0 else '-'}Infinity (unbounded for this run)"


def replace_non_finite(obj: Any, path: str = "") -> tuple[Any, dict[str, str]]:
    """A copy of ``obj`` with every non-finite float replaced by None, and the dotted paths replaced."""
    reasons: dict[str, str] = {}

    def walk(node: Any, where: str) -> Any:
        if isinstance(node, float) and not math.isfinite(node):
            reasons[where or "(root)"] = _reason(node)
            return None
        if isinstance(node, dict):
            return {key: walk(value, f"{where}.{key}" if where else str(key)) for key, value in node.items()}
        if isinstance(node, (list, tuple)):
            return [walk(value, f"{where}[{i}]") for i, value in enumerate(node)]
        if hasattr(node, "item") and callable(node.item) and getattr(node, "ndim", 1) == 0:
            return walk(node.item(), where)  # numpy / torch scalars
        return node

    return walk(obj, path), reasons


def strict_record(record: dict) -> dict:
    """The record with non-finite numbers as null and a ``nulls`` map saying which and why."""
    clean, reasons = replace_non_finite(record)
    if reasons:
        clean["nulls"] = {**clean.get("nulls", {}), **reasons} if isinstance(clean.get("nulls"), dict) else reasons
    return clean
