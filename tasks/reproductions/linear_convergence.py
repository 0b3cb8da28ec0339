"""Paper 003, Figure 3: distance to the exact retrained optimum against steps, per unlearning method.

100 Gaussian points in 400 dimensions, ridge least squares, a random 5 points forgotten. Every method
starts from the exact original optimum, uses the same step size, and is observed after every step.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import matplotlib
import pandas as pd
import torch
from torch import nn

from bench.registry import METHODS, TASKS
from bench.runner import RunSpec, run
from bench.atomic import write_atomic
from bench.plotting import png_bytes

matplotlib.use("Agg")

METHOD_LABELS = {
    "finetune": "GD on retain",
    "gdga": "GD + GA",
    "oracle-matching": "Oracle Matching",
    "oracle-matching-retain": "OM (retain set only)",
}
TOLERANCE = 1e-3


def _weights(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def convergence_curves(steps: int = 300, seeds: tuple[int, ...] = (0, 1, 2, 3, 4), lr: float = 0.1,
                       task_args: dict | None = None) -> pd.DataFrame:
    """One row per (method, seed, step): relative distance to the oracle in weights and in predictions."""
    task = TASKS.get("linear-gaussian")(**(task_args or {}))
    val_x = task.load()[1].x
    rows: list[dict] = []
    for method_name, label in METHOD_LABELS.items():
        method = METHODS.get(method_name)(steps=steps, lr=lr, momentum=0.0)  # plain GD for every method
        for seed in seeds:
            def observe(_i: int, original: nn.Module, oracle: nn.Module,
                        method_name: str = method_name, label: str = label, seed: int = seed) -> Callable:
                w_oracle, w_start = _weights(oracle), _weights(original)
                with torch.no_grad():
                    p_oracle = oracle(val_x).squeeze(-1)
                    p_start = original(val_x).squeeze(-1)
                w_scale = float((w_start - w_oracle).norm())
                p_scale = float((p_start - p_oracle).norm())

                def record(step: int, model: nn.Module) -> None:
                    with torch.no_grad():
                        preds = model(val_x).squeeze(-1)
                    rows.append({
                        "method": label, "method_name": method_name, "seed": seed, "step": step,
                        "weight_distance": float((_weights(model) - w_oracle).norm()) / w_scale,
                        "prediction_distance": float((preds - p_oracle).norm()) / p_scale,
                    })

                record(0, original)
                return record

            run(RunSpec(method=method, task=task, seed=seed), observe=observe)
    return pd.DataFrame(rows)


def first_within(curves: pd.DataFrame, column: str, tolerance: float = TOLERANCE) -> dict[str, int | None]:
    """Per method, the first step at which the seed-averaged distance is at most ``tolerance``."""
    mean = curves.groupby(["method", "step"])[column].mean().reset_index()
    out: dict[str, int | None] = {}
    for method, group in mean.groupby("method"):
        hit = group[group[column] <= tolerance]
        out[method] = int(hit["step"].min()) if len(hit) else None
    return out


def summarize(curves: pd.DataFrame) -> str:
    reached = first_within(curves, "weight_distance")
    last = curves[curves["step"] == curves["step"].max()].groupby("method")[
        ["weight_distance", "prediction_distance"]].mean()
    lines = [f"Linear convergence (paper 003, Figure 3): relative distance to the exact oracle, "
             f"mean over {curves['seed'].nunique()} forget sets, after {curves['step'].max()} steps"]
    for method in METHOD_LABELS.values():
        step = reached.get(method)
        status = f"within {TOLERANCE:g} after {step} steps" if step is not None else f"never within {TOLERANCE:g}"
        lines.append(f"  {method:22s} weights {last.loc[method, 'weight_distance']:.3g}, predictions "
                     f"{last.loc[method, 'prediction_distance']:.3g}; {status}")
    winners = sorted(((s, m) for m, s in reached.items() if s is not None))
    if winners:
        lines.append(f"First within {TOLERANCE:g} of the oracle (weights): {winners[0][1]} after {winners[0][0]} steps.")
    else:
        lines.append(f"No method came within {TOLERANCE:g} of the oracle.")
    return "\n".join(lines)


def plot(curves: pd.DataFrame) -> bytes:
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharex=True)
    for ax, column, title in zip(axes, ("weight_distance", "prediction_distance"),
                                 ("weights", "predictions on validation points")):
        sns.lineplot(data=curves, x="step", y=column, hue="method", errorbar=("pi", 100), ax=ax)
        ax.set_yscale("log")
        ax.axhline(TOLERANCE, color="grey", linestyle=":", linewidth=1)
        ax.set_title(f"Distance to the retrained optimum: {title}", fontsize=10)
        ax.set_ylabel("distance / distance at step 0 (log)")
        ax.set_xlabel("optimisation steps")
    fig.suptitle("Unlearning 5 of 100 points, ridge regression in 400 dimensions (paper 003, Fig. 3); "
                 "band: range over forget sets", fontsize=10)
    fig.tight_layout()
    return png_bytes(fig, dpi=120)


def reproduce(out: Path, log: Callable[[str], None] = print, steps: int = 300,
              seeds: tuple[int, ...] = (0, 1, 2, 3, 4), task_args: dict | None = None) -> str:
    """Write curves.csv, figure.png and summary.txt under ``out/linear-convergence``; return the summary."""
    folder = Path(out) / "linear-convergence"
    log(f"running {len(METHOD_LABELS)} methods x {len(seeds)} forget sets x {steps} steps")
    curves = convergence_curves(steps=steps, seeds=seeds, task_args=task_args)
    summary = summarize(curves)
    write_atomic(folder / "curves.csv", curves.to_csv(index=False).encode())
    write_atomic(folder / "figure.png", plot(curves))
    write_atomic(folder / "summary.txt", (summary + "\n").encode())
    return summary + f"\n\nwrote {folder}/curves.csv, figure.png, summary.txt"
