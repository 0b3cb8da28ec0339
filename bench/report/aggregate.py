"""Rows of a table: records of one method and parameter setting averaged with a 95% interval, the noise
floor rows, the primary column and the ranking."""
from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from bench.report.columns import Column, dig
from bench.report.group import _canonical
from bench.report.load import Loaded


@dataclass(frozen=True)
class Cell:
    """A mean with its 95% interval half-width; kind 't' (over records) or 'points' (one record's points)."""

    mean: float | None
    half: float | None = None
    kind: str = ""
    n: int = 0


def t_half_width(values: list[float]) -> float:
    """Half-width of the 95% t-interval of the mean (n >= 2)."""
    from scipy import stats
    n = len(values)
    return float(stats.t.ppf(0.975, n - 1) * np.std(values, ddof=1) / math.sqrt(n))


def aggregate(values: list[float | None], points: list[list[float] | None] | None = None) -> Cell:
    """Mean over records with a t-interval; for a single record, mean +- 1.96 SE of its per-example values."""
    finite = [v for v in values if v is not None]
    if not finite:
        return Cell(None)
    mean = float(np.mean(finite))
    if len(finite) >= 2 and max(finite) == min(finite):
        return Cell(mean, None, "identical", len(finite))  # no spread to estimate: not a +-0 interval
    if len(finite) >= 2:
        return Cell(mean, t_half_width(finite), "t", len(finite))
    per_point = next((p for v, p in zip(values, points or []) if v is not None), None)
    if per_point is not None and len(per_point) >= 2:
        se = float(np.std(per_point, ddof=1) / math.sqrt(len(per_point)))
        return Cell(mean, 1.96 * se, "points", 1)
    return Cell(mean, None, "", 1)


@dataclass
class Row:
    """One leaderboard line: a method with one parameter setting and N (or the noise floor at one N)."""

    label: str
    detail: str
    method: dict
    n_models: int
    records: list[Loaded]
    cells: dict[str, Cell] = field(default_factory=dict)
    floor: bool = False


def _params_text(params: dict) -> str:
    return ", ".join(f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}" for k, v in params.items())


def _distinguishing(params: dict, siblings: list[dict]) -> dict:
    """The parameters that differ between rows of the same method (the rest is in the row's tooltip)."""
    keys = {k for p in siblings for k in p}
    return {k: params.get(k) for k in sorted(keys) if len({_canonical(p.get(k)) for p in siblings}) > 1}


def _distinct_runs(records: list[Loaded]) -> list[Loaded]:
    """One record per run: copies of a record (same method, parameters and seeds) are replicates of the
    same computation, not independent evidence, so only the last one found counts."""
    runs: dict[str, Loaded] = {}
    for item in records:
        rec = item.record
        runs[_canonical([rec["method"], rec.get("seeds"), rec["n_models"]])] = item
    return list(runs.values())


def method_rows(records: list[Loaded], columns: list[Column]) -> list[Row]:
    """Aggregate records with the same method, parameters and N (different seeds) into one row each."""
    buckets: dict[tuple, list[Loaded]] = defaultdict(list)
    for item in _distinct_runs(records):
        method = item.record["method"]
        buckets[(method["name"], _canonical(method.get("params", {})), item.record["n_models"])].append(item)
    by_name: dict[str, list[dict]] = defaultdict(list)
    for name, params, _n in buckets:
        by_name[name].append(json.loads(params))
    rows = []
    for (name, params_json, n), items in buckets.items():
        params = json.loads(params_json)
        detail = _params_text(_distinguishing(params, by_name[name]))
        if len({n for (m, _p, n) in buckets if m == name}) > 1:
            detail = ", ".join(filter(None, [detail, f"N={n}"]))
        row = Row(name, detail, items[0].record["method"], n, items)
        recs = [i.record for i in items]
        for col in columns:
            row.cells[col.key] = aggregate([col.value(r) for r in recs],
                                           [col.points(r) for r in recs] if col.points else None)
        rows.append(row)
    return rows


def floor_rows(records: list[Loaded], columns: list[Column]) -> list[Row]:
    """The noise floor per N: scores of a second independent oracle ensemble, once per distinct ensemble.

    Every record of a group with the same N and seeds carries the same floor, so duplicates are dropped
    before averaging (otherwise identical copies would fake a zero-width interval).
    """
    sources: dict[int, dict[str, Loaded]] = defaultdict(dict)
    for item in records:
        rec = item.record
        if any(c.floor and c.floor(rec) is not None for c in columns):
            sources[rec["n_models"]].setdefault(_canonical(dig(rec, "seeds", "floor")), item)
    rows = []
    for n in sorted(sources):
        items = list(sources[n].values())
        recs = [i.record for i in items]
        row = Row(f"noise floor (N={n})", "second oracle ensemble", {"name": "noise floor", "params": {}}, n,
                  items, floor=True)
        for col in columns:
            if col.floor is not None:
                row.cells[col.key] = aggregate([col.floor(r) for r in recs],
                                               [col.floor_points(r) for r in recs] if col.floor_points else None)
        rows.append(row)
    return rows


def primary_column(columns: list[Column], rows: list[Row]) -> Column | None:
    """Mean KLoM on the forget split (lower is better); otherwise the first ranked metric with values."""
    have = [c for c in columns if any(r.cells.get(c.key, Cell(None)).mean is not None for r in rows)]
    preferred = [c for c in have if c.key == "klom.forget.mean"]
    ranked = [c for c in have if c.better]
    return (preferred or ranked or have or [None])[0]


def rank(rows: list[Row], primary: Column | None) -> list[Row]:
    """Best first by the primary metric; rows without a value go last."""
    if primary is None:
        return sorted(rows, key=lambda r: r.label)
    sign = -1.0 if primary.better == "higher" else 1.0

    def key(row: Row) -> tuple:
        mean = row.cells[primary.key].mean
        return (mean is None, sign * mean if mean is not None else 0.0, row.label, row.detail)
    return sorted(rows, key=key)


