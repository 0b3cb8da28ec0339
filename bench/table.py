"""Human-readable tables of result records for the terminal."""
from __future__ import annotations

import pandas as pd

from bench.report.floor_test import floor_test

SPLITS = ("forget", "retain", "val")


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _klom_frame(klom: dict) -> pd.DataFrame:
    rows = {}
    for split in SPLITS:
        entry = klom[split]
        row = {f"{k}": _fmt(v) for k, v in entry["unlearned"].items()}
        for k, v in entry.get("floor", {}).items():
            row[f"floor {k}"] = _fmt(v)
        rows[split] = row
    return pd.DataFrame(rows).T


def _utility_frame(utility: dict) -> pd.DataFrame:
    rows = {}
    for split in SPLITS:
        row = {}
        for role, values in utility[split].items():
            for metric, value in values.items():
                if metric != "loss":
                    row[f"{metric} {role}"] = _fmt(value)
        rows[split] = row
    return pd.DataFrame(rows).T


def _challenge_line(challenge: dict) -> str:
    if "skipped" in challenge:
        return f"Challenge score: skipped ({challenge['skipped']})"
    floor = challenge.get("floor", {})
    return (f"Challenge score (paper 002): forget score F {_fmt(challenge['forget_score'])} "
            f"(floor {_fmt(floor.get('forget_score'))}), final score {_fmt(challenge['final_score'])} "
            f"(floor {_fmt(floor.get('final_score'))}), mean epsilon {_fmt(challenge['epsilon_mean'])} "
            f"(floor {_fmt(floor.get('epsilon_mean'))})" + _undecided_note(challenge))


def _undecided_note(challenge: dict) -> str:
    """Examples no threshold could judge score the cap; say how many so nobody mistakes them for data."""
    count = challenge.get("epsilon_undecided", 0)
    if not count:
        return ""
    return f"; {count} forget example(s) undecided by every threshold, scored at the cap (50)"


def verdict(record: dict) -> str | None:
    """One line: how far the method's forget-set KLoM is from the noise floor's, at what cost."""
    forget = (record["metrics"].get("klom") or {}).get("forget") or {}
    mine, floor = (forget.get("unlearned") or {}).get("mean"), (forget.get("floor") or {}).get("mean")
    timing = record["timings"]
    cost = timing.get("gradient_evals_relative_to_retrain")
    unit = "in gradient evaluations"
    if cost is None:
        cost, unit = timing.get("cost_relative_to_retrain"), "in wall-clock"
    pre = (record.get("precompute") or {}).get("gradient_evals_relative_to_retrain")
    if mine is None or floor is None:
        return None
    gap = mine - floor
    how = "within 0.1 of the noise floor" if abs(gap) <= 0.1 else (
        f"{gap:.3g} above the noise floor" if gap > 0 else f"{-gap:.3g} below the noise floor")
    test = floor_test([record])
    if test.tested and not test.distinguishable:
        how += (f", but within the floor's noise (95% bootstrap interval of the per-example difference over "
                f"{test.examples} examples [{test.low:.3g}, {test.high:.3g}] contains 0: use more --n-models)")
    elif test.tested:
        how += f" (95% bootstrap interval [{test.low:.3g}, {test.high:.3g}] over {test.examples} examples)"
    caveat = " (but see the warnings above)" if record.get("warnings") else ""
    return (f"VERDICT forget-set KLoM {mine:.3g} vs {floor:.3g} for a second oracle ensemble: {how}{caveat}; "
            f"cost {_fmt(cost)}x retraining one model {unit}"
            + (f" plus {_fmt(pre)}x precompute" if pre else ""))


def cost_lines(record: dict) -> list[str]:
    """Wall-clock (from models timed in this run only, saying how many), gradient evaluations, and any
    precomputation the method needed, charged beside the per-request cost."""
    timing = record["timings"]
    retrain = (f"retraining one model {timing['retrain_seconds']:.4g} s"
               + ("" if timing.get("retrain_measured_in_this_run", True) else " (timed earlier on this host, cached)"))
    note = timing.get("unlearn_timed_note") or ""
    if timing.get("unlearn_seconds_mean") is None:
        lines = [f"cost: {note}" if note else "cost: wall-clock not measured"]
    else:
        lines = [f"cost: unlearning {timing['unlearn_seconds_mean']:.4g} s/model ({note}) vs {retrain} = "
                 f"{_fmt(timing['cost_relative_to_retrain'])}x retraining"]
    if timing.get("gradient_evals_relative_to_retrain") is not None:
        lines.append(f"cost in per-example gradient evaluations: {timing['unlearn_gradient_evals_mean']:.4g} per "
                     f"model vs {timing['retrain_gradient_evals']} to retrain = "
                     f"{_fmt(timing['gradient_evals_relative_to_retrain'])}x retraining")
    pre = record.get("precompute")
    if pre:
        seconds = "" if pre.get("seconds") is None else (
            f", {pre['seconds']:.4g} s wall-clock" + ("" if all(c.get("seconds_measured_in_this_run")
                                                           for c in pre["charges"]) else " (not all timed in this run)"))
        lines.append(f"precompute (charged separately, not in the figures above): {pre['note']}: "
                     f"{pre['gradient_evals']} gradient evaluations = "
                     f"{_fmt(pre['gradient_evals_relative_to_retrain'])}x retraining{seconds}")
    return lines


def run_table(record: dict) -> str:
    """KLoM per split with its noise floor, the challenge score, utility per split, and cost."""
    metrics, timing, cache = record["metrics"], record["timings"], record["cache"]
    lines = [
        f"method {record['method']['name']} {record['method']['params']}",
        f"task   {record['task']['name']} v{record['task']['version']} {record['task']['params']}",
        *([f"NOTE   {record['task']['label']}"] if record["task"].get("label") else []),
        f"forget set: {len(record['forget_ids'])} points; models: {record['n_models']} "
        f"({record['protocol']} protocol); steps used per model: {max(record['steps_used'])}",
        *(f"WARNING {w}" for w in record.get("warnings") or []),
        "",
    ]
    if metrics["klom"]:
        lines += ["KLoM, unlearned vs oracle ensembles (lower is better; 'floor' = a second oracle ensemble, "
                  "what a perfect method scores at this N):", _klom_frame(metrics["klom"]).to_string(), ""]
    else:
        lines += ["KLoM: needs --n-models 2 or more", ""]
    for key in sorted(k for k in metrics if k.startswith("klom_") and metrics[k]):
        lines += [f"KLoM under the {key[5:]} convention (bench.metrics.klom), same ensembles:",
                  _klom_frame(metrics[key]).to_string(), ""]
    lines += [_challenge_line(metrics["challenge"]), "", "Utility, averaged over models:",
              _utility_frame(metrics["utility"]).to_string(), ""]
    gaps = ", ".join(f"{s} {_fmt(metrics['margin_rmse_to_oracle'][s])}" for s in SPLITS)
    lines.append(f"RMS margin gap to the paired oracle: {gaps}")
    distance = metrics.get("param_distance_to_oracle")
    if distance:
        lines.append(f"weight distance to oracle: original {_fmt(distance['original'])}, unlearned "
                     f"{_fmt(distance['unlearned'])} (relative {_fmt(distance['relative'])})")
    lines += cost_lines(record)
    units = record.get("units")
    if units:
        lines.append(f"work units: {units['computed']} computed, {units['cached']} cached of {units['total']}")
    lines.append(f"run took {timing['run_seconds']:.3g} s; from cache: {cache['originals']} originals, "
                 f"{cache['oracles']} oracles, {cache['floor']} floor, {cache['unlearned']} unlearned")
    line = verdict(record)
    if line:
        lines += ["", line]
    return "\n".join(lines)
