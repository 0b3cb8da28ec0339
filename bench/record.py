"""The result record: one typed ``Record`` written by the runner (``bench.reduce``) and validated by the report.

``RECORD_SCHEMA`` is the version both sides agree on; the report skips records of other schemas, saying which.
Records travel as JSON (plain dicts); ``Record.to_dict`` and ``record_problem`` are the two ends of that trip.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

#: bump when a record's fields change meaning; the report skips records of other schemas, saying which
RECORD_SCHEMA = 3  # 3: records come from work units (units, scoring, cost in gradient evaluations)


@dataclass
class Record:
    """One result: (method, params, task, forget set, N) with its metrics, cost, provenance and per-example values.

    The first five fields are what identifies and ranks a result (the report requires them); the rest are
    optional for readers. ``inputs`` holds what the method's declared inputs summarised (datamodels, recorded
    gradients), written as top-level fields of the JSON.
    """

    method: dict
    task: dict
    forget_ids: list
    n_models: int
    metrics: dict
    protocol: str = "independent"
    seeds: dict = field(default_factory=dict)
    steps_used: list = field(default_factory=list)
    timings: dict = field(default_factory=dict)
    cost: dict = field(default_factory=dict)
    precompute: dict | None = None
    cache: dict = field(default_factory=dict)
    units: dict = field(default_factory=dict)
    scoring: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)
    task_report: dict = field(default_factory=dict)
    curves: Any = None
    inputs: dict = field(default_factory=dict)
    per_example: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    schema: int = RECORD_SCHEMA

    def to_dict(self) -> dict:
        """The JSON object written to disk (``schema`` first, ``inputs`` spread before ``per_example``)."""
        out: dict = {"schema": self.schema}
        for f in fields(self):
            if f.name in ("schema", "inputs"):
                continue
            if f.name == "per_example":
                out.update(self.inputs)
            out[f.name] = getattr(self, f.name)
        return out


#: fields a reader requires, with their JSON types (the ``Record`` fields without defaults)
REQUIRED = {"method": dict, "task": dict, "metrics": dict, "forget_ids": list, "n_models": int}
#: optional fields the page reads, with the type they must have when present
OPTIONAL = {"seeds": dict, "timings": dict, "provenance": dict, "per_example": dict, "cache": dict,
            "task_report": dict, "protocol": str, "steps_used": list}
MAX_DEPTH = 64


def _depth(obj: Any, limit: int = MAX_DEPTH) -> int:
    """Nesting depth of ``obj``, counting no further than ``limit`` + 1 (iteratively: no recursion limit)."""
    deepest, stack = 0, [(obj, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
    return deepest


def record_problem(obj: Any) -> str | None:
    """Why ``obj`` is not a result record of the schema this page reads (None when it is one): the report
    must not crash on other JSON, on records of another schema, or on a record with a field of the wrong type."""
    if not isinstance(obj, dict):
        return "not a result record (the JSON is not an object)"
    if "method" not in obj or "task" not in obj:
        return "not a result record (it has no 'method' and 'task')"
    schema = obj.get("schema")
    if schema != RECORD_SCHEMA or isinstance(schema, bool):
        shown = "no schema field" if "schema" not in obj else f"schema {str(schema)[:20]!s}"
        return f"record of another schema ({shown}; this report reads schema {RECORD_SCHEMA}): rerun it to update"
    for key, kind in REQUIRED.items():
        value = obj.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            got = "missing" if key not in obj else type(value).__name__
            return f"malformed record: '{key}' should be {kind.__name__}, is {got}"
    for key, kind in OPTIONAL.items():
        if key in obj and obj[key] is not None and not isinstance(obj[key], kind):
            return f"malformed record: '{key}' should be {kind.__name__}, is {type(obj[key]).__name__}"
    if not isinstance(obj["method"].get("name"), str) or not isinstance(obj["task"].get("name"), str):
        return "malformed record: method or task has no name"
    if "version" not in obj["task"]:
        return "malformed record: the task has no version"
    if not isinstance(obj["method"].get("params", {}), dict) or not isinstance(obj["task"].get("params", {}), dict):
        return "malformed record: method or task params are not an object"
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in obj["forget_ids"]):
        return "malformed record: 'forget_ids' should be a list of integers"
    if not 1 <= obj["n_models"] <= 10**6:
        return f"malformed record: 'n_models' {str(obj['n_models'])[:20]} is out of range"
    if _depth(obj) > MAX_DEPTH:
        return f"malformed record: nested deeper than {MAX_DEPTH} levels"
    return None


