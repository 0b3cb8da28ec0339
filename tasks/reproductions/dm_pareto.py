"""Paper 003, Figure 2: unlearning quality (KLoM) against compute, per method and budget, on digits.

Every method unlearns the same skewed digits forget set from the same N originals; each (method, budget)
becomes one point: x = per-example gradient evaluations of unlearning one model / those of retraining one
model (deterministic; the wall-clock ratio is kept beside it, but on a shared machine it moved by 10x between
budgets of one method), y = the 99th percentile of per-example KLoM on each of the forget, retain and
validation sets, averaged over the three (the paper's axes). The datamodels' training is a one-off cost per
dataset, reported beside the points, not on the x axis. The claim is decided with paired bootstrap intervals
(``tasks.reproductions.dm_pareto_claims``).
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import matplotlib
import numpy as np
import pandas as pd
import torch

from bench.errors import BenchError, DivergenceError
from bench.method import Method
from bench.registry import METHODS, TASKS
from bench.runner import RunSpec, run
from bench.atomic import write_atomic
from bench.task import Task
from bench.plotting import png_bytes
from tasks.reproductions.dm_pareto_claims import (CLAIM_BASELINES, COST, claim_replicates, ensemble_margins, judge,
                                                 verdict_lines)
from tasks.reproductions.dm_pareto_scale import estimate_lines
from bench.klom_intervals import FLOOR

matplotlib.use("Agg")

Log = Callable[[str], None]
NAME = "dm-pareto"
METHOD_ORDER = ("noop", "finetune", "ga", "gdga", "neggrad-plus", "scrub", "salun", "oracle-matching",
                "dm-matching", "dm-direct", "dm-matching-trak", "dm-direct-trak", "retrain")
#: point names that run a registered method with fixed parameters: the TRAK variants of the datamodel methods
VARIANTS = {"dm-matching-trak": ("dm-matching", {"attribution": "trak"}),
            "dm-direct-trak": ("dm-direct", {"attribution": "trak"})}
DATAMODEL_METHODS = ("dm-matching", "dm-direct", "dm-matching-trak", "dm-direct-trak")
SPLITS = ("forget", "retain", "val")
N_BOOT = 500  # replicates of the paired intervals (every 5th re-scores every claim point: about 1 s on digits)
DEFAULT_TASK_ARGS = dict(width=32, epochs=10, forget_size=40, selector="skewed")


# -- which runs ---------------------------------------------------------------------------------------------
def default_steps(cls: type[Method]) -> object:
    """The class's default ``steps`` (None when it has none)."""
    specs = {spec.name: spec.default for spec in cls.param_specs()}
    return specs.get("steps")


def has_step_budget(cls: type[Method]) -> bool:
    """Budgeted methods default to a positive step count; noop (0), dm-direct (0), retrain (None) run once."""
    steps = default_steps(cls)
    return isinstance(steps, int) and not isinstance(steps, bool) and steps > 0


def plan_runs(methods: tuple[str, ...], budgets: tuple[int, ...], log: Log) -> list[tuple[str, int | None]]:
    """(method, budget) pairs to run; None means the method's own setting. Unregistered names are skipped."""
    known = set(METHODS.names()) | {v for v, (base, _) in VARIANTS.items() if base in METHODS.names()}
    plan: list[tuple[str, int | None]] = []
    for name in methods:
        if name not in known:
            log(f"{NAME}: skipping '{name}': no method of that name is registered")
            continue
        if has_step_budget(METHODS.get(VARIANTS.get(name, (name,))[0])):
            plan.extend((name, b) for b in budgets)
        else:
            plan.append((name, None))
    return plan


def make_method(name: str, steps: int | None, datamodel_models: int) -> Method:
    """The method with the budget applied and, for datamodel methods, the datamodel size."""
    base, fixed = VARIANTS.get(name, (name, {}))
    cls = METHODS.get(base)
    params = {spec.name for spec in cls.param_specs()}
    kwargs: dict = dict(fixed)
    if steps is not None:
        kwargs["steps"] = steps
    if "datamodel_models" in params:
        kwargs["datamodel_models"] = datamodel_models
    return cls(**kwargs)


# -- one point ----------------------------------------------------------------------------------------------
def _p99(klom: dict, role: str) -> dict[str, float]:
    return {split: float(klom[split][role]["p99"]) if role in klom.get(split, {}) else math.nan
            for split in SPLITS}


def _finite_or_nan(value: object) -> float:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else math.nan


def point_from_record(record: dict, name: str, steps: int | None) -> dict:
    """One CSV row: the paper's KLoM (p99, averaged over splits), its noise floor, and the costs."""
    klom, timings = record["metrics"]["klom"], record["timings"]
    unlearned, floor = _p99(klom, "unlearned"), _p99(klom, "floor")
    datamodels = record.get("datamodels") or {}
    lds = (datamodels.get("lds") or {}).get("mean", math.nan)
    retrain = float(timings["retrain_seconds"])
    precompute = float(timings["precompute_seconds"])
    # wall-clock is only measured for models unlearned in this run; a rerun from the cache falls back on the
    # seconds stored with the cached models, and the CSV says so
    fresh = timings.get("unlearn_seconds_mean") is not None
    seconds = timings["unlearn_seconds_mean"] if fresh else timings.get("unlearn_seconds_earlier_mean")
    seconds = float(seconds) if seconds is not None else math.nan
    return {
        "method": name, "steps": steps, "steps_used": float(np.mean(record["steps_used"])),
        "klom_p99_avg": float(np.mean(list(unlearned.values()))),
        **{f"klom_p99_{s}": v for s, v in unlearned.items()},
        "floor_p99_avg": float(np.mean(list(floor.values()))),
        **{f"floor_p99_{s}": v for s, v in floor.items()},
        "cost_relative_to_retrain": seconds / retrain if retrain > 0 else math.nan,
        "grad_evals_relative_to_retrain": _finite_or_nan((record.get("cost") or {}).get("gradient_evals")),
        "unlearn_gradient_evals": _finite_or_nan(timings.get("unlearn_gradient_evals_mean")),
        "unlearn_seconds_per_model": seconds,
        "wall_clock_source": "this run" if fresh else "earlier run (cached models)",
        "retrain_seconds": retrain,
        "precompute_seconds": precompute,
        "precompute_relative_to_retrain": precompute / retrain if retrain > 0 else math.nan,
        "lds": float(lds), "status": "ok",
    }


def diverged_point(name: str, steps: int | None) -> dict:
    """A row for a run whose weights went non-finite: kept in the CSV, left out of the figure and front."""
    return {"method": name, "steps": steps, "klom_p99_avg": math.nan, "cost_relative_to_retrain": math.nan,
            COST: math.nan,
            "status": "diverged"}


def run_point(task: Task, name: str, steps: int | None, *, n_models: int, datamodel_models: int,
              store: object, log: Log, device: str = "auto", margins: dict | None = None) -> dict:
    """Run one (method, budget) on the shared forget set; the store reuses originals, oracles and floor.
    ``margins``, if given, receives the point's ensemble margins (for the intervals) under its label."""
    what = f"{name} ({steps} steps)" if steps is not None else name
    method = make_method(name, steps, datamodel_models)
    spec = RunSpec(method=method, task=task, seed=0, n_models=n_models, device=device)
    try:
        record = run(spec, store=store, log=log)
    except DivergenceError as err:
        log(f"{NAME}: {what} diverged ({err}); kept as a diverged row")
        return diverged_point(name, steps)
    point = point_from_record(record, name, steps)
    if margins is not None:
        margins[what] = ensemble_margins(spec, store)
    log(f"{NAME}: {what}: KLoM p99 avg {point['klom_p99_avg']:.3g}, "
        f"cost {point[COST]:.3g} x retrain in gradient evaluations, {point['cost_relative_to_retrain']:.3g} in "
        "wall-clock")
    return point


def task_label(task: Task) -> str:
    """``digits (arch=mlp, width=32, epochs=10)``: the settings that matter for reading the figure."""
    params = task.get_params()
    shown = [f"{k}={params[k]}" for k in ("arch", "width", "epochs") if k in params]
    return f"{task.name} ({', '.join(shown)})" if shown else task.name


# -- analysis -----------------------------------------------------------------------------------------------
def pareto_mask(cost: np.ndarray, klom: np.ndarray) -> np.ndarray:
    """True where no other point is at least as cheap and as good and strictly better in one of the two."""
    cost, klom = np.asarray(cost, dtype=float), np.asarray(klom, dtype=float)
    valid = np.isfinite(cost) & np.isfinite(klom)
    front = np.zeros(len(cost), dtype=bool)
    for i in np.flatnonzero(valid):
        others = valid & (cost <= cost[i]) & (klom <= klom[i]) & ((cost < cost[i]) | (klom < klom[i]))
        front[i] = not others.any()
    return front


def label(row: pd.Series) -> str:
    """``method (N steps)`` for budgeted points, the bare name otherwise."""
    steps = row.get("steps")
    return f"{row['method']} ({int(steps)} steps)" if pd.notna(steps) else str(row["method"])


def _gap_closed(value: float, noop: float, retrain: float) -> float:
    """Fraction of noop's excess KLoM over retrain that a point removes (1 = as good as retraining)."""
    return (noop - value) / (noop - retrain) if noop != retrain else math.nan


def _reference(points: pd.DataFrame, name: str) -> pd.Series | None:
    rows = points[(points["method"] == name) & np.isfinite(points["klom_p99_avg"])]
    return rows.iloc[0] if len(rows) else None


def _method_rank(name: str) -> tuple[int, str]:
    """Sort methods in the paper's legend order, unknown ones last."""
    return (METHOD_ORDER.index(name) if name in METHOD_ORDER else len(METHOD_ORDER), name)


def _front_lines(points: pd.DataFrame) -> list[str]:
    noop, retrain = _reference(points, "noop"), _reference(points, "retrain")
    lines = ["Pareto-optimal (not beaten on both cost and KLoM by any other point), cheapest first:"]
    for _, row in points[points["pareto"]].sort_values(COST).iterrows():
        line = (f"  {label(row):28s} KLoM {row['klom_p99_avg']:.3g} at {row[COST]:.3g} x "
                "retrain")
        if noop is not None and retrain is not None:
            closed = _gap_closed(row["klom_p99_avg"], noop["klom_p99_avg"], retrain["klom_p99_avg"])
            line += f"; closes {closed:.0%} of the noop->retrain KLoM gap"
        lines.append(line)
    optimal = sorted(set(points.loc[points["pareto"], "method"]), key=_method_rank)
    lines.append(f"Pareto-optimal methods: {', '.join(optimal)}")
    if "noop" in optimal:
        lines.append("(noop is on the front trivially: nothing is cheaper than doing nothing.)")
    if noop is not None and retrain is not None and (points.loc[points["pareto"], "klom_p99_avg"]
                                                     < retrain["klom_p99_avg"]).any():
        lines.append("(Over 100%: a lower KLoM than the retrain run itself; retrain is one more sampled ensemble, "
                     "so both sit within sampling noise of the noise floor.)")
    return lines


def _reference_lines(points: pd.DataFrame) -> list[str]:
    noop, retrain = _reference(points, "noop"), _reference(points, "retrain")
    lines = []
    if retrain is not None:
        lines.append(f"retrain: KLoM {retrain['klom_p99_avg']:.3g} at {retrain['grad_evals_relative_to_retrain']:.3g} x "
                     "one reference retraining in gradient evaluations (exactly 1 by construction); in wall-clock "
                     f"{retrain['unlearn_seconds_per_model']:.3g} s per model against a reference of "
                     f"{retrain['retrain_seconds']:.3g} s = {retrain['cost_relative_to_retrain']:.3g} x (ideally about 1: "
                     "two timings of the same training, apart by machine load and fixed overheads)")
    if noop is not None:
        lines.append(f"noop:    KLoM {noop['klom_p99_avg']:.3g} (the original models, unchanged)")
    floor = points["floor_p99_avg"].dropna() if "floor_p99_avg" in points else pd.Series(dtype=float)
    if len(floor):
        lines.append(f"noise floor (a second retrained ensemble scored against the first): KLoM {floor.mean():.3g}")
    return lines


def _datamodel_lines(points: pd.DataFrame, datamodel_models: int) -> list[str]:
    rows = points[points["method"].isin(DATAMODEL_METHODS) & (points["status"] == "ok")]
    if not len(rows):
        return ["Datamodels: not built (no datamodel method was run)."]
    trak = rows[rows["method"].str.endswith("-trak")]
    extra = ([f"TRAK variants (5 checkpoints trained on the full set, the run's originals reused from the cache): "
              f"LDS {trak.iloc[0]['lds']:.3f}; their precompute is {trak.iloc[0]['precompute_seconds']:.3g} s."]
             if len(trak) else [])
    rows = rows[~rows["method"].str.endswith("-trak")]
    if not len(rows):
        return extra
    row = rows.iloc[0]
    return extra + [
        f"Datamodels: {datamodel_models} subset models (alpha-subsets of the training set), LDS "
        f"{row['lds']:.3f} (Spearman correlation of predicted and true margins on held-out subset models).",
        f"Training them (batched, several models per step) took {row['precompute_seconds']:.3g} s (= "
        f"{row['precompute_relative_to_retrain']:.3g} reference retrainings). That is a one-off cost paid once "
        "per dataset and reused for every deletion request, so the x axis excludes it, as in the paper; the "
        "x value is the per-request cost, and the precompute_seconds column reports the one-off cost beside it, "
        "unamortised.",
        f"The LDS of {row['lds']:.2f} is far from paper quality: good datamodels need far more subset models "
        f"than {datamodel_models}, so dm-direct and dm-matching here are handicapped by noisy predictions.",
    ]


def _table_lines(points: pd.DataFrame) -> list[str]:
    lines = ["All points (KLoM = p99 per split, averaged over forget/retain/val; cost = x retrain in gradient "
             "evaluations, wall-clock ratio in brackets):"]
    for _, row in points.iterrows():
        if row["status"] != "ok":
            lines.append(f"  {label(row):28s} {row['status']}")
            continue
        lines.append(f"  {label(row):28s} KLoM {row['klom_p99_avg']:8.3g}  (forget {row['klom_p99_forget']:.3g}, "
                     f"retain {row['klom_p99_retain']:.3g}, val {row['klom_p99_val']:.3g})  cost "
                     f"{row[COST]:.3g} (wall-clock {row['cost_relative_to_retrain']:.3g})"
                     f"{'  *Pareto' if row['pareto'] else ''}")
    return lines


def summarize(points: pd.DataFrame, task: Task, n_models: int, datamodel_models: int,
              claim: list[str] | None = None, header: list[str] | None = None) -> str:
    """The claim's answer with intervals (``claim``), the front, the references, the datamodels' quality and
    cost, and how this differs from the paper."""
    lines = [f"DM Pareto (paper 003, Figure 2) on {task_label(task)}: {n_models} models per ensemble, "
             f"one forget set of {task.forget_size} points ({getattr(task, 'selector', 'default')} selection)"]
    lines += list(header or []) + [""] + list(claim or []) + [""]
    lines += _front_lines(points) + [""] + _reference_lines(points) + [""]
    lines += _datamodel_lines(points, datamodel_models) + [""]
    lines.append("Oracle Matching fits outputs of retrained models; their training is not counted in its cost "
                 "(it is the paper's upper-bound thought experiment, not a practical method).")
    lines.append("Differences from the paper's CIFAR-10 figure: a small MLP on 8x8 digits (about 1,400 training "
                 f"images) instead of ResNet-9 on CIFAR-10; {n_models} models per ensemble, so per-example KLoM "
                 "and its 99th percentile are estimated from few samples (watch the noise floor); datamodels of "
                 "far lower quality (see the LDS above); one forget set; CPU wall-clock on a shared machine "
                 "(torch on one thread), so costs are noisy, and tiny costs (noop, dm-direct) are dominated by "
                 "fixed overheads.")
    diverged = points[points["status"] != "ok"]
    if len(diverged):
        names = ", ".join(label(row) for _, row in diverged.iterrows())
        lines.append(f"Diverged (non-finite weights; not plotted, not on the front): {names}")
    return "\n".join(lines + [""] + _table_lines(points))


# -- figure -------------------------------------------------------------------------------------------------
def _plot_costs(points: pd.DataFrame) -> pd.Series:
    """Costs for a log axis: a zero cost (nothing measurable) is drawn at a tenth of the smallest positive one."""
    cost = points[COST].astype(float)
    positive = cost[cost > 0]
    return cost.where(cost > 0, (positive.min() if len(positive) else 1e-6) / 10)


def method_palette(order: list[str]) -> dict[str, tuple]:
    """Ten clearly different colours (tab10), then black, then evenly spaced hues: no look-alike pairs."""
    import seaborn as sns

    colours = list(sns.color_palette("tab10", 10)) + [(0.0, 0.0, 0.0)]
    if len(order) > len(colours):
        colours += list(sns.color_palette("husl", len(order) - len(colours)))
    return dict(zip(order, colours))


def plot(points: pd.DataFrame, title: str) -> bytes:
    """Scatter of KLoM against cost (log x), budgets joined per method, Pareto front and noise floor marked."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    ok = points[points["status"] == "ok"].copy()
    ok["x"] = _plot_costs(ok)
    order = [m for m in METHOD_ORDER if m in set(ok["method"])] + sorted(set(ok["method"]) - set(METHOD_ORDER))
    palette = method_palette(order)
    fig, ax = plt.subplots(figsize=(9, 5.5))
    floor = ok["floor_p99_avg"].dropna()
    if len(floor):
        ax.axhspan(0, floor.mean(), color="grey", alpha=0.15, label="noise floor (retrain vs retrain)")
        ax.axhline(floor.mean(), color="grey", linestyle=":", linewidth=1)
    sns.lineplot(data=ok.sort_values(["method", "steps_used"]), x="x", y="klom_p99_avg", hue="method",
                 hue_order=order, palette=palette, legend=False, ax=ax, sort=False, linewidth=1, alpha=0.7)
    sns.scatterplot(data=ok, x="x", y="klom_p99_avg", hue="method", hue_order=order, palette=palette,
                    style="method", style_order=order, s=70, ax=ax, zorder=3)
    front = ok[ok["pareto"]].sort_values("x")
    ax.plot(front["x"], front["klom_p99_avg"], drawstyle="steps-post", color="black", linewidth=1, alpha=0.6)
    ax.scatter(front["x"], front["klom_p99_avg"], s=220, facecolors="none", edgecolors="black", linewidths=1.3,
               label="Pareto front", zorder=4)
    for _, row in ok[ok["steps"].notna()].iterrows():
        ax.annotate(str(int(row["steps"])), (row["x"], row["klom_p99_avg"]), textcoords="offset points",
                    xytext=(5, 4), fontsize=7, color=palette[row["method"]])
    diverged = points[points["status"] != "ok"]
    if len(diverged):
        ax.text(0.01, 0.02, "diverged, not shown: " + ", ".join(label(r) for _, r in diverged.iterrows()),
                transform=ax.transAxes, fontsize=7, color="dimgrey")
    ax.set_xscale("log")
    ax.set_ylim(bottom=0)
    ax.set_xlabel("cost relative to retraining (per-example gradient evaluations per model / retraining one; log)")
    ax.set_ylabel("KLoM: 99th percentile, averaged over forget / retain / val")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    fig.tight_layout()
    return png_bytes(fig, dpi=120)


def _figure_title(points: pd.DataFrame, task: Task, n_models: int) -> str:
    dm = points[points["method"].isin(DATAMODEL_METHODS) & (points["status"] == "ok")]
    note = (f"; datamodel precompute (one-off, excluded): {dm.iloc[0]['precompute_relative_to_retrain']:.3g} x "
            f"retrain, LDS {dm.iloc[0]['lds']:.2f}" if len(dm) else "")
    return (f"Unlearning quality vs compute (paper 003, Fig. 2) on {task_label(task)}, {n_models} models\n"
            f"numbers: step budgets{note}")


# -- entry point -------------------------------------------------------------------------------------------
@contextmanager
def single_threaded() -> Iterator[None]:
    """Run torch on one thread, then restore the setting.

    The x axis is a ratio of wall-clock times, and the reference retraining time is measured once and then
    read from the cache. With torch's default intra-op threads on a shared 2-core machine, oversubscription
    made the same digits training take 0.13 s or 3.8 s depending on what else ran; one thread keeps it near
    0.13 s (these models are far too small to gain from more), so unlearning and retraining are timed alike.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def collect_points(task: Task, plan: list[tuple[str, int | None]], *, n_models: int, datamodel_models: int,
                   store: object, log: Log, device: str = "auto", margins: dict | None = None) -> pd.DataFrame:
    """Run every planned point and mark the Pareto front (``margins`` collects each point's margins)."""
    rows = [run_point(task, name, steps, n_models=n_models, datamodel_models=datamodel_models, store=store,
                      log=log, device=device, margins=margins) for name, steps in plan]
    points = pd.DataFrame(rows)
    points["steps"] = points["steps"].astype("Int64")
    points["label"] = [label(row) for _, row in points.iterrows()]
    points["pareto"] = pareto_mask(points[COST], points["klom_p99_avg"])
    return points


def reproduce(out: Path, log: Log = print, *, n_models: int = 32, budgets: tuple[int, ...] = (25, 50, 100),
              methods: tuple[str, ...] | None = None, task: Task | None = None, datamodel_models: int = 300,
              store: object = None, device: str = "auto", n_boot: int = N_BOOT) -> str:
    """Write points.csv, figure.png and summary.txt under ``out/dm-pareto``; return the summary."""
    from oracles.cache import ModelStore, default_cache_root

    task = task if task is not None else TASKS.get("digits")(**DEFAULT_TASK_ARGS)
    store = store if store is not None else ModelStore(default_cache_root(), log=log)
    plan = plan_runs(tuple(methods) if methods is not None else METHOD_ORDER, tuple(budgets), log)
    if not plan:
        raise BenchError(f"{NAME}: none of the methods {list(methods or METHOD_ORDER)} is registered")
    log(f"{NAME}: {len(plan)} points on {task_label(task)}, {n_models} models each (torch on one thread)")
    margins: dict = {}
    with single_threaded():
        points = collect_points(task, plan, n_models=n_models, datamodel_models=datamodel_models, store=store,
                                log=log, device=device, margins=margins)
    claim = claim_summary(points, margins, n_models=n_models, n_boot=n_boot, log=log)
    summary = summarize(points, task, n_models, datamodel_models, claim=claim,
                        header=estimate_lines(points, n_models, datamodel_models))
    folder = Path(out) / NAME
    write_atomic(folder / "points.csv", points.to_csv(index=False).encode())
    write_atomic(folder / "figure.png", plot(points, _figure_title(points, task, n_models)))
    write_atomic(folder / "summary.txt", (summary + "\n").encode())
    return summary + f"\n\nwrote {folder}/points.csv, figure.png, summary.txt"


def claim_summary(points: pd.DataFrame, margins: dict, *, n_models: int, n_boot: int, log: Log) -> list[str]:
    """Paired intervals (examples and re-split oracle/floor ensembles) and the claim's verdicts."""
    import time

    start = time.perf_counter()
    reps = claim_replicates(points, margins, DATAMODEL_METHODS + CLAIM_BASELINES + ("retrain",), n_boot=n_boot)
    examples = claim_replicates(points, margins, ("retrain",), n_boot=n_boot, resample_models=False)
    log(f"{NAME}: intervals from {n_boot} replicates in {time.perf_counter() - start:.0f} s")
    how = (f"paired bootstrap, {n_boot} replicates: the scored examples resampled within each split, and the "
           f"{n_models} oracles and {n_models} noise-floor models re-split from their {2 * n_models} pooled models, "
           f"{-(-n_boot // 5)} re-splits with 5 example draws each")
    lines = verdict_lines(points, reps, judge(points, reps, DATAMODEL_METHODS), n_models=n_models, how=how)
    lines.append(f"  (resampling examples only, the floor's interval would be {examples.interval(FLOOR)}: the "
                 "draw of the retrained ensembles is most of the uncertainty)")
    return lines
