"""Runs with N models on digits: protocols, caching across CLI runs, prebuilt oracles, and devices."""
import json

import pytest
import torch

from bench.cli import main
from bench.registry import METHODS
from bench.runner import RunSpec, run
from bench.scoring import margins
from tasks.digits import Digits

TINY = Digits(width=16, epochs=2, forget_size=10)
TINY_ARGS = ["--task", "digits", "--task-arg", "width=16", "--task-arg", "epochs=2", "--forget-size", "10"]


def test_independent_protocol_uses_one_original_per_unlearned_model():
    record = run(RunSpec(method=METHODS.get("noop")(), task=TINY, n_models=3))
    assert len(set(record["seeds"]["original"])) == 3
    assert record["protocol"] == "independent"


def test_challenge_protocol_unlearns_every_model_from_one_original():
    captured = {}

    def observe(i, original, oracle):
        captured[i] = original
        return lambda step, model: None

    record = run(RunSpec(method=METHODS.get("finetune")(steps=2), task=TINY, n_models=3, protocol="challenge"),
                 observe=observe)
    assert len(record["seeds"]["original"]) == 1
    assert captured[0] is captured[1] is captured[2]
    assert record["protocol"] == "challenge"


def test_second_cli_run_is_served_from_the_cache(tmp_path, capsys):
    args = ["run", "--method", "gdga", *TINY_ARGS, "--n-models", "3", "--method-arg", "steps=5",
            "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "out")]
    assert main(args) == 0
    assert main(args) == 0
    [path] = (tmp_path / "out").rglob("*.json")
    record = json.loads(path.read_text())
    assert record["cache"] == {"originals": 3, "oracles": 3, "floor": 3, "unlearned": 3}
    out = capsys.readouterr().out
    assert "KLoM" in out and "floor" in out and "Challenge score" in out and "retraining" in out


def test_prebuilt_oracles_are_used_by_run(tmp_path, capsys):
    cache = ["--cache-dir", str(tmp_path / "cache")]
    assert main(["oracles", *TINY_ARGS, "--n-models", "3", *cache]) == 0
    assert "oracles: 3 models (0 from cache)" in capsys.readouterr().out
    assert main(["run", "--method", "noop", *TINY_ARGS, "--n-models", "3", *cache,
                 "--out", str(tmp_path / "out")]) == 0
    [path] = (tmp_path / "out").rglob("*.json")
    assert json.loads(path.read_text())["cache"]["oracles"] == 3


def test_no_cache_flag_writes_no_models(tmp_path):
    assert main(["run", "--method", "noop", *TINY_ARGS, "--n-models", "2", "--no-cache",
                 "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "out")]) == 0
    assert not (tmp_path / "cache").exists()


def test_cuda_without_a_gpu_is_a_clear_error(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert main(["run", "--method", "noop", *TINY_ARGS, "--device", "cuda", "--out", str(tmp_path)]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err


def test_margins_shape():
    train, _ = TINY.load()
    models = [TINY.make_model(s) for s in range(3)]
    assert margins(TINY, models, train.subset([0, 1, 2, 3])).shape == (3, 4)
