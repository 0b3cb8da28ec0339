"""The command line as a user meets it: listing, running, records and errors."""
import json
import subprocess
import sys

import pytest

from bench.cli import main

TINY = ["--task", "linear-gaussian", "--task-arg", "n=30", "--task-arg", "d=20", "--task-arg", "n_val=10"]


def _records(folder):
    return sorted(folder.rglob("*.json"))


def test_list_shows_methods_tasks_and_defaults(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "gdga" in out and "linear-gaussian" in out
    assert "forget_weight = 0.01  (float, >= 0)" in out
    assert "ridge = 0.001  (float, >= 0)" in out
    assert "steps = 100  (int, in [0, 100000])" in out  # the declared bounds, as the CLI enforces them


def test_run_writes_a_complete_record(tmp_path, capsys):
    code = main(["run", "--method", "gdga", *TINY, "--seed", "4", "--forget-size", "3",
                 "--method-arg", "steps=7", "--out", str(tmp_path)])
    assert code == 0
    out = capsys.readouterr().out
    assert "forget" in out and "retain" in out and "val" in out
    [path] = _records(tmp_path)
    record = json.loads(path.read_text())
    assert record["method"]["name"] == "gdga" and len(record["method"]["code"]) == 16
    assert record["method"]["params"] == {"steps": 7, "lr": None, "batch_size": None, "momentum": 0.0,
                                          "forget_weight": 0.01}
    assert record["task"]["name"] == "linear-gaussian" and record["task"]["version"] == "2"
    assert record["task"]["params"]["n"] == 30 and record["task"]["params"]["forget_size"] == 3
    assert len(record["forget_ids"]) == 3 and record["seeds"]["base"] == 4
    assert record["steps_used"] == [7]
    for key in ("unlearn_seconds_mean", "retrain_seconds", "cost_relative_to_retrain", "run_seconds"):
        assert record["timings"][key] >= 0
    prov = record["provenance"]
    assert prov["packages"]["torch"] and prov["date"] and "git_commit" in prov
    assert not list(tmp_path.rglob("*.tmp"))


def test_explicit_forget_ids_are_used(tmp_path):
    assert main(["run", "--method", "noop", *TINY, "--forget-ids", "5,1,9", "--out", str(tmp_path)]) == 0
    [path] = _records(tmp_path)
    assert json.loads(path.read_text())["forget_ids"] == [1, 5, 9]


@pytest.mark.parametrize("args,message", [
    (["--method", "gdgx", *TINY], "Did you mean: gdga"),
    (["--method", "gdga", "--task", "linear-gausian"], "Did you mean: linear-gaussian"),
    (["--method", "gdga", *TINY, "--method-arg", "stepz=3"], "Did you mean 'steps'"),
    (["--method", "gdga", *TINY, "--method-arg", "lr=fast"], "'lr' expects float | None, got 'fast'"),
    (["--method", "gdga", *TINY, "--task-arg", "trainer=adam"], "'trainer' expects 'exact' | 'gd' | 'sgd'"),
    (["--method", "gdga", *TINY, "--forget-ids", ""], "forget set is empty"),
    (["--method", "gdga", *TINY, "--forget-ids", "1,2,2"], "repeats ids [2]"),
    (["--method", "gdga", *TINY, "--forget-ids", "1,30"], "out of range"),
    (["--method", "gdga", *TINY, "--forget-size", "0"], "'forget_size' must be in [1, 10000000], got 0"),
    (["--method", "gdga", *TINY, "--forget-size", "30"], "forget size must be between 1 and 29"),
    (["--method", "gdga", *TINY, "--n-models", "0"], "--n-models must be in [1, 100000], got 0"),
])
def test_bad_input_exits_2_with_a_clear_message_and_no_file(tmp_path, capsys, args, message):
    assert main(["run", *args, "--out", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err
    assert not list(tmp_path.rglob("*"))


def test_divergence_exits_3_and_writes_nothing(tmp_path, capsys):
    code = main(["run", "--method", "ga", "--task", "linear-gaussian", "--task-arg", "d=20", "--task-arg", "n=30",
                 "--method-arg", "lr=1e6", "--method-arg", "steps=100", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 3
    assert "diverged at iteration" in err and "no result was written" in err
    assert not list(tmp_path.rglob("*"))


def test_default_sized_sgd_trainer_is_stable(tmp_path):
    assert main(["run", "--method", "noop", "--task", "linear-gaussian", "--task-arg", "trainer=sgd",
                 "--n-models", "2", "--out", str(tmp_path)]) == 0


def test_diverging_training_is_a_clear_error(tmp_path, capsys):
    from tasks.linear_gaussian import LinearGaussian
    assert LinearGaussian(trainer="sgd").train_lr() < 0.05  # capped below the default 0.1 for d=400, batch 10
    code = main(["run", "--method", "noop", "--task", "digits", "--task-arg", "lr=1e5", "--task-arg", "epochs=1",
                 "--task-arg", "width=8", "--out", str(tmp_path)])
    assert code == 3
    assert "diverged" in capsys.readouterr().err and not list(tmp_path.rglob("*.json"))


def test_module_entry_point_exit_code():
    proc = subprocess.run([sys.executable, "-m", "bench", "run", "--method", "nope", "--task", "linear-gaussian"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "unknown method 'nope'" in proc.stderr
