"""Human-readable tables of result records for the terminal."""
from __future__ import annotations

import pandas as pd


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def run_table(record: dict) -> str:
    """One row per split: each utility metric for original/unlearned/oracle and the margin gap to the oracle."""
    metrics = record["metrics"]
    rows = []
    for split in ("forget", "retain", "val"):
        entry = metrics[split]
        row = {"split": split}
        for key in entry["oracle"]:
            for role in ("original", "unlearned", "oracle"):
                row[f"{key} {role}"] = _fmt(entry[role][key])
        gap = entry["margin_rmse_to_oracle"]
        row["margin gap original"] = _fmt(gap["original"])
        row["margin gap unlearned"] = _fmt(gap["unlearned"])
        rows.append(row)
    frame = pd.DataFrame(rows).set_index("split")
    lines = [
        f"method {record['method']['name']} {record['method']['params']}",
        f"task   {record['task']['name']} v{record['task']['version']} {record['task']['params']}",
        f"forget set: {len(record['forget_ids'])} points; models: {record['n_models']}; "
        f"steps used: {max(record['steps_used'])}",
        "",
        frame.to_string(),
        "",
        "margin gap = RMS difference of per-example margins (regression: predictions) to the paired oracle",
    ]
    distance = metrics.get("param_distance_to_oracle")
    if distance:
        lines.append(f"weight distance to oracle: original {_fmt(distance['original'])}, unlearned "
                     f"{_fmt(distance['unlearned'])} (relative {_fmt(distance['relative'])})")
    timing = record["timings"]
    lines.append(f"time per model: unlearning {timing['unlearn_seconds_mean']:.4f}s, retraining "
                 f"{timing['retrain_seconds_mean']:.4f}s (cost relative to retraining "
                 f"{_fmt(timing['cost_relative_to_retrain'])})")
    return "\n".join(lines)
