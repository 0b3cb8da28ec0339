"""Metrics declare their direction where they are defined; tasks declare their report columns; one Record type."""
from __future__ import annotations

import pytest

from bench.catalog import REPRODUCTIONS
from bench.errors import UnknownNameError
from bench.metrics.declared import METRICS, ReportColumn, declare
from bench.record import RECORD_SCHEMA, Record, record_problem
from bench.registry import TASKS
from bench.report.columns import columns_for, load_declarations


def test_built_in_metrics_declare_their_direction():
    load_declarations()
    expected = {"klom": "lower", "forget_score": "higher", "final_score": "higher", "epsilon_mean": "lower",
                "accuracy": "higher", "loss": "lower", "mse": "lower", "perplexity": "lower", "auc": None}
    assert {name: METRICS[name].better for name in expected} == expected
    assert all(METRICS[name].aggregation for name in expected)


def test_a_conflicting_redeclaration_fails():
    with pytest.raises(ValueError, match="declared twice"):
        declare("accuracy", "lower", "something else")


def test_every_built_in_utility_metric_is_declared():
    """What a task's ``evaluate`` returns must have a declared direction (the report ranks by it)."""
    from bench.task import Split
    import torch
    load_declarations()
    for name, params in (("linear-gaussian", dict(n=24, d=4, n_val=8, forget_size=2)), ("digits", dict(width=8))):
        task = TASKS.get(name)(**params)
        train, _ = task.load()
        small = Split(train.x[:8], train.y[:8])
        with torch.no_grad():
            names = task.evaluate(task.make_model(0), small)
        assert set(names) <= set(METRICS), (name, set(names) - set(METRICS))


def _record(task: str, task_report: dict) -> dict:
    return Record(method={"name": "noop", "params": {}}, task={"name": task, "version": "1", "params": {}},
                  forget_ids=[0], n_models=2, metrics={}, task_report=task_report).to_dict()


def test_the_report_reads_columns_the_task_declares():
    assert TASKS.get("dave").report_columns and all(isinstance(c, ReportColumn) for c in TASKS.get("dave").report_columns)
    report = {"perplexity": {"after_unlearning": {"forget": 3.0, "retain": 1.5}},
              "rouge": {"after_unlearning": {"forget": {"rougeL": 0.5}}}, "influence": {"after_unlearning": -2.0}}
    columns = {c.key: c for c in columns_for([_record("dave-tiny", report)])}
    assert {"lm.perplexity.forget", "lm.perplexity.retain", "lm.rouge.rougeL", "lm.influence"} <= set(columns)
    assert columns["lm.perplexity.forget"].better == "lower" and columns["lm.rouge.rougeL"].better is None
    # a task that declares no such columns gets none, whatever its records carry
    assert not any(k.startswith("lm.") for k in (c.key for c in columns_for([_record("digits", report)])))


def test_a_record_round_trips_through_the_reports_validation():
    record = _record("digits", {})
    assert next(iter(record)) == "schema" and record["schema"] == RECORD_SCHEMA
    assert record_problem(record) is None
    assert "another schema" in record_problem({**record, "schema": RECORD_SCHEMA - 1})


def test_reproductions_are_registered_by_the_task_packages():
    assert {"linear-convergence", "dave-layers", "dave-epochs", "dave-layers-scratch", "dave-epochs-scratch",
            "dm-pareto", "easydub-pretrain"} == set(REPRODUCTIONS.names())
    with pytest.raises(UnknownNameError, match="Did you mean 'dm-pareto'"):
        REPRODUCTIONS.get("dm-paretto")
