"""Paper 003's Figure 2 claim decided with intervals: does Datamodel Matching reach the noise floor, and does
it beat finetune, gdga, scrub and neggrad-plus at equal cost?

Why a module of its own: the decision must be testable on synthetic points (a clear win, a clear loss, a
tie) without training anything, and the experiment module should only run and plot. Every verdict comes
from a paired bootstrap interval (``bench.klom_intervals``): a difference is called only when the whole
95% interval of KLoM(datamodel point) - KLoM(other) lies on one side of 0.

Equal cost means no more per-example gradient evaluations per unlearned model (relative to retraining one
model) than the datamodel point, with 5% slack: gradient evaluations are deterministic, whereas the
figure's wall-clock axis moves with the machine's load. Among a baseline's budgets that qualify, the one
with the lowest KLoM estimate is compared (a choice that favours the baseline). A datamodel point cheaper
than every budget of a baseline (dm-direct costs no gradient evaluation at all) is compared with that
baseline's cheapest budget: beating it means winning while spending less.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench.bootstrap import Interval, verdict
from bench.klom_intervals import FLOOR, KlomReplicates

CLAIM_BASELINES = ("finetune", "gdga", "scrub", "neggrad-plus")
COST = "grad_evals_relative_to_retrain"
COST_SLACK = 0.05


@dataclass(frozen=True)
class Comparison:
    """One datamodel point against one baseline method's best point that costs no more."""

    baseline: str
    other: str | None  # the baseline point's label; None when the baseline was not run
    difference: Interval | None  # KLoM(datamodel) - KLoM(other)
    outcome: str  # "beats", "loses to", "ties", "not run"
    cheaper: bool = False  # no budget of the baseline was as cheap: ``other`` is its cheapest, costlier budget


@dataclass(frozen=True)
class PointVerdict:
    label: str
    klom: Interval
    vs_floor: Interval
    floor_outcome: str  # "below the floor", "within the floor's interval", "above the floor"
    comparisons: tuple[Comparison, ...]

    @property
    def reaches_floor(self) -> bool:
        return self.floor_outcome != "above the floor"

    @property
    def beats_all(self) -> bool:
        """Beats every named baseline that was run (at equal or lower cost), and at least one was."""
        judged = [c for c in self.comparisons if c.outcome != "not run"]
        return bool(judged) and all(c.outcome == "beats" for c in judged)


def _floor_outcome(difference: Interval) -> str:
    return verdict(difference, lower="below the floor", higher="above the floor", tie="within the floor's interval")


def judge_point(row: pd.Series, points: pd.DataFrame, reps: KlomReplicates,
                baselines: tuple[str, ...] = CLAIM_BASELINES) -> PointVerdict:
    """The verdicts of one datamodel point (``row``; ``points`` has columns label, method, COST)."""
    name = row["label"]
    comparisons = []
    for method in baselines:
        runs = points[(points["method"] == method) & points["label"].isin(list(reps.estimate))]
        if not len(runs):
            comparisons.append(Comparison(method, None, None, "not run"))
            continue
        pool = runs[runs[COST] <= row[COST] * (1 + COST_SLACK)]
        cheaper = not len(pool)
        if cheaper:
            other = runs.loc[runs[COST].idxmin(), "label"]
        else:
            other = min(pool["label"], key=lambda lab: reps.estimate[lab])
        difference = reps.difference(name, other)
        comparisons.append(Comparison(method, other, difference,
                                      verdict(difference, lower="beats", higher="loses to", tie="ties"), cheaper))
    vs_floor = reps.difference(name, FLOOR)
    return PointVerdict(name, reps.interval(name), vs_floor, _floor_outcome(vs_floor), tuple(comparisons))


def judge(points: pd.DataFrame, reps: KlomReplicates, datamodel_methods: tuple[str, ...]) -> list[PointVerdict]:
    """Verdicts for every datamodel point that has replicates."""
    rows = points[points["method"].isin(datamodel_methods) & points["label"].isin(list(reps.estimate))]
    return [judge_point(row, points, reps) for _, row in rows.iterrows()]


def _cost(value: float) -> str:
    return f"{value:.3g}" if np.isfinite(value) else "n/a"


def verdict_lines(points: pd.DataFrame, reps: KlomReplicates, verdicts: list[PointVerdict], *,
                  n_models: int, how: str) -> list[str]:
    """The answer first, then the evidence per datamodel point."""
    cost = dict(zip(points["label"], points[COST]))
    lines = [f"Figure 2's claim with {reps.confidence:.0%} intervals ({how}; a difference is called only when "
             "its paired interval excludes 0; equal cost = at most the datamodel point's per-example gradient "
             f"evaluations, +{COST_SLACK:.0%}):"]
    lines.append(f"  noise floor (second retrained ensemble vs the oracles): KLoM {reps.interval(FLOOR)}")
    if "retrain" in reps.estimate:
        null = reps.difference("retrain", FLOOR)
        lines.append(f"  null check, retrain - floor (two retrained ensembles; should tie): {null} -> "
                     f"{verdict(null, lower='retrain lower', higher='retrain higher', tie='tie')}"
                     + ("" if verdict(null) == "tie" else
                        "; the intervals are too narrow for the noise of a method's own models, read the "
                        "verdicts below with that in mind"))
    if not verdicts:
        return lines + ["  no datamodel point was scored"]
    reach = [v.label for v in verdicts if v.reaches_floor]
    beat = [v.label for v in verdicts if v.beats_all]
    lines.append(f"  ANSWER: reaches the noise floor's interval: {'yes, ' + ', '.join(reach) if reach else 'no'}; "
                 f"beats all of {', '.join(CLAIM_BASELINES)} at equal cost: "
                 f"{'yes, ' + ', '.join(beat) if beat else 'no'}.")
    for v in verdicts:
        lines.append(f"  {v.label} (cost {_cost(cost.get(v.label, math.nan))} x retrain in gradient evaluations): "
                     f"KLoM {v.klom}; minus floor {v.vs_floor}: {v.floor_outcome}")
        for c in v.comparisons:
            if c.other is None:
                lines.append(f"      vs {c.baseline}: not run")
            else:
                note = "; no budget of it is as cheap, this is its cheapest" if c.cheaper else ""
                lines.append(f"      {c.outcome} {c.other} (KLoM {reps.interval(c.other)}, cost "
                             f"{_cost(cost.get(c.other, math.nan))}{note}): difference {c.difference}")
    return lines


# -- data -----------------------------------------------------------------------------------------------------
def ensemble_margins(spec: object, store: object) -> dict[str, dict[str, np.ndarray]]:
    """Margins [n_models, n_points] per split of a finished run's unlearned, oracle and floor ensembles,
    read back from the cached unit arrays (no model is loaded)."""
    from bench.reduce import load_arrays
    from bench.runner import make_plan, resolve_device

    plan, _ = make_plan(spec, store, resolve_device(spec.device))
    arrays, _, _ = load_arrays(plan, store)
    return {role: {split: stats["margin"] for split, stats in arrays[role].items()}
            for role in ("unlearned", "oracle", "floor") if role in arrays}


def claim_replicates(points: pd.DataFrame, margins: dict[str, dict], methods: tuple[str, ...], *,
                     n_boot: int, seed: int = 0, resample_models: bool = True) -> KlomReplicates:
    """Paired replicates of every finished point of ``methods`` and of the floor, against the shared oracles."""
    from bench.errors import BenchError
    from bench.klom_intervals import klom_replicates

    labels = [lab for lab, method, status in zip(points["label"], points["method"], points["status"])
              if method in methods and status == "ok" and lab in margins]
    if not labels:
        raise BenchError("dm-pareto: no finished point to put intervals on")
    first = margins[labels[0]]
    for lab in labels[1:]:
        if any(not np.array_equal(margins[lab]["oracle"][s], first["oracle"][s]) for s in first["oracle"]):
            raise BenchError(f"dm-pareto: {lab} was scored against other oracles than {labels[0]}; "
                             "paired intervals need one oracle ensemble (same task, seed and N)")
    if "floor" not in first:
        raise BenchError("dm-pareto: intervals need the noise floor, which needs at least 2 models")
    return klom_replicates({lab: margins[lab]["unlearned"] for lab in labels}, first["oracle"], first["floor"],
                           n_boot=n_boot, seed=seed, resample_models=resample_models)
