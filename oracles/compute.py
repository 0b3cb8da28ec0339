"""Compute of attribution providers in per-example gradient evaluations (machine-independent, paper 003 Fig. 2).

One training run of the task on ``n_points`` costs ``epochs * n_points`` evaluations for epoch-based
recipes and ``steps * batch`` for step-based ones; a closed-form fit counts as one pass over its data
(the convention that makes it comparable at all).
"""
from __future__ import annotations

from bench.task import Task


def training_gradient_evaluations(task: Task, n_points: int) -> int:
    """Per-example gradient evaluations of training one model of ``task`` on ``n_points`` points."""
    recipe = task.training_recipe()
    if "epochs" in recipe:
        return int(recipe["epochs"]) * int(n_points)
    if "steps" in recipe:
        batch = recipe.get("batch", "full")
        per_step = int(n_points) if batch == "full" else min(int(batch), int(n_points))
        return int(recipe["steps"]) * per_step
    return int(n_points)
