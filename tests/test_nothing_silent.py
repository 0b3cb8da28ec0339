"""The hostile battery of issues 16/17, kept as tests: every bad input is exit 2 with a sentence naming the
parameter, the value and the fix; a broken method or a diverged model is exit 3; nothing half-written."""
from __future__ import annotations

import errno
import json
import os
import time

import pytest

from bench.cli import main

TINY = ["--task", "linear-gaussian", "--task-arg", "n=30", "--task-arg", "d=20", "--task-arg", "n_val=10"]
DIGITS = ["--task", "digits", "--task-arg", "width=8", "--task-arg", "epochs=1"]


def _strict(path):
    def refuse(name):
        raise AssertionError(f"{path} holds the non-JSON literal {name}")
    return json.loads(path.read_text(), parse_constant=refuse)


def _run(capsys, tmp_path, *args, out=None):
    code = main(["run", *args, "--out", str(out if out is not None else tmp_path / "out"),
                 "--cache-dir", str(tmp_path / "cache")])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("args,message", [
    (["--method", "gdga", *TINY, "--method-arg", "momentum=-1"], "'momentum' must be in [0, 1), got -1.0; give e.g. momentum=0.0"),
    (["--method", "gdga", *TINY, "--method-arg", "batch_size=0"], "'batch_size' must be in [1, 10000000], got 0"),
    (["--method", "gdga", *TINY, "--method-arg", "batch_size=-1"], "'batch_size' must be in [1, 10000000], got -1"),
    (["--method", "gdga", *TINY, "--method-arg", "batch_size=-5"], "'batch_size' must be in [1, 10000000], got -5"),
    (["--method", "gdga", *TINY, "--method-arg", "steps=-5"], "'steps' must be in [0, 100000], got -5; give e.g. steps=100"),
    (["--method", "gdga", *TINY, "--method-arg", f"steps={10**12}"], f"'steps' must be in [0, 100000], got {10**12}"),
    (["--method", "gdga", *TINY, "--method-arg", "forget_weight=nan"], "'forget_weight' must be a finite number >= 0, got nan"),
    (["--method", "gdga", *TINY, "--method-arg", "steps=\uff11\uff10"], "'steps' expects int, got '\uff11\uff10'"),
    (["--method", "gdga", *TINY, "--method-arg", "steps=1_0"], "'steps' expects int, got '1_0'"),
    (["--method", "gdga", *TINY, "--task-arg", "noise=nan"], "task 'linear-gaussian' parameter 'noise' must be a finite number"),
    (["--method", "noop", "--task", "digits", "--task-arg", "epochs=0"], "'epochs' must be in [1, 10000], got 0"),
    (["--method", "noop", "--task", "digits", "--task-arg", "batch_size=0"], "'batch_size' must be in [1, 10000000], got 0"),
    (["--method", "noop", "--task", "digits", "--task-arg", "width=0"], "'width' must be in [2, 4096], got 0"),
    (["--method", "noop", *TINY, "--seed", "-1"], "--seed must be in [0, 4294967295], got -1"),
    (["--method", "noop", *TINY, "--forget-ids", "1_0"], "ASCII digits 0-9, got '1_0'"),
    (["--method", "noop", *TINY, "--forget-ids", "\u0661,\u0662"], "ASCII digits 0-9, got '\u0661'"),
    (["--method", "noop", *TINY, "--forget-ids", "1,2", "--forget-size", "2"], "--forget-ids and --forget-size were both given"),
    (["--method", "noop", "--task", "digits", "--task-arg", "selector=skewed", "--task-arg", "skew_fraction=0",
      "--forget-size", "1300"], "the skewed selector cannot draw a forget set of 1300"),
])
def test_bad_values_exit_2_naming_parameter_value_and_fix(tmp_path, capsys, args, message):
    code, err = _run(capsys, tmp_path, *args)
    assert code == 2, err
    assert message in err
    assert not list(tmp_path.rglob("*.json"))
    assert "Traceback" not in err


def test_unreachable_scheduler_fails_fast(tmp_path, capsys):
    start = time.perf_counter()
    code, err = _run(capsys, tmp_path, "--method", "noop", *TINY, "--backend", "dask", "--scheduler", "tcp://127.0.0.1:9")
    assert code == 2 and "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in err
    assert time.perf_counter() - start < 10


# ------------------------------------------------------------------------------------------------- plugins

def _plugin(tmp_path, name, body):
    path = tmp_path / f"{name}.py"
    path.write_text(body)
    return str(path)


METHOD_TEMPLATE = '''
from dataclasses import dataclass
from torch import nn
from bench import Method, register_method
from bench.bounds import Steps
from bench.optim import clone

@register_method
@dataclass(kw_only=True)
class Plugin(Method):
    """A plugin method."""
    name = "{name}"
    steps: Steps = 0

    def unlearn(self, model, ctx):
{body}
'''


def test_plugin_with_a_syntax_error_exits_2(tmp_path, capsys):
    plugin = _plugin(tmp_path, "broken_syntax", "def oops(:\n    pass\n")
    assert main(["--plugin", plugin, "list"]) == 2
    err = capsys.readouterr().err
    assert "broken_syntax.py has a syntax error at line 1" in err and "Traceback" not in err


def test_plugin_that_raises_on_import_exits_2(tmp_path, capsys):
    plugin = _plugin(tmp_path, "raises_on_import", "x = 1\nraise RuntimeError('boom')\n")
    assert main(["--plugin", plugin, "list"]) == 2
    err = capsys.readouterr().err
    assert "raises_on_import.py failed to import (line 2): RuntimeError: boom" in err


@pytest.mark.parametrize("name,body,message", [
    ("plugin-raises", "        return 1 / 0", "raised ZeroDivisionError: division by zero while unlearning model 0"),
    ("plugin-none", "        pass", "returned None for model 0"),
    ("plugin-arch", "        return nn.Linear(3, 1, bias=False).double()", "returned a model of another architecture"),
    ("plugin-same", "        return model", "returned its input model"),
    ("plugin-inf", "        out = clone(model)\n        out.weight.data.fill_(1e308)\n        return out",
     "diverged on model 0 (after step 0): its outputs are not finite"),
])
def test_broken_method_exits_3_naming_it(tmp_path, capsys, name, body, message):
    plugin = _plugin(tmp_path, name.replace("-", "_"), METHOD_TEMPLATE.format(name=name, body=body))
    code = main(["--plugin", plugin, "run", "--method", name, *TINY, "--out", str(tmp_path / "out"),
                 "--cache-dir", str(tmp_path / "cache")])
    err = capsys.readouterr().err
    assert code == 3, err
    assert message in err and "Traceback" not in err
    if "diverged" not in message:
        assert f"method '{name}'" in err
    assert not list((tmp_path / "out").rglob("*.json"))


def test_a_name_that_is_a_path_is_refused(tmp_path, capsys):
    plugin = _plugin(tmp_path, "escaping", METHOD_TEMPLATE.format(name="../../escaped", body="        return clone(model)"))
    code = main(["--plugin", plugin, "run", "--method", "../../escaped", *TINY, "--out", str(tmp_path / "a" / "b")])
    assert code == 2
    assert "is not a slug" in capsys.readouterr().err
    assert not list(tmp_path.rglob("*.json"))


def test_record_paths_stay_inside_out(tmp_path):
    from bench.cli import result_path
    from bench.errors import BenchError
    record = {"method": {"name": "../x"}, "task": {"name": "t"}, "forget_ids": [1], "n_models": 1,
              "protocol": "independent", "seeds": {"base": 0}}
    with pytest.raises(BenchError, match="names must be slugs"):
        result_path(str(tmp_path), record)


# ------------------------------------------------------------------------------------------- paths, cache

def test_out_that_is_a_file_or_empty_exits_2(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    code, err = _run(capsys, tmp_path, "--method", "noop", *TINY, out=afile)
    assert code == 2 and "--out" in err and "is a file, not a folder" in err
    assert afile.read_text() == "keep me"
    code = main(["run", "--method", "noop", *TINY, "--out", "", "--cache-dir", str(tmp_path / "cache")])
    assert code == 2 and "--out is empty" in capsys.readouterr().err


def test_read_only_out_exits_2_before_training(tmp_path, capsys, monkeypatch):
    import tempfile

    import bench.preflight as preflight
    locked = tmp_path / "locked"
    locked.mkdir()
    real = tempfile.mkstemp

    def mkstemp(*args, dir=None, **kwargs):  # noqa: A002 - tempfile's own keyword
        if dir is not None and os.path.samefile(dir, locked):
            raise PermissionError(errno.EACCES, "Permission denied")
        return real(*args, dir=dir, **kwargs)
    monkeypatch.setattr(preflight.tempfile, "mkstemp", mkstemp)
    trained = []
    monkeypatch.setattr("bench.runner.run", lambda *a, **k: trained.append(1))
    code, err = _run(capsys, tmp_path, "--method", "noop", *TINY, out=locked)
    assert code == 2 and "is not writable (Permission denied)" in err and "nothing was trained" in err
    assert not trained


@pytest.mark.parametrize("how", ["env", "flag"])
def test_cache_that_is_a_file_exits_2_before_training(tmp_path, capsys, monkeypatch, how):
    cache_file = tmp_path / "cache-file"
    cache_file.write_text("")
    args = ["run", "--method", "noop", *TINY, "--out", str(tmp_path / "out")]
    if how == "env":
        monkeypatch.setenv("BENCH_CACHE", str(cache_file))
    else:
        args += ["--cache-dir", str(cache_file)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert ("$BENCH_CACHE" if how == "env" else "--cache-dir") in err and "is a file, not a folder" in err
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").rglob("*.json"))


def test_a_late_record_write_failure_says_what_was_kept(tmp_path, capsys, monkeypatch):
    def full(*_a, **_k):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr("bench.cli.write_json_atomic", full)
    code = main(["run", "--method", "noop", *TINY, "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "c")])
    captured = capsys.readouterr()
    assert code == 2
    assert "could not write the result record" in captured.err and "No space left on device" in captured.err
    assert "kept in the model cache" in captured.err and "rerunning the same command" in captured.err
    assert "forget" in captured.out  # the table was printed before the write failed
    assert not list((tmp_path / "out").rglob("*.json"))


def test_a_failing_cache_write_loses_nothing(tmp_path, capsys, monkeypatch):
    def too_big(*_a, **_k):
        raise OSError(errno.EFBIG, "File too large")
    monkeypatch.setattr("oracles.cache.write_atomic", too_big)
    code = main(["run", "--method", "noop", *TINY, "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "c")])
    err = capsys.readouterr().err
    # work units read their models and statistics back from the cache, so a run cannot go on without it:
    # it stops with a sentence saying what failed, that nothing cached is lost, and how to resume
    assert code == 2
    assert "cache: could not save" in err and "File too large" in err
    assert "could not be stored in the cache" in err and "rerun the same command" in err
    assert not list((tmp_path / "out").rglob("*.json"))


# ---------------------------------------------------------------------------------------------- divergence

def test_exploded_but_finite_model_exits_3(tmp_path, capsys):
    code, err = _run(capsys, tmp_path, "--method", "finetune", *TINY, "--method-arg", "lr=0.9",
                     "--method-arg", "steps=60")
    assert code == 3, err
    assert "finetune diverged at iteration" in err and "no result was written" in err
    assert not list((tmp_path / "out").rglob("*.json"))


def test_collapsed_classifier_exits_3_naming_model_and_step(tmp_path, capsys):
    code, err = _run(capsys, tmp_path, "--method", "ga", *DIGITS, "--method-arg", "lr=5",
                     "--method-arg", "steps=3")
    assert code == 3, err
    assert "ga diverged" in err and "model 0" in err


def test_records_are_strict_json(tmp_path, capsys):
    code, _ = _run(capsys, tmp_path, "--method", "noop", *TINY, "--n-models", "2")
    assert code == 0
    [record] = (tmp_path / "out").rglob("*.json")
    prov = _strict(record)["provenance"]
    assert prov["command"] and {"torchvision", "transformers", "tokenizers"} <= set(prov["packages"])


def test_non_finite_numbers_become_null_with_a_reason():
    from bench.strict_json import strict_record
    record = strict_record({"a": float("nan"), "b": [1.0, float("inf")], "c": {"d": 2}})
    assert record["a"] is None and record["b"] == [1.0, None] and record["c"] == {"d": 2}
    assert record["nulls"]["a"].startswith("NaN") and record["nulls"]["b[1]"].startswith("+Infinity")
    json.dumps(record, allow_nan=False)


def test_a_cached_model_of_the_wrong_shape_is_discarded_not_fatal():
    import torch
    from torch import nn

    from bench.method_guard import load_cached_model
    logs, discarded = [], []
    state = {"weight": torch.zeros(3, 5)}
    model = load_cached_model(state, lambda: nn.Linear(4, 3, bias=False), lambda: discarded.append(1),
                              logs.append, "gdga model 0")
    assert model is None and discarded == [1]
    assert "does not fit the model" in logs[0] and "recomputing" in logs[0]
    fitting = load_cached_model({"weight": torch.ones(3, 4)}, lambda: nn.Linear(4, 3, bias=False),
                                lambda: discarded.append(2), logs.append, "gdga model 0")
    assert torch.equal(fitting.weight, torch.ones(3, 4)) and discarded == [1]


def test_runner_and_direct_construction_use_the_same_bounds():
    from bench.errors import ParamError
    from bench.registry import METHODS
    from bench.runner import RunSpec, run
    from tasks.digits import Digits
    with pytest.raises(ParamError, match="'width' must be in \\[2, 4096\\], got 0"):
        Digits(width=0)
    method = METHODS.get("gdga")()
    method.batch_size = -1  # set after construction: the runner validates again before any training
    with pytest.raises(ParamError, match="'batch_size' must be in \\[1, 10000000\\], got -1"):
        run(RunSpec(method=method, task=Digits(width=8, epochs=1)))


@pytest.mark.parametrize("task_args,n,expected", [
    ([], 4, ["trainer=exact"]),
    (["--task-arg", "trainer=sgd"], 3, ["N=3 models per ensemble"]),
    (["--task-arg", "trainer=sgd"], 4, []),
])
def test_degenerate_scores_carry_warnings(tmp_path, capsys, task_args, n, expected):
    code = main(["run", "--method", "noop", *TINY, *task_args, "--n-models", str(n), "--out", str(tmp_path / "o"),
                 "--cache-dir", str(tmp_path / "c")])
    out = capsys.readouterr().out
    assert code == 0
    [path] = (tmp_path / "o").rglob("*.json")
    warnings = _strict(path)["warnings"]
    assert len(warnings) == len(expected) and all(e in w for e, w in zip(expected, warnings))
    assert out.count("WARNING ") == len(expected)


def test_thread_count_is_chosen_and_recorded(tmp_path, capsys):
    import torch
    before = torch.get_num_threads()
    try:
        code, err = _run(capsys, tmp_path, "--method", "noop", *TINY, "--threads", "0")
        assert code == 2 and "--threads must be in [1, 1024], got 0" in err
        assert main(["run", "--method", "noop", *TINY, "--device", "cpu", "--out", str(tmp_path / "o"),
                     "--no-cache"]) == 0
        [path] = (tmp_path / "o").rglob("*.json")
        assert _strict(path)["provenance"]["hardware"]["cpu_threads"] == 1  # the CPU default for tiny models
    finally:
        torch.set_num_threads(before)


def test_the_table_ends_with_a_verdict(tmp_path, capsys):
    code = main(["run", "--method", "noop", *TINY, "--task-arg", "trainer=sgd", "--n-models", "4",
                 "--out", str(tmp_path / "o"), "--cache-dir", str(tmp_path / "c")])
    out = capsys.readouterr().out
    assert code == 0
    [line] = [l for l in out.splitlines() if l.startswith("VERDICT")]
    assert "vs" in line and "noise floor" in line and "x retraining one model" in line


def test_a_file_size_limit_fails_the_record_write_cleanly(tmp_path):
    """A real RLIMIT_FSIZE (Python ignores SIGXFSZ, so writes past it fail with EFBIG)."""
    import resource
    import subprocess
    import sys

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))  # models fit (~250 bytes), the record does not
    # cwd outside the repository too; provenance reads git status without taking the index lock
    proc = subprocess.run([sys.executable, "-m", "bench", "run", "--method", "noop", *TINY, "--out",
                           str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache")],
                          capture_output=True, text=True, preexec_fn=limit, timeout=300, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(__import__("pathlib").Path(__file__).parents[1])})
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "could not write the result record" in proc.stderr and "File too large" in proc.stderr
    assert "kept in the model cache" in proc.stderr and "Traceback" not in proc.stderr
    assert not list((tmp_path / "out").rglob("*.json")) and not list(tmp_path.rglob("*.tmp"))
    assert list((tmp_path / "cache").rglob("*.safetensors"))  # the trained models were kept
