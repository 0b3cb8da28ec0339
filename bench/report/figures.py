"""Small seaborn figures for the leaderboard, returned as PNG data URIs so the page needs no other files.

Figures are drawn on ``matplotlib.figure.Figure`` objects (no pyplot state), so building a report never
touches the caller's backend or open figures. Each function returns None when its records lack the data.
"""
from __future__ import annotations

import base64
import math
import warnings
from typing import Any

import numpy as np
import pandas as pd

from bench.metrics.epsilon import EPS_CAP
from bench.plotting import png_bytes

SPLITS = ("forget", "retain", "val")
DPI = 80
FLOOR = "noise floor"
Records = dict[str, list[dict]]  # row label -> that row's result records


def _get(obj: Any, *keys: str) -> Any:
    for key in keys:
        obj = obj.get(key) if isinstance(obj, dict) else None
    return obj


def _finite(values: Any) -> list[float]:
    if not isinstance(values, list):
        return []
    return [float(v) for v in values
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]


def _text(label: str, width: int = 28) -> str:
    """Plain text for matplotlib: '$' would start mathtext; long labels are shortened."""
    label = label if len(label) <= width else label[: width - 1] + "\u2026"
    return label.replace("$", r"\$")


def _figure(width: float, height: float):
    import seaborn as sns
    from matplotlib.figure import Figure
    sns.set_theme(style="whitegrid", context="paper", palette="colorblind")
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def to_data_uri(fig) -> str:
    """PNG bytes of ``fig`` as a data URI (the page embeds every figure)."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(fig, DPI, bbox_inches="tight")).decode("ascii")


def _avg_p99(record: dict, role: str) -> float | None:
    """Average over forget/retain/val of the 99th-percentile KLoM (paper 003, Figure 2)."""
    values = _finite([_get(record, "metrics", "klom", s, role, "p99") for s in SPLITS])
    return float(np.mean(values)) if values else None


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points that no other point beats on both cost and KLoM (both lower is better), by rising cost."""
    front: list[tuple[float, float]] = []
    for cost, klom in sorted(points):
        if not front or klom < front[-1][1]:
            front.append((cost, klom))
    return front


def klom_vs_cost(rows: Records, floor: list[dict]) -> str | None:
    """Average p99 KLoM against cost relative to retraining, one point per row, Pareto front joined.

    The cost axis is per-example gradient evaluations (deterministic, paper 003 Fig. 2) when every record
    has them (schema 3 on), else wall-clock."""
    import seaborn as sns
    every = [r for records in rows.values() for r in records]
    by_evals = bool(every) and all(_get(r, "timings", "gradient_evals_relative_to_retrain") is not None
                                   for r in every)
    cost_key = "gradient_evals_relative_to_retrain" if by_evals else "cost_relative_to_retrain"
    points = {}
    for label, records in rows.items():
        kloms = [v for v in (_avg_p99(r, "unlearned") for r in records) if v is not None]
        costs = _finite([_get(r, "timings", cost_key) for r in records])
        if kloms and costs and np.mean(costs) > 0:
            points[label] = (float(np.mean(costs)), float(np.mean(kloms)))
    if not points:
        return None
    fig = _figure(5.6, 3.6)
    ax = fig.subplots()
    frame = pd.DataFrame([(_text(k), c, v) for k, (c, v) in points.items()], columns=["method", "cost", "klom"])
    sns.scatterplot(data=frame, x="cost", y="klom", hue="method", s=50, ax=ax, legend=False)
    for label, (cost, klom) in points.items():
        ax.annotate(_text(label, 22), (cost, klom), textcoords="offset points", xytext=(4, 4), fontsize=7)
    front = pareto_front(list(points.values()))
    ax.plot([c for c, _ in front], [k for _, k in front], color="0.3", lw=1, zorder=0, label="Pareto front")
    floor_values = [v for v in (_avg_p99(r, "floor") for r in floor) if v is not None]
    if floor_values:
        ax.axhline(float(np.mean(floor_values)), color="0.5", ls="--", lw=1, label=FLOOR)
    costs = [c for c, _ in points.values()]
    if max(costs) / min(costs) > 20:
        ax.set_xscale("log")
    ax.set_xlabel("gradient evaluations relative to retraining one model" if by_evals
                  else "wall-clock relative to retraining one model")
    ax.set_ylabel("KLoM p99, mean of forget/retain/val")
    ax.legend(fontsize=7, loc="best")
    return to_data_uri(fig)


def _klom_frame(rows: Records, floor: list[dict]) -> pd.DataFrame:
    parts = []
    for label, records, key in [*((k, v, "klom") for k, v in rows.items()), (FLOOR, floor, "klom_floor")]:
        for split in SPLITS:
            values = [x for r in records for x in _finite(_get(r, "per_example", key, split))]
            parts.append(pd.DataFrame({"method": _text(label), "split": split, "KLoM": values}))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def klom_distributions(rows: Records, floor: list[dict]) -> str | None:
    """Per-example KLoM per split, a box per row (records of a row pooled) and one for the noise floor."""
    import seaborn as sns
    frame = _klom_frame(rows, floor)
    if frame.empty:
        return None
    methods = list(dict.fromkeys(frame["method"]))
    palette = dict(zip(methods, sns.color_palette("colorblind", len(methods))))
    palette[FLOOR] = (0.65, 0.65, 0.65)
    fig = _figure(min(9.0, max(5.6, 1.5 + 1.0 * len(methods))), 3.6)
    ax = fig.subplots()
    with warnings.catch_warnings():  # seaborn 0.13 still passes matplotlib's deprecated boxplot(vert=...)
        warnings.simplefilter("ignore", DeprecationWarning)
        sns.boxplot(data=frame, x="split", y="KLoM", hue="method", palette=palette, fliersize=1.5, linewidth=0.8,
                    ax=ax)
    ax.set_xlabel("")
    ax.legend(fontsize=7, ncols=min(4, len(methods)), loc="upper center", bbox_to_anchor=(0.5, -0.1),
              frameon=False)
    return to_data_uri(fig)


def _epsilon_bins(values: list[float]) -> tuple[np.ndarray, float | None]:
    """Bins over the uncapped epsilons, then a gap and one bin for values at the cap (perfectly separable),
    so a few capped examples do not squash every other histogram into one bar. Returns (edges, cap bin centre)."""
    below = [x for x in values if x < EPS_CAP]
    if len(below) == len(values):
        return np.histogram_bin_edges(below, bins=15), None
    lo, hi = (min(below), max(below)) if below else (0.0, 1.0)
    hi = hi + 1e-9 * (1.0 + abs(hi)) if hi > lo else lo + 1.0  # the largest value stays in the last real bin
    edges = np.linspace(lo, hi, 15)
    width = float(edges[1] - edges[0])
    edges = np.append(edges, [hi + width, hi + 2 * width])  # an empty gap bin, then the cap bin
    return edges, float(hi + 1.5 * width)


def _mark_cap(ax, edges: np.ndarray, centre: float) -> None:
    """Ticks over the uncapped range plus one labelled for the cap bin."""
    from matplotlib.ticker import MaxNLocator
    width = edges[1] - edges[0]
    last = edges[-3] - 3 * width  # keep clear of the cap's label
    ticks = [t for t in MaxNLocator(3).tick_values(edges[0], edges[-3]) if edges[0] <= t <= last]
    ax.set_xticks([*ticks, centre], [*(f"{t:g}" for t in ticks), f"{EPS_CAP:g}"])


def epsilon_histograms(rows: Records, floor: list[dict]) -> str | None:
    """Per-example challenge epsilon on the forget set, one panel per row, the noise floor overlaid."""
    import seaborn as sns
    data = {label: [x for r in records for x in _finite(_get(r, "per_example", "epsilon"))]
            for label, records in rows.items()}
    data = {k: v for k, v in data.items() if v}
    if not data:
        return None
    floor_eps = [x for r in floor for x in _finite(_get(r, "per_example", "epsilon_floor"))]
    everything = [x for v in data.values() for x in v] + floor_eps
    bins, cap = _epsilon_bins(everything)
    if cap is not None:
        data = {k: [min(x, cap) for x in v] for k, v in data.items()}
        floor_eps = [min(x, cap) for x in floor_eps]
    cols = min(4, len(data))
    nrows = math.ceil(len(data) / cols)
    fig = _figure(2.4 * cols + 0.4, 2.0 * nrows + 0.3)
    axes = np.atleast_1d(fig.subplots(nrows, cols, sharex=True, sharey=True, squeeze=False)).ravel()
    for ax, (label, values) in zip(axes, data.items()):
        sns.histplot(x=values, bins=bins, element="bars", alpha=0.5, ax=ax, label="unlearned", color="C0")
        if floor_eps:
            sns.histplot(x=floor_eps, bins=bins, element="bars", alpha=0.35, ax=ax, label=FLOOR, color="0.5")
        ax.set_title(_text(label, 32), fontsize=8)
        ax.set_xlabel("\u03b5")
        if cap is not None:
            _mark_cap(ax, bins, cap)
    for ax in axes[len(data):]:
        ax.set_visible(False)
    axes[0].legend(fontsize=6)
    return to_data_uri(fig)


def iteration_curves(rows: Records) -> str | None:
    """Metrics tracked during unlearning (the records' ``curves``), one panel per metric, a line per row."""
    curves = {}
    for label, records in rows.items():
        curve = next((r["curves"] for r in records if isinstance(r.get("curves"), list) and r["curves"]), None)
        if curve:
            curves[label] = [p for p in curve if isinstance(p, dict) and "step" in p]
    metrics = list(dict.fromkeys(k for c in curves.values() for p in c for k in p if k != "step"))[:6]
    if not metrics:
        return None
    cols = min(3, len(metrics))
    nrows = math.ceil(len(metrics) / cols)
    fig = _figure(2.7 * cols + 0.4, 2.2 * nrows + 0.4)
    axes = np.atleast_1d(fig.subplots(nrows, cols, squeeze=False)).ravel()
    for ax, metric in zip(axes, metrics):
        for label, curve in curves.items():
            pts = [(p["step"], p[metric]) for p in curve if _finite([p.get(metric)]) and _finite([p["step"]])]
            if pts:
                ax.plot(*zip(*pts), marker="o", ms=2.5, lw=1, label=_text(label, 24))
        ax.set_title(_text(metric, 32), fontsize=8)
        ax.set_xlabel("step")
    for ax in axes[len(metrics):]:
        ax.set_visible(False)
    axes[0].legend(fontsize=6)
    return to_data_uri(fig)
