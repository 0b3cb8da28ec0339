"""What unlearning is compared with: retraining ONE model on the retain set with the task's single-model recipe.

Measured (or read from the cache entry that recorded it) rather than derived from batched ensemble training,
which amortises work across models. Two costs are kept: wall-clock, which depends on the machine and on how
busy it was (so the 1-minute load average is recorded with it and the timing is remeasured when the load now
differs a lot), and per-example gradient evaluations, which do not depend on either.
"""
from __future__ import annotations

import os
import platform
import time

import torch

from bench.gradcount import count_evaluations
from bench.seeding import derive_seed
from bench.task import Task, TaskData
from oracles.ensemble import model_spec
from oracles.cache import ModelStore


def load_average() -> float | None:
    try:
        return float(os.getloadavg()[0])
    except (OSError, AttributeError):
        return None


def load_differs(then: float | None, now: float | None) -> bool:
    """'A lot': more than one busy core, or half of this machine's cores, apart."""
    if then is None or now is None:
        return False
    return abs(now - then) > max(1.0, 0.5 * (os.cpu_count() or 1))


def reference_retrain(task: Task, data: TaskData, seed: int, device: torch.device,
                      store: ModelStore | None) -> dict:
    """{"seconds", "gradient_evals", "loadavg", "remeasured", "measured_now"} of retraining one model on the
    retain set (``measured_now`` is False when the timing came from the cache)."""
    ref_seed = derive_seed(seed, "reference")
    known = task.retrain_reference(data, ref_seed, device)
    if known is not None:
        return known
    # the timing depends on the machine and its thread count, so they are part of what is cached
    spec = {**model_spec(task, data.forget_idx, ref_seed), "kind": "reference-retrain", "device": device.type,
            "host": platform.node(), "threads": torch.get_num_threads()}
    now = load_average()
    entry = store.load(spec) if store else None
    remeasured = False
    if entry is not None and "train_seconds" in entry.meta and "gradient_evals" in entry.meta:
        if not load_differs(entry.meta.get("loadavg"), now):
            return {"seconds": float(entry.meta["train_seconds"]), "gradient_evals": int(entry.meta["gradient_evals"]),
                    "loadavg": entry.meta.get("loadavg"), "remeasured": False, "measured_now": False}
        remeasured = True
    model = task.make_model(ref_seed).to(device)
    with count_evaluations() as evals:
        start = time.perf_counter()
        task.train(model, data.retain, ref_seed)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - start
    load = now  # the load before measuring: the machine's other work, not this training
    if store is not None:
        store.save(spec, model.state_dict(), {"train_seconds": seconds, "host": platform.node(),
                                              "gradient_evals": evals.gradient_evals, "loadavg": load})
    return {"seconds": seconds, "gradient_evals": evals.gradient_evals, "loadavg": load, "remeasured": remeasured,
            "measured_now": True}
