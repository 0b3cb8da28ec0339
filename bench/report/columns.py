"""The metric columns of a table, read from the records: built-in metric families plus the columns a task
declares (``Task.report_columns``); every column's direction comes from the metric declarations
(``bench.metrics.declared``), not from a list kept here."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from bench.errors import BenchError
from bench.metrics.declared import METRICS, ReportColumn, better_of

Getter = Callable[[dict], Any]

SPLITS = ("forget", "retain", "val")
EXTRA_FAMILIES = {"ulira": "U-LiRA", "population_mia": "population MIA"}


def dig(obj: Any, *keys: Any) -> Any:
    """obj[k1][k2]... or None where any level is missing (records differ in what they contain)."""
    for key in keys:
        if isinstance(obj, dict):
            obj = obj.get(key)
        elif isinstance(obj, list) and isinstance(key, int) and -len(obj) <= key < len(obj):
            obj = obj[key]
        else:
            return None
    return obj


def number(value: Any) -> float | None:
    """A finite float, or None (missing, null, NaN, infinite, or not a number at all)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        value = float(value)
    except OverflowError:  # an integer too large for a float is no score
        return None
    return value if math.isfinite(value) else None


def _value(*keys: Any) -> Getter:
    return lambda record: number(dig(record, *keys))


def _points(*keys: Any) -> Getter:
    def get(record: dict) -> list[float] | None:
        values = dig(record, *keys)
        if not isinstance(values, list):
            return None
        finite = [v for v in map(number, values) if v is not None]
        return finite or None
    return get


@dataclass(frozen=True)
class Column:
    """One metric column: how to read it from a record (and from the record's noise-floor entry)."""

    key: str
    label: str
    better: str | None  # "lower", "higher", or None where neither direction means better
    value: Getter
    floor: Getter | None = None
    points: Getter | None = None  # per-example values: the CI of a single record's mean
    floor_points: Getter | None = None


def _ordered_splits(names: Iterable[str]) -> list[str]:
    names = list(dict.fromkeys(names))
    return [s for s in SPLITS if s in names] + [s for s in names if s not in SPLITS]


def _klom_columns(records: list[dict]) -> list[Column]:
    splits = _ordered_splits(s for r in records for s in (dig(r, "metrics", "klom") or {}))
    columns = []
    for split in splits:
        for stat in ("mean", "p95", "p99"):
            mean = stat == "mean"
            columns.append(Column(
                f"klom.{split}.{stat}", f"KLoM {split} {stat}", better_of("klom"),
                _value("metrics", "klom", split, "unlearned", stat), _value("metrics", "klom", split, "floor", stat),
                _points("per_example", "klom", split) if mean else None,
                _points("per_example", "klom_floor", split) if mean else None))
    return columns


def _challenge_columns() -> list[Column]:
    path = ("metrics", "challenge")
    return [Column(f"challenge.{key}", METRICS[key].label, METRICS[key].better, _value(*path, key),
                   _value(*path, "floor", key))
            for key in ("forget_score", "final_score", "epsilon_mean")]


def _utility_columns(records: list[dict]) -> list[Column]:
    splits = _ordered_splits(s for r in records for s in (dig(r, "metrics", "utility") or {}))
    columns = []
    for split in splits:
        names = dict.fromkeys(m for r in records for m in (dig(r, "metrics", "utility", split, "unlearned") or {}))
        for name in (n for n in names if n != "loss"):
            columns.append(Column(f"utility.{split}.{name}", f"{name} {split}",
                                  better_of(name),
                                  _value("metrics", "utility", split, "unlearned", name),
                                  _value("metrics", "utility", split, "floor", name)))
    return columns


def _declared_columns(declared: ReportColumn, records: list[dict]) -> list[Column]:
    """One column, or one per key found at the declaration's ``"*"``, with values in these records."""
    path = declared.path
    if "*" not in path:
        return [Column(declared.key, declared.label, declared.direction(), _value(*path))]
    star = path.index("*")
    names = dict.fromkeys(str(n) for r in records for n in (dig(r, *path[:star]) or {}))
    return [Column(declared.key.format(name=name), declared.label.format(name=name), declared.direction(),
                   _value(*path[:star], name, *path[star + 1:])) for name in names]


def task_report_columns(task_name: str) -> tuple[ReportColumn, ...]:
    """The columns the registered task ``task_name`` declares; none for a task not installed here."""
    from bench.registry import TASKS
    try:
        return tuple(getattr(TASKS.get(task_name), "report_columns", ()))
    except BenchError:
        return ()


def _task_columns(records: list[dict]) -> list[Column]:
    """Columns the group's task declares (``Task.report_columns``), e.g. Dave's perplexity and ROUGE."""
    names = dict.fromkeys(dig(r, "task", "name") for r in records)
    return [c for name in names if isinstance(name, str) for declared in task_report_columns(name)
            for c in _declared_columns(declared, records)]


def _leaves(obj: Any, prefix: tuple = ()) -> list[tuple]:
    """Paths to the numeric leaves of a nested dict (for metric families whose shape may still change)."""
    if isinstance(obj, dict):
        return [p for k, v in obj.items() for p in _leaves(v, (*prefix, k))]
    return [prefix] if number(obj) is not None else []


def _is_score(key: Any) -> bool:
    """Attack scores (AUC, TPR at a fixed FPR), not bookkeeping such as model counts or spreads."""
    return str(key) == "auc" or str(key).startswith("tpr")


def _score_label(path: tuple) -> str:
    """'tpr_at_1pct_fpr' -> 'TPR @ 1% FPR'; 'auc' -> 'AUC'."""
    text = " ".join(map(str, path))
    match = re.fullmatch(r"(.*?)tpr_at_([0-9.]+)(pct_?)?fpr", text)
    if match:
        return f"{match.group(1)}TPR @ {match.group(2)}% FPR"
    return text.replace("auc", "AUC")


def _family_columns(records: list[dict]) -> list[Column]:
    """U-LiRA and population MIA, when a record computed them; a 'floor' sub-dict feeds the floor row."""
    columns = []
    for family, title in EXTRA_FAMILIES.items():
        paths = dict.fromkeys(p for r in records if isinstance(dig(r, "metrics", family), dict)
                              for p in _leaves(dig(r, "metrics", family)) if p[0] != "floor" and _is_score(p[-1]))
        for path in paths:
            kind = "auc" if str(path[-1]) == "auc" else "tpr_at_fpr"
            columns.append(Column(f"{family}.{'/'.join(map(str, path))}", f"{title} {_score_label(path)}",
                                  better_of(kind), _value("metrics", family, *path),
                                  _value("metrics", family, "floor", *path)))
    return columns


def load_declarations() -> None:
    """Import what declares metrics: the scorer's modules, the cost (``bench.reduce``) and every task's module."""
    import bench.metrics.epsilon  # noqa: F401
    import bench.metrics.klom  # noqa: F401
    import bench.metrics.mia  # noqa: F401
    import bench.reduce  # noqa: F401
    from bench.registry import TASKS
    try:
        TASKS.names()
    except BenchError:  # a broken plugin is reported by the registry; the page still renders
        pass


def columns_for(records: list[dict]) -> list[Column]:
    """The metric columns a group's records actually have values for, in reading order."""
    load_declarations()
    candidates = [*_klom_columns(records), *_challenge_columns(), *_utility_columns(records),
                  *_task_columns(records), *_family_columns(records),
                  Column("cost_evals", "cost in gradient evaluations relative to retraining",
                         better_of("gradient_evals_relative_to_retrain"),
                         _value("timings", "gradient_evals_relative_to_retrain")),
                  Column("cost", "wall-clock relative to retraining", better_of("cost_relative_to_retrain"),
                         _value("timings", "cost_relative_to_retrain")),
                  Column("precompute_evals", "precompute (charged separately) in gradient evaluations relative to "
                         "retraining", better_of("precompute_gradient_evals_relative_to_retrain"),
                         _value("timings", "precompute_gradient_evals_relative_to_retrain"))]
    return [c for c in candidates if any(c.value(r) is not None or (c.floor and c.floor(r) is not None)
                                         for r in records)
            and (c.key != "precompute_evals" or any(c.value(r) for r in records))]


