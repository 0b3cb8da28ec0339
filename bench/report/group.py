"""Which records share a leaderboard table: same task, version, params, forget set, protocol, scorer and N."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Iterable

from bench.report.load import Loaded


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str)


def group_key(record: dict) -> str:
    """Records are comparable only with the same task name, version, parameters, forget set, protocol,
    scorer version (records without one were scored by version 1) and number of models N."""
    task = record["task"]
    metrics = record.get("metrics") if isinstance(record.get("metrics"), dict) else {}
    return _canonical([task["name"], str(task["version"]), task.get("params", {}), record["forget_ids"],
                       record.get("protocol", "independent"), metrics.get("scorer_version", 1),
                       record["n_models"]])


@dataclass
class Group:
    """All records of one (task, version, params, forget set, protocol): one leaderboard table."""

    key: str
    records: list[Loaded]

    @property
    def first(self) -> dict:
        return self.records[0].record

    @property
    def ident(self) -> str:
        return hashlib.sha1(self.key.encode()).hexdigest()[:10]


def group_records(loaded: Iterable[Loaded]) -> list[Group]:
    """Groups in a stable order: by task name, version, then first appearance."""
    groups: dict[str, Group] = {}
    for item in loaded:
        key = group_key(item.record)
        groups.setdefault(key, Group(key, [])).records.append(item)
    return sorted(groups.values(), key=lambda g: (g.first["task"]["name"], str(g.first["task"]["version"]),
                                                  len(g.first["forget_ids"]), g.key))


