"""Precomputation charged to the methods that use it, beside (never folded into) the per-request cost.

Oracle matching regresses onto a model retrained without the forget set: it pays one retraining per unlearned
model before its own steps start. Datamodel and TRAK methods fit their attribution once per task (subset
models or checkpoints plus per-example gradients) and reuse it for every forget set. Leaving these out makes
such methods look cheaper than retraining when they are not; adding them into the per-request cost hides
that one of them is a one-off. So the record keeps a separate ``precompute`` block, in gradient evaluations
(deterministic, like ``bench.gradcount``) and in wall-clock, saying what was paid, how often and whether the
seconds were measured in this run.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.units import UnitPlan


def oracle_target_charge(plan: "UnitPlan", infos: list[dict], retrain: dict) -> dict:
    """Oracle matching's targets: each is a model trained on the retain set with the task's recipe, i.e.
    exactly the reference retraining, once per unlearned model."""
    return {"what": "one model retrained on the retain set (the matching target)",
            "per": "unlearned model",
            "gradient_evals": int(retrain.get("gradient_evals") or 0),
            "seconds": float(retrain["seconds"]),
            "seconds_measured_in_this_run": bool(retrain.get("measured_now", False)),
            "seconds_basis": "the reference retraining's wall-clock (the same computation)"}


def recorded_gradients_charge(plan: "UnitPlan", infos: list[dict], retrain: dict) -> dict:
    """Stored-gradient methods: the forget set's gradients recorded while each original trains, one extra
    backward pass per forget example each time it is visited (once per epoch), plus their storage. The
    harness replays the original's seeded training to record them (originals are trained batched and shared);
    that replay is an artefact of the benchmark, not the method's cost, so it is not charged."""
    epochs = int(plan.task.training_recipe().get("epochs", 1))
    stored = int(((infos[0] or {}).get("bytes_by_group") or {}).get("all", 0)) if infos else 0
    return {"what": f"recording the forget set's gradients during training ({epochs} epochs x "
                    f"{len(plan.forget_idx)} forget examples, {stored} bytes stored)",
            "per": "original model",
            "gradient_evals": epochs * len(plan.forget_idx),
            "seconds": None, "seconds_measured_in_this_run": False,
            "seconds_basis": "not timed apart from the training it is part of", "storage_bytes": stored}


def datamodels_charge(plan: "UnitPlan", infos: list[dict], retrain: dict) -> dict:
    """Datamodels / TRAK: one fit per task, shared by every forget set and every unlearned model."""
    info = infos[0]
    cost = (info.get("describe") or {}).get("cost") or {}
    kind = (info.get("describe") or {}).get("kind", "datamodels")
    what = (f"TRAK scores from {cost.get('checkpoints')} checkpoints" if kind == "trak"
            else f"datamodels fitted on {cost.get('subset_models', info.get('n_models'))} subset models")
    seconds = cost.get("wall_seconds", info.get("train_seconds"))
    if kind == "trak":  # checkpoints come from the model cache with the seconds of their first training
        fresh, basis = False, "checkpoint training seconds as first measured, plus the attribution timed in this run"
    else:
        fresh = not bool(info.get("cached", False))
        basis = "measured when the fit was computed" + (" (read from the cache)" if not fresh else "")
    return {"what": what, "per": "task (once, shared by every forget set and model)",
            "gradient_evals": int(cost.get("gradient_evaluations") or 0),
            "seconds": float(seconds) if seconds is not None else None,
            "seconds_measured_in_this_run": fresh, "seconds_basis": basis}


def summarize(charges: list[dict], retrain: dict) -> dict | None:
    """The record's ``precompute`` block (None when the method needs no precomputation): every charge and
    their totals relative to retraining one model."""
    if not charges:
        return None
    ref_evals, ref_seconds = retrain.get("gradient_evals") or 0, float(retrain["seconds"])
    evals = sum(c["gradient_evals"] for c in charges)
    seconds = [c["seconds"] for c in charges if c.get("seconds") is not None]
    total_seconds = sum(seconds) if len(seconds) == len(charges) else None
    return {
        "charges": charges,
        "gradient_evals": evals,
        "gradient_evals_relative_to_retrain": evals / ref_evals if ref_evals > 0 else None,
        "seconds": total_seconds,
        "seconds_relative_to_retrain": total_seconds / ref_seconds if total_seconds is not None and ref_seconds > 0
        else None,
        "note": "; ".join(f"{c['what']}, paid per {c['per']}" for c in charges),
    }
