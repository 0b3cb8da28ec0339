"""Issue 16: the report does not rank what cannot be told apart from the noise floor (bench.report.floor_test)."""
from __future__ import annotations

import copy
import re

import numpy as np
import pytest

from bench.registry import METHODS
from bench.report.build import build_report
from bench.report.floor_test import (BOOTSTRAP, FloorTest, bootstrap_interval, floor_test, paired_differences,
                                     ranks)
from bench.runner import RunSpec, run
from bench.atomic import write_json_atomic
from tasks.linear_gaussian import LinearGaussian


def _record(mine: list[float], floor: list[float], split: str = "forget") -> dict:
    return {"per_example": {"klom": {split: mine}, "klom_floor": {split: floor}}}


def test_paired_differences_average_over_records_by_hand():
    # record 1: differences [1, 3]; record 2: [3, 1]; per example the mean is [2, 2]
    diff = paired_differences([_record([2.0, 4.0], [1.0, 1.0]), _record([4.0, 2.0], [1.0, 1.0])])
    assert diff.tolist() == [2.0, 2.0]
    assert paired_differences([_record([1.0], [1.0, 2.0])]) is None  # the points do not pair up
    assert paired_differences([{"per_example": {}}]) is None
    assert paired_differences([_record([None, 2.0], [1.0, 1.0])]).tolist() == [1.0]  # null (non-finite) dropped


def test_bootstrap_interval_by_hand():
    assert bootstrap_interval(np.full(10, 0.5)) == (0.5, 0.5)  # every resample has mean 0.5
    # two values: a resample's mean is k/n of the way from -1 to 1, so the interval is inside [-1, 1] and
    # symmetric about 0 up to resampling noise
    low, high = bootstrap_interval(np.array([-1.0, 1.0] * 10))
    assert -1.0 < low < -0.2 and 0.2 < high < 1.0
    # the percentiles of BOOTSTRAP seeded resamples, recomputed independently
    diff = np.arange(8, dtype=float)
    rng = np.random.default_rng(0)
    means = np.array([diff[rng.integers(0, 8, size=8)].mean() for _ in range(BOOTSTRAP)])
    assert bootstrap_interval(diff) == pytest.approx(tuple(np.percentile(means, [2.5, 97.5])), abs=1e-12)


def test_rows_within_the_floor_noise_are_unranked():
    far = floor_test([_record([3.0, 3.1, 2.9, 3.0, 3.2, 3.0], [1.0] * 6)])
    assert far.tested and far.distinguishable and far.difference == pytest.approx(2.0333, abs=1e-3)
    near = floor_test([_record([1.5, 0.5, 1.4, 0.6, 1.0, 1.0], [1.0] * 6)])
    assert near.tested and not near.distinguishable and near.low < 0 < near.high
    assert "cannot be told apart from the noise floor" in near.reason and "over 6 examples" in near.reason
    few = floor_test([_record([5.0, 5.0], [1.0, 1.0])])
    assert not few.tested and few.distinguishable and "too few" in few.reason
    assert ranks([far, near, far, FloorTest(False, True)]) == [1, None, 2, 3]


def test_the_page_shows_an_indistinguishable_method_unranked_with_the_reason(tmp_path):
    task = LinearGaussian(n=30, d=20, n_val=20, trainer="sgd", train_steps=60)
    folder = tmp_path / "results"
    noop = run(RunSpec(method=METHODS.get("noop")(), task=task, n_models=4))
    assert not noop["warnings"]
    floor = noop["per_example"]["klom_floor"]["forget"]
    twin = copy.deepcopy(noop)  # a method that scores exactly the noise floor's per-example KLoM
    twin["method"] = {**twin["method"], "name": "floor-twin"}
    twin["per_example"]["klom"]["forget"] = list(floor)
    twin["metrics"]["klom"]["forget"]["unlearned"] = dict(twin["metrics"]["klom"]["forget"]["floor"])
    far = copy.deepcopy(noop)  # and one far above it
    far["method"] = {**far["method"], "name": "far-above"}
    far["per_example"]["klom"]["forget"] = [v + 5.0 for v in floor]
    far["metrics"]["klom"]["forget"]["unlearned"]["mean"] = noop["metrics"]["klom"]["forget"]["floor"]["mean"] + 5
    for name, record in (("twin", twin), ("far", far)):
        write_json_atomic(folder / f"{name}.json", record)
    page = build_report(folder, tmp_path / "site" / "index.html").read_text()
    assert "rank vs noise floor" in page
    cells = {m: body for m, body in re.findall(r'<tr data-method="([^"]+)"(.*?)</tr>', page, re.S)}
    assert "unranked: " in cells["floor-twin"] and "contains 0" in cells["floor-twin"]
    assert re.search(r'<td data-value="1" title="[^"]*">1 <span class="ci">\(\+5 \[5, 5\]\)', cells["far-above"])


def test_the_verdict_says_when_the_gap_is_within_the_floor_noise():
    from bench.table import verdict

    def record(mine):
        return {"metrics": {"klom": {"forget": {"unlearned": {"mean": float(np.mean(mine))},
                                                "floor": {"mean": 1.0}}}},
                "timings": {"gradient_evals_relative_to_retrain": 0.25},
                "per_example": {"klom": {"forget": mine}, "klom_floor": {"forget": [1.0] * len(mine)}}}
    noisy = verdict(record([1.5, 0.5, 1.4, 0.6, 1.0, 1.9]))
    assert "0.15 above the noise floor, but within the floor's noise" in noisy and "use more --n-models" in noisy
    clear = verdict(record([3.0, 3.1, 2.9, 3.0, 3.2, 3.0]))
    assert "2.03 above the noise floor (95% bootstrap interval [" in clear and "within" not in clear
    assert "cost 0.25x retraining one model in gradient evaluations" in clear
