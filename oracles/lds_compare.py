"""Attribution quality per unit of compute: LDS of subset-model datamodels and of TRAK at several sizes.

Every variant is scored on the same held-out alpha-subset models (their own seed stream, so none of them
was used to fit a datamodel), which makes the intervals comparable across variants. Compute is counted
in per-example gradient evaluations (``oracles.compute``), which do not depend on machine load.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from bench.executor import Executor
from bench.atomic import write_atomic
from bench.seeding import derive_seed
from bench.task import Task
from oracles.datamodels import build_datamodels, lds_from_margins, subset_masks, train_subset_models
from oracles.cache import ModelStore
from oracles.trak import build_trak


def held_out_margins(task: Task, n_models: int, seed: int, *, device: torch.device, store: ModelStore | None,
                     executor: Executor, progress: bool, log: Callable[[str], None]) -> tuple[np.ndarray, np.ndarray]:
    """Masks [models, n_train] and true margins [models, targets] of the shared held-out subset models
    (the same models ``oracles.trak.lds_of_scores`` uses)."""
    train, val = task.load()
    masks = subset_masks(len(train), n_models, 0.5, derive_seed(seed, "lds"))
    seeds = [derive_seed(seed, "lds", 1 + i) for i in range(n_models)]
    models, _ = train_subset_models(task, masks, seeds, device=device, store=store, executor=executor,
                                    progress=progress, log=log)
    x, y = torch.cat([train.x, val.x]).to(device), torch.cat([train.y, val.y]).to(device)
    with torch.no_grad():
        margins = np.stack([task.margin(m, x, y).float().cpu().numpy() for m in models])
    return masks, margins


def compare(task: Task, *, datamodel_sizes: list[int], trak_checkpoints: list[int], eval_models: int, seed: int,
            device: torch.device, store: ModelStore | None, executor: Executor, proj_dim: int = 512,
            alpha: float = 0.5, progress: bool = True, log: Callable[[str], None] = lambda _m: None) -> list[dict]:
    """One row per variant: kind, size, LDS with its 95% interval, gradient evaluations, wall seconds."""
    train, val = task.load()
    labels = torch.cat([train.y, val.y])
    masks, true = held_out_margins(task, eval_models, seed, device=device, store=store, executor=executor,
                                   progress=progress, log=log)
    rows = []
    for size in datamodel_sizes:
        dm = build_datamodels(task, n_models=size, alpha=alpha, seed=seed, device=device, store=store,
                              executor=executor, progress=progress, log=log)
        outputs = np.stack([dm.predict(m).numpy() for m in masks])
        flat = torch.as_tensor(outputs).reshape(-1, outputs.shape[-1])
        predicted = task.margin_from_outputs(flat, labels.repeat(len(masks))).view(len(masks), -1).numpy()
        rows.append({"kind": "datamodels", "size": size, "size_label": f"{size} subset models",
                     "lds": lds_from_margins(predicted, true), "gradient_evaluations": dm.cost["gradient_evaluations"],
                     "wall_seconds": dm.cost["wall_seconds"]})
        log(f"datamodels, {size} subset models: LDS {rows[-1]['lds']['mean']:.3f}")
    for count in trak_checkpoints:
        dm = build_trak(task, n_checkpoints=count, proj_dim=proj_dim, seed=seed, device=device, store=store,
                        executor=executor, lds_models=0, progress=progress, log=log)
        predicted = masks.astype(np.float32) @ dm.weights.numpy()
        rows.append({"kind": "trak", "size": count, "size_label": f"{count} checkpoints",
                     "projection_dim": dm.cost["projection_dim"], "lds": lds_from_margins(predicted, true),
                     "gradient_evaluations": dm.cost["gradient_evaluations"], "wall_seconds": dm.cost["wall_seconds"]})
        log(f"TRAK, {count} checkpoints: LDS {rows[-1]['lds']['mean']:.3f}")
    return rows


def table(task_label: str, rows: list[dict], eval_models: int) -> str:
    """A plain-text table of the rows."""
    lines = [f"{task_label}: LDS on {eval_models} shared held-out subset models (95% t-interval over targets)",
             f"{'attribution':<12}{'size':<22}{'LDS':>8}  {'95% CI':<18}{'gradient evals':>16}{'wall s':>10}"]
    for r in rows:
        lds = r["lds"]
        interval = f"[{lds['ci_low']:.3f}, {lds['ci_high']:.3f}]"
        lines.append(f"{r['kind']:<12}{r['size_label']:<22}{lds['mean']:>8.3f}  {interval:<18}"
                     f"{r['gradient_evaluations']:>16.3g}{r['wall_seconds']:>10.1f}")
    return "\n".join(lines)


def plot(results: dict[str, list[dict]], path: Path) -> None:
    """LDS (with intervals) against gradient evaluations (log), one panel per task."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bench.plotting import png_bytes

    fig, axes = plt.subplots(1, len(results), figsize=(5.5 * len(results), 4), squeeze=False)
    for ax, (label, rows) in zip(axes[0], results.items()):
        for kind, marker in (("datamodels", "o"), ("trak", "s")):
            part = [r for r in rows if r["kind"] == kind]
            if not part:
                continue
            x = [r["gradient_evaluations"] for r in part]
            y = [r["lds"]["mean"] for r in part]
            err = [[r["lds"]["mean"] - r["lds"]["ci_low"] for r in part],
                   [r["lds"]["ci_high"] - r["lds"]["mean"] for r in part]]
            ax.errorbar(x, y, yerr=err, marker=marker, capsize=3, label=kind)
            for r, xi, yi in zip(part, x, y):
                ax.annotate(str(r["size"]), (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.set_xscale("log")
        ax.set_xlabel("compute (per-example gradient evaluations, log)")
        ax.set_ylabel("LDS (Spearman, held-out subset models)")
        ax.set_title(label)
        ax.legend()
    fig.tight_layout()
    write_atomic(path, png_bytes(fig))


def write_json(results: dict[str, list[dict]], path: Path) -> None:
    write_atomic(path, json.dumps(results, indent=1).encode())
