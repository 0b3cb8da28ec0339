"""Issue 16, honest cost: wall-clock only from models unlearned in this run (saying how many), and
precomputation charged to the methods that need it, beside the per-request cost and never inside it."""
import json

import pytest

from bench.cli import main
from bench.precompute import summarize
from bench.wallclock import fresh_wall_clock, timed_in_this_run

# digits: 1437 train points (80% of 1797), 6 forgotten -> retraining one epoch is 1431 gradient evaluations
DIGITS = ["--task", "digits", "--task-arg", "width=8", "--task-arg", "epochs=1", "--forget-size", "6"]
RETRAIN_EVALS = 1431


def _run(tmp_path, capsys, method, n, *extra):
    out = tmp_path / f"out-{method}-{n}-{len(list(tmp_path.glob('out-*')))}"
    code = main(["run", "--method", method, *DIGITS, "--n-models", str(n), *extra, "--out", str(out),
                 "--cache-dir", str(tmp_path / "cache")])
    text = capsys.readouterr().out
    assert code == 0
    [path] = out.rglob("*.json")
    return json.loads(path.read_text()), text


def test_cached_models_do_not_replay_their_wall_clock(tmp_path, capsys):
    first, _ = _run(tmp_path, capsys, "gdga", 2)
    assert first["timings"]["unlearn_models_timed"] == 2 and first["cost"]["models_timed"] == 2
    assert first["timings"]["unlearn_seconds_mean"] > 0 and first["cost"]["wall_clock"] > 0
    assert first["timings"]["unlearn_timed_note"] == "wall-clock from 2 of 2 models timed in this run"

    again, table = _run(tmp_path, capsys, "gdga", 2)  # every unit cached: nothing was timed now
    timings = again["timings"]
    assert timings["unlearn_models_timed"] == 0
    assert timings["unlearn_seconds_mean"] is None and timings["cost_relative_to_retrain"] is None
    assert again["cost"]["wall_clock"] is None
    # what the cached models took when first computed is kept apart, labelled, never as this run's cost
    assert timings["unlearn_seconds_earlier_mean"] == pytest.approx(first["timings"]["unlearn_seconds_mean"])
    assert "none of the 2 unlearned models was computed in this run" in table
    # the deterministic cost does not depend on when it was counted
    assert timings["gradient_evals_relative_to_retrain"] == first["timings"]["gradient_evals_relative_to_retrain"]

    more, table = _run(tmp_path, capsys, "gdga", 4)  # units 0 and 1 come from the cache, 2 and 3 are new
    assert more["timings"]["unlearn_models_timed"] == 2
    assert "wall-clock from 2 of 4 models timed in this run" in table

    rescored, _ = _run(tmp_path, capsys, "gdga", 2, "--max-scored-points", "50")  # new units, cached models
    assert rescored["units"]["computed"] == 2 and rescored["timings"]["unlearn_models_timed"] == 0


def test_oracle_matching_is_charged_one_retraining_per_model(tmp_path, capsys):
    record, table = _run(tmp_path, capsys, "oracle-matching", 2)
    assert record["timings"]["retrain_gradient_evals"] == RETRAIN_EVALS
    pre = record["precompute"]
    assert pre["gradient_evals"] == RETRAIN_EVALS and pre["gradient_evals_relative_to_retrain"] == 1.0
    assert pre["charges"][0]["per"] == "unlearned model"
    assert record["cost"]["precompute_gradient_evals"] == 1.0
    assert record["timings"]["precompute_gradient_evals"] == RETRAIN_EVALS
    # beside the per-request cost, not folded into it: the method's own passes only
    assert record["timings"]["gradient_evals_relative_to_retrain"] == pytest.approx(
        record["timings"]["unlearn_gradient_evals_mean"] / RETRAIN_EVALS)
    assert "precompute (charged separately" in table and "1x retraining" in table


def test_datamodels_are_charged_once_per_task(tmp_path, capsys):
    record, _ = _run(tmp_path, capsys, "dm-direct", 2, "--method-arg", "datamodel_models=10")
    [charge] = record["precompute"]["charges"]
    # 10 subset models, each one epoch on round(0.5 * 1437) = 718 points
    assert charge["gradient_evals"] == 10 * 718 and charge["per"].startswith("task")
    assert record["precompute"]["gradient_evals_relative_to_retrain"] == pytest.approx(7180 / RETRAIN_EVALS)


def test_methods_without_precomputation_have_none(tmp_path, capsys):
    record, table = _run(tmp_path, capsys, "noop", 2)
    assert record["precompute"] is None and record["cost"]["precompute_gradient_evals"] == 0.0
    assert "precompute" not in table


def test_timed_units_by_hand():
    metas = [{"unlearn_seconds": 1.0, "unlearned_cached": False}, {"unlearn_seconds": 9.0, "unlearned_cached": True},
             {"unlearn_seconds": 3.0, "unlearned_cached": False}, {"unlearn_seconds": 50.0, "unlearned_cached": False}]
    # unit 3 was not computed in this run (a cached unit), unit 1 reused a cached unlearned model
    assert timed_in_this_run(metas, [0, 1, 2]) == [0, 2]
    wall = fresh_wall_clock(metas, [0, 1, 2], {"seconds": 4.0, "measured_now": True}, workers=2, parallel=True)
    assert wall["unlearn_seconds_mean"] == 2.0 and wall["cost_relative_to_retrain"] == 0.5
    assert wall["unlearn_timed_note"] == "wall-clock from 2 of 4 models timed in this run, 2 worker processes at once"


def test_precompute_totals_by_hand():
    charges = [{"what": "a", "per": "unlearned model", "gradient_evals": 300, "seconds": 2.0},
               {"what": "b", "per": "task", "gradient_evals": 100, "seconds": None}]
    total = summarize(charges, {"gradient_evals": 200, "seconds": 4.0})
    assert total["gradient_evals"] == 400 and total["gradient_evals_relative_to_retrain"] == 2.0
    assert total["seconds"] is None  # one charge has no seconds: no partial total
    assert summarize(charges[:1], {"gradient_evals": 200, "seconds": 4.0})["seconds_relative_to_retrain"] == 0.5
    assert summarize([], {"gradient_evals": 200, "seconds": 4.0}) is None


def test_the_record_keeps_the_command_as_typed(monkeypatch):
    import sys
    from pathlib import Path

    import bench
    from bench.provenance import command_line
    main_py = str(Path(bench.__file__).with_name("__main__.py"))
    monkeypatch.setattr(sys, "argv", [main_py, "run", "--method", "gdga", "--task-arg", "target=a b"])
    assert command_line() == f"{Path(sys.executable).name} -m bench run --method gdga --task-arg 'target=a b'"


def test_stored_gradients_are_charged_their_recording_passes():
    import torch

    from bench.registry import METHODS
    from bench.runner import RunSpec, run
    from tasks.language.dave import DaveTiny
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        task = DaveTiny(n_layer=1, n_embd=16, vocab_size=300, epochs=2)
        record = run(RunSpec(method=METHODS.get("stored-ga")(steps=2), task=task))
    finally:
        torch.set_num_threads(threads)
    [charge] = record["precompute"]["charges"]
    # one extra backward pass per forget sentence per epoch: 2 epochs x 1 sentence; retraining: 2 x 19 sentences
    assert charge["gradient_evals"] == 2 and charge["per"] == "original model"
    assert record["timings"]["retrain_gradient_evals"] == 38
    assert record["precompute"]["gradient_evals_relative_to_retrain"] == pytest.approx(2 / 38)
    assert charge["storage_bytes"] == record["recorded_gradients"]["bytes_by_group"]["all"] > 0
    assert record["precompute"]["seconds"] is None  # not timed apart from training: no made-up number


def test_gradient_evaluations_count_keyword_called_language_models():
    """transformers models are called as model(input_ids=x): the count must see keyword tensors too."""
    import torch

    from bench.gradcount import count_evaluations
    from tasks.language.dave import DaveTiny
    task = DaveTiny(n_layer=1, n_embd=16, vocab_size=300, epochs=1)
    train, _ = task.load()
    model = task.make_model(0)
    with count_evaluations() as count:
        task.loss(model, train.x[:5], train.y[:5]).mean().backward()
        with torch.no_grad():
            task.loss(model, train.x[:3], train.y[:3])
    assert count.as_dict() == {"gradient_evals": 5, "forward_evals": 3}
