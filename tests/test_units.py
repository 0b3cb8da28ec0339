"""Runs as work units: bounded live models, resume, shards, shared originals, exported oracle margins, cost."""
import json
import os
import weakref
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from bench.errors import BenchError
from bench.executor import Executor
from bench.providers import inputs_of
from bench.registry import METHODS
from bench.runner import RunSpec, run, run_shard
from bench.shards import Shard, parse_shard
from bench.atomic import remove_stale_tmp
from bench.margins_io import export_margins
from oracles.cache import ModelStore
from tasks.digits import Digits

TINY = Digits(width=8, epochs=1, forget_size=6)
ALIVE: "weakref.WeakSet[torch.nn.Module]" = weakref.WeakSet()
PEAK = [0]


def _track(model: torch.nn.Module) -> None:
    ALIVE.add(model)
    PEAK[0] = max(PEAK[0], len(ALIVE))


class TrackedSequential(torch.nn.Sequential):
    """Counts every instance, including the deep copies methods make (deepcopy goes through __new__)."""

    def __new__(cls, *args, **kwargs):
        obj = super().__new__(cls)
        _track(obj)
        return obj


@dataclass(kw_only=True)
class CountedDigits(Digits):
    def make_model(self, seed):
        model = super().make_model(seed)
        model.__class__ = TrackedSequential
        _track(model)
        return model


def _scores(record: dict) -> tuple:
    return json.dumps(record["metrics"], sort_keys=True), json.dumps(record["per_example"], sort_keys=True)


def test_live_models_stay_bounded_at_64_units(tmp_path):
    PEAK[0] = 0
    task = CountedDigits(width=8, epochs=1, forget_size=6)
    record = run(RunSpec(method=METHODS.get("noop")(), task=task, n_models=64, max_scored_points=50),
                 store=ModelStore(tmp_path))
    assert record["units"] == {"total": 64, "cached": 0, "computed": 64}
    # one packed training chunk (16) plus a unit's few models; holding ensembles would be 5 x 64
    assert 4 <= PEAK[0] <= 24, PEAK[0]


def test_rescoring_reads_arrays_only_and_originals_are_shared_across_forget_sets(tmp_path):
    store = ModelStore(tmp_path)
    spec = RunSpec(method=METHODS.get("noop")(), task=TINY, n_models=4)
    first = run(spec, store=store)
    assert first["cache"]["originals"] == 0
    messages = []
    again = run(spec, store=store, log=messages.append)
    assert _scores(again) == _scores(first)
    assert again["units"]["cached"] == 4 and any("all 4 units cached" in m for m in messages)
    other_forget = run(RunSpec(method=METHODS.get("noop")(), task=Digits(width=8, epochs=1, forget_size=7,
                                                                          selector="skewed"), n_models=4),
                       store=store)
    assert other_forget["cache"]["originals"] == 4  # no original retrained for a new forget set
    assert other_forget["cache"]["oracles"] == 0


def test_shards_merge_to_the_single_run_record(tmp_path):
    method = METHODS.get("gdga")(steps=3)
    single = run(RunSpec(method=method, task=TINY, n_models=5), store=ModelStore(tmp_path / "a"))
    shared = ModelStore(tmp_path / "b")
    run_shard(RunSpec(method=method, task=TINY, n_models=5, shard=Shard(1, 2)), store=shared)
    with pytest.raises(BenchError, match=r"3 of 5 units are not computed yet: 0, 2, 4"):
        run(RunSpec(method=method, task=TINY, n_models=5, shard="merge"), store=shared)
    done = run_shard(RunSpec(method=method, task=TINY, n_models=5, shard=Shard(0, 2)), store=shared)
    assert done["units"] == [0, 2, 4]
    merged = run(RunSpec(method=method, task=TINY, n_models=5, shard="merge"), store=shared)
    assert _scores(merged) == _scores(single)
    assert merged["steps_used"] == single["steps_used"]


def test_shard_syntax_is_checked():
    assert parse_shard("3/10") == Shard(3, 10) and parse_shard("merge") == "merge"
    for bad in ("10/10", "a/b", "1/0", "-1/3"):
        with pytest.raises(BenchError, match="--shard"):
            parse_shard(bad)


def test_exported_oracle_margins_give_identical_scores_without_training_oracles(tmp_path):
    method = METHODS.get("gdga")(steps=3)
    source = ModelStore(tmp_path / "source")
    reference = run(RunSpec(method=method, task=TINY, n_models=4), store=source)
    export_margins(TINY, n_models=4, out=tmp_path / "export", store=source, executor=Executor())
    manifest = json.loads((tmp_path / "export" / "manifest.json").read_text())
    assert manifest["format"] == "unlearning-bench-margins" and manifest["version"] == 2
    # EasyDUB's layout: the floor is oracles N..2N-1, digits' last epoch (1 of 1) is epoch 0
    assert (tmp_path / "export" / "confidences" / "digits" / "oracle" / "forget_1" / "forget" / "mlp"
            / "id_7_epoch_0.npy").is_file()
    fresh = ModelStore(tmp_path / "fresh")
    imported = run(RunSpec(method=method, task=TINY, n_models=4, oracle_margins=str(tmp_path / "export")),
                   store=fresh)
    assert _scores(imported) == _scores(reference)
    trained = [json.loads(p.read_text())["spec"] for p in (tmp_path / "fresh").rglob("*.json")
               if '"trained"' in p.read_text()]
    assert trained and all(spec["excluded_ids"] == [] for spec in trained if spec.get("kind") == "trained")
    assert imported["scoring"]["oracle_source"]["n_models"] == 4


def test_a_mismatched_export_is_refused_naming_the_field(tmp_path):
    store = ModelStore(tmp_path / "c")
    export_margins(TINY, n_models=3, out=tmp_path / "export", store=store, executor=Executor())
    other = Digits(width=9, epochs=1, forget_size=6)
    with pytest.raises(BenchError, match=r"field 'task\.params\.width'"):
        run(RunSpec(method=METHODS.get("noop")(), task=other, n_models=3, oracle_margins=str(tmp_path / "export")))
    with pytest.raises(BenchError, match=r"field 'forget_ids'"):
        run(RunSpec(method=METHODS.get("noop")(), task=TINY, n_models=3, forget_ids=[1, 2, 3],
                    oracle_margins=str(tmp_path / "export")))
    with pytest.raises(BenchError, match=r"field 'models\.oracle'"):
        run(RunSpec(method=METHODS.get("noop")(), task=TINY, n_models=5, oracle_margins=str(tmp_path / "export")))
    victim = next((tmp_path / "export" / "margins" / "digits" / "oracle").rglob("forget/mlp/id_0_epoch_0.npy"))
    victim.write_bytes(victim.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(BenchError, match="sha256"):
        run(RunSpec(method=METHODS.get("noop")(), task=TINY, n_models=3, oracle_margins=str(tmp_path / "export")))


def test_max_scored_points_caps_and_is_recorded():
    record = run(RunSpec(method=METHODS.get("noop")(), task=TINY, n_models=2, max_scored_points=100))
    assert record["metrics"]["scored_points"] == {"forget": 6, "retain": 100, "val": 100}
    assert record["scoring"]["max_scored_points"] == 100
    full = run(RunSpec(method=METHODS.get("noop")(), task=TINY, n_models=2))
    train, val = TINY.load()
    assert full["metrics"]["scored_points"] == {"forget": 6, "retain": len(train) - 6, "val": len(val)}


def test_cost_is_counted_in_gradient_evaluations():
    timings = run(RunSpec(method=METHODS.get("gdga")(steps=4), task=TINY, n_models=2))["timings"]
    train, _ = TINY.load()
    assert timings["retrain_gradient_evals"] == TINY.epochs * (len(train) - 6)
    assert timings["unlearn_gradient_evals_mean"] > 0
    assert timings["gradient_evals_relative_to_retrain"] == pytest.approx(
        timings["unlearn_gradient_evals_mean"] / timings["retrain_gradient_evals"])
    assert run(RunSpec(method=METHODS.get("noop")(), task=TINY, n_models=2))["timings"][
        "unlearn_gradient_evals_mean"] == 0


def test_unknown_requirement_is_a_clear_error():
    with pytest.raises(BenchError, match="no provider supplies"):
        inputs_of(frozenset({"telepathy"}))
    assert inputs_of(frozenset({"datamodels", "classification"})) == ("datamodels",)


def test_stale_tmp_files_are_removed_but_live_ones_kept(tmp_path):
    import os
    (tmp_path / "ab").mkdir()
    dead = tmp_path / "ab" / ".x.safetensors.999999999.abc.tmp"
    live = tmp_path / "ab" / f".x.safetensors.{os.getpid()}.abc.tmp"
    dead.write_bytes(b"partial")
    live.write_bytes(b"partial")
    assert remove_stale_tmp(tmp_path) == 1
    assert live.exists() and not dead.exists()


def test_cli_shards_merge_and_margins_export(tmp_path, capsys):
    from bench.cli import main
    common = ["--task", "digits", "--task-arg", "width=8", "--task-arg", "epochs=1", "--forget-size", "6",
              "--n-models", "3", "--cache-dir", str(tmp_path / "cache")]
    run_args = ["run", "--method", "noop", *common, "--out", str(tmp_path / "out")]
    assert main([*run_args, "--shard", "1/2"]) == 0
    assert "shard 1/2: 1 units computed" in capsys.readouterr().out
    assert not list((tmp_path / "out").rglob("*.json"))  # a shard writes no record
    assert main([*run_args, "--shard", "merge"]) == 2
    assert "2 of 3 units are not computed yet: 0, 2" in capsys.readouterr().err
    assert main([*run_args, "--shard", "5/2"]) == 2
    assert main([*run_args, "--shard", "0/2"]) == 0
    assert main([*run_args, "--shard", "merge"]) == 0
    assert "work units: 0 computed, 3 cached of 3" in capsys.readouterr().out
    assert main(["margins", "export", *common, "--out", str(tmp_path / "m")]) == 0
    assert (tmp_path / "m" / "manifest.json").is_file()
    assert main([*run_args, "--oracle-margins", str(tmp_path / "nowhere")]) == 2
    assert "no manifest.json" in capsys.readouterr().err


def test_reference_retrain_is_remeasured_when_the_load_differs_a_lot(tmp_path, monkeypatch):
    import bench.retrain_cost as cost
    from bench.task import TaskData
    train, val = TINY.load()
    data = TaskData(train, val, np.arange(6))
    store = ModelStore(tmp_path)
    monkeypatch.setattr(cost, "load_average", lambda: 0.1)
    first = cost.reference_retrain(TINY, data, 0, torch.device("cpu"), store)
    assert first["loadavg"] == 0.1 and not first["remeasured"]
    assert cost.reference_retrain(TINY, data, 0, torch.device("cpu"), store)["seconds"] == first["seconds"]
    monkeypatch.setattr(cost, "load_average", lambda: 0.1 + max(1.0, 0.5 * (os.cpu_count() or 1)) + 0.5)
    busy = cost.reference_retrain(TINY, data, 0, torch.device("cpu"), store)
    assert busy["remeasured"] and busy["gradient_evals"] == first["gradient_evals"] == TINY.epochs * (len(train) - 6)


def _unit_digests(root) -> dict:
    from bench.perf_units import _unit_digests as digests
    return digests(root)


@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_forked_and_spawned_workers_store_the_in_process_arrays_bit_for_bit(tmp_path, start):
    import shutil
    from bench.perf_units import _drop_units
    method = METHODS.get("gdga")(steps=3)
    local = run(RunSpec(method=method, task=TINY, n_models=3), store=ModelStore(tmp_path / "local"))
    shutil.copytree(tmp_path / "local", tmp_path / start)
    assert _drop_units(tmp_path / start) == 6
    workers = run(RunSpec(method=method, task=TINY, n_models=3, executor=Executor(workers=2, start=start)),
                  store=ModelStore(tmp_path / start))
    assert workers["units"]["computed"] == 3
    assert _scores(workers) == _scores(local)
    assert _unit_digests(tmp_path / start) == _unit_digests(tmp_path / "local") and len(_unit_digests(
        tmp_path / "local")) == 3


def _fails_on_two(i: int) -> int:
    if i == 2:
        raise BenchError(f"job {i} refused")
    return i * i


def test_a_worker_error_reaches_the_caller_and_the_pool_stops():
    assert list(Executor(workers=2, start="fork").map(_fails_on_two, [(0,), (1,), (3,)])) == [0, 1, 9]
    with pytest.raises(BenchError, match="job 2 refused"):
        list(Executor(workers=2, start="fork").map(_fails_on_two, [(i,) for i in range(6)]))
    with pytest.raises(BenchError, match="unknown worker start"):
        Executor(workers=2, start="thread")
