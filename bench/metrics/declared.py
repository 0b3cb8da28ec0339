"""Metric declarations: each metric says, where it is defined, its name, which direction is better and how
it is aggregated, so the report ranks and labels columns from these declarations instead of a list of its own.

Tasks declare the extra leaderboard columns they report (``Task.report_columns``) with ``ReportColumn``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Better = Literal["higher", "lower"] | None


@dataclass(frozen=True)
class MetricInfo:
    """What a metric is: ``better`` is "higher", "lower" or None (no direction is better, e.g. an attack AUC
    whose ideal is chance); ``aggregation`` says how one record's value is formed from models and examples."""

    name: str
    better: Better
    aggregation: str
    label: str = ""


#: every declared metric by name (built-ins on import of their module, task metrics when the task is imported)
METRICS: dict[str, MetricInfo] = {}


def declare(name: str, better: Better, aggregation: str, label: str = "") -> MetricInfo:
    """Declare a metric; declaring one name twice with different meanings is an error."""
    if better not in ("higher", "lower", None):
        raise ValueError(f"metric {name!r}: better must be 'higher', 'lower' or None, not {better!r}")
    info = MetricInfo(name, better, aggregation, label or name)
    if name in METRICS and METRICS[name] != info:
        raise ValueError(f"metric {name!r} is declared twice, differently: {METRICS[name]} and {info}")
    METRICS[name] = info
    return info


def better_of(name: str) -> Better:
    """The declared direction of ``name``; None for an undeclared metric (the report claims no direction)."""
    info = METRICS.get(name)
    return info.better if info is not None else None


@dataclass(frozen=True)
class ReportColumn:
    """A value a task puts in its records (usually under ``task_report``), shown as a leaderboard column.

    ``path`` is the key path inside a record; one ``"*"`` in it makes one column per key found there, and
    ``{name}`` in ``key`` and ``label`` is replaced by that key. The direction comes from the declared
    ``metric`` when one is named, else from ``better``.
    """

    key: str
    label: str
    path: tuple[str, ...]
    metric: str | None = None
    better: Better = None

    def direction(self) -> Better:
        return better_of(self.metric) if self.metric is not None else self.better
