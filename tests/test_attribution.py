"""Target-sampled datamodels, their size estimate, and TRAK attribution through traker."""
import json
import sys

import numpy as np
import pytest
import torch

from bench.cli import main
from bench.errors import BenchError
from bench.executor import Executor
from oracles.datamodels import build_datamodels, fit_bytes, sample_targets
from tasks.linear_gaussian import LinearGaussian, ridge_solution

CPU = torch.device("cpu")


def test_target_sampling_equals_the_full_datamodel_on_the_sampled_targets():
    task = LinearGaussian(n=80, d=6, noise=0.1, n_val=20)
    full = build_datamodels(task, n_models=60, alpha=0.5, seed=0, device=CPU, store=None, executor=Executor(),
                            progress=False)
    targets = sample_targets(80, 20, np.array([3, 7, 11]), retain_count=10, val_count=5, seed=0)
    assert {3, 7, 11} <= set(targets.tolist()) and len(targets) == 18 and (targets >= 80).sum() == 5
    part = build_datamodels(task, n_models=60, alpha=0.5, seed=0, device=CPU, store=None, executor=Executor(),
                            targets=targets, progress=False)
    assert part.weights.shape == (80, 18)
    assert torch.equal(part.weights, full.weights[:, torch.as_tensor(targets)])
    mask = np.random.default_rng(0).random(80) < 0.5
    assert torch.equal(part.predict(mask), full.predict(mask)[torch.as_tensor(targets)])
    forget = np.array([3, 7, 11])
    assert torch.equal(part.removal_effect(forget), full.removal_effect(forget)[torch.as_tensor(targets)])
    assert torch.equal(part.rows(targets[:3]), torch.arange(3))
    with pytest.raises(KeyError):
        part.rows(np.setdiff1d(np.arange(80), targets)[:1])


def test_size_estimate_matches_the_stored_weights_and_refuses_only_what_cannot_fit():
    cifar = fit_bytes(n_models=1000, n_train=50_000, n_targets=4000, out_dim=10)
    assert cifar["storage"] == "float16" and cifar["weights"] == 2 * 50_000 * 4000 * 10  # 4 GB, not 8
    assert fit_bytes(100, 200, 250, 1)["storage"] == "float32"
    task = LinearGaussian(n=60, d=5, n_val=10)
    lines = []
    dm = build_datamodels(task, n_models=20, alpha=0.5, seed=0, device=CPU, store=None, executor=Executor(),
                          progress=False, log=lines.append)
    need = fit_bytes(20, 60, 70, 1)
    assert dm.weights.element_size() * dm.weights.numel() == need["weights"]
    assert f"weights {need['weights'] / 1e9:.3g} GB as float32" in lines[0]
    with pytest.raises(BenchError, match=r"need about .* GB .* only 1e-06 GB are available; sample fewer targets"):
        build_datamodels(task, n_models=20, alpha=0.5, seed=0, device=CPU, store=None, executor=Executor(),
                         max_bytes=1000, progress=False)


def test_trak_on_the_linear_task_matches_the_exact_leave_one_out_effect():
    """For ridge regression TRAK is phi_t (X^T X)^-1 x_i r_i: the exact leave-one-out effect up to the
    leverage factor 1/(1 - h_ii) (h about d/n = 0.05). Measured over all 200 x 250 (train, target) pairs:
    correlation 0.9996, relative error 0.067. A wrong implementation fails: without the kernel inverse
    (TracIn) the correlation is 0.970, without the Q term 0.03, with the library's default rescaling of
    (X^T X)^-1 the relative error is far above 0.15."""
    from oracles.trak import build_trak

    task = LinearGaussian(n=200, d=10, noise=0.05, n_val=50)
    dm = build_trak(task, n_checkpoints=1, proj_dim=512, seed=0, device=CPU, store=None, executor=Executor(),
                    lds_models=12, progress=False)
    train, val = task.load()
    inputs = torch.cat([train.x, val.x])
    full = inputs @ ridge_solution(train.x, train.y, task.ridge)
    exact = np.stack([(full - inputs @ ridge_solution(train.x[keep], train.y[keep], task.ridge)).numpy()
                      for keep in (np.delete(np.arange(200), i) for i in range(200))])
    scores = dm.weights.numpy()
    assert np.corrcoef(exact.ravel(), scores.ravel())[0, 1] > 0.99
    assert np.linalg.norm(scores - exact) / np.linalg.norm(exact) < 0.15
    assert dm.kind == "trak" and dm.output == "margin" and dm.cost["projection_dim"] == 10  # capped at d
    assert dm.cost["gradient_evaluations"] == 200 + 200 + 250  # closed-form fit + train and target gradients
    assert dm.lds["mean"] > 0.8 and dm.lds["held_out_models"] == 12


def _run_json(tmp_path, args):
    out = tmp_path / "out"
    assert main([*args, "--out", str(out), "--cache-dir", str(tmp_path / "cache")]) == 0
    [path] = out.rglob("*.json")
    return json.loads(path.read_text())


def test_dm_matching_with_trak_runs_on_digits_and_records_kind_cost_and_lds(tmp_path):
    record = _run_json(tmp_path, [
        "run", "--method", "dm-matching", "--task", "digits", "--task-arg", "width=8", "--task-arg", "epochs=1",
        "--forget-size", "10", "--n-models", "2", "--method-arg", "attribution=trak",
        "--method-arg", "trak_checkpoints=2", "--method-arg", "trak_proj_dim=64", "--method-arg", "trak_lds_models=3",
        "--method-arg", "steps=3", "--method-arg", "targets=sampled", "--method-arg", "retain_sample=50",
        "--method-arg", "val_targets=20"])
    dm = record["datamodels"]
    assert dm["kind"] == "trak" and dm["targets"] == 10 + 50 + 20
    assert dm["cost"]["checkpoints"] == 2 and dm["cost"]["projection_dim"] == 64
    assert dm["cost"]["gradient_evaluations"] > 0 and dm["cost"]["wall_seconds"] > 0
    assert -1 <= dm["lds"]["mean"] <= 1 and dm["lds"]["held_out_models"] == 3
    assert np.isfinite(record["metrics"]["klom"]["forget"]["unlearned"]["mean"])


def test_dm_matching_and_dm_direct_with_trak_run_on_tiny_cifar(tmp_path):
    """The real on-disk CIFAR format, a width-4 ResNet-9: TRAK datamodels for sampled targets, then both
    methods unlearn one original (the full run's scoring is covered on digits above)."""
    from bench.context import UnlearnContext
    from bench.registry import METHODS
    from bench.task import TaskData
    from oracles.attribution import datamodels_for
    from tasks.vision.cifar10 import Cifar10
    from test_vision import write_cifar

    write_cifar(tmp_path, per_batch=16)
    task = Cifar10(data_root=str(tmp_path), verify=False, width=4, epochs=1, batch_size=32)
    train, val = task.load()
    data = TaskData(train, val, np.arange(4))
    original = task.train(task.make_model(0), train, 0).eval()
    for name in ("dm-matching", "dm-direct"):
        method = METHODS.get(name)(attribution="trak", trak_checkpoints=1, trak_proj_dim=32, trak_lds_models=0,
                                   targets="sampled", val_targets=8, **({"steps": 2, "retain_sample": 20}
                                                                        if name == "dm-matching" else
                                                                        {"retain_targets": 20}))
        dm = datamodels_for(method, task, data, seed=0, device=CPU, store=None, executor=Executor(), progress=False)
        assert dm.kind == "trak" and len(dm.target_ids) == 4 + 20 + 8 and dm.weights.shape == (len(train), 32)
        unlearned = method.unlearn(original, UnlearnContext(task=task, data=data, seed=1, datamodels=dm))
        with torch.no_grad():
            before, after = task.margin(original, train.x[:4], train.y[:4]), task.margin(unlearned, train.x[:4],
                                                                                          train.y[:4])
        assert torch.isfinite(after).all() and not torch.equal(before, after)


def test_missing_traker_gives_an_install_hint(monkeypatch, capsys):
    from oracles.trak import import_traker

    monkeypatch.setitem(sys.modules, "trak", None)
    with pytest.raises(BenchError, match="pip install traker"):
        import_traker()
    assert main(["run", "--method", "dm-direct", "--task", "linear-gaussian", "--task-arg", "n=40",
                 "--n-models", "2", "--method-arg", "attribution=trak", "--no-cache"]) == 2
    assert "pip install traker" in capsys.readouterr().err
    assert main(["run", "--method", "dm-direct", "--task", "linear-gaussian", "--task-arg", "n=40",
                 "--n-models", "2", "--method-arg", "attribution=tracin", "--no-cache"]) == 2


def test_trak_leaves_its_checkpoints_untouched_and_scores_each_with_its_own_weights():
    """Regression: traker loads every checkpoint into one module; if that module is checkpoint 0 itself (or
    the state dicts alias it), checkpoint 0 is overwritten and its targets are scored with another model's
    weights (measured on digits: LDS fell from +0.07 with one checkpoint to -0.05 with five)."""
    from oracles.trak import trak_scores
    from tasks.digits import Digits

    task = Digits(width=8)
    train, _ = task.load()
    models = [task.make_model(seed).eval() for seed in (1, 2)]
    before = [{k: v.clone() for k, v in m.state_dict().items()} for m in models]
    x, y = train.x[:40], train.y[:40]
    two, _ = trak_scores(task, models, x, y, x[:5], y[:5], proj_dim=16, seed=0, device=CPU)
    for model, state in zip(models, before):
        assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    swapped, _ = trak_scores(task, models[::-1], x, y, x[:5], y[:5], proj_dim=16, seed=0, device=CPU)
    one, _ = trak_scores(task, models[:1], x, y, x[:5], y[:5], proj_dim=16, seed=0, device=CPU)
    assert not torch.allclose(two, one) and not torch.allclose(two, swapped)  # both checkpoints count


def test_cli_compare_writes_table_json_and_plot(tmp_path, capsys):
    args = ["datamodels", "--compare", "--task", "linear-gaussian", "--task-arg", "n=40", "--task-arg", "d=5",
            "--task-arg", "n_val=10", "--sizes", "20", "--checkpoints", "1", "--eval-models", "6",
            "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "reports")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "20 subset models" in out and "1 checkpoints" in out and "95% CI" in out
    rows = json.loads((tmp_path / "reports" / "lds_compare_linear-gaussian.json").read_text())["linear-gaussian"]
    assert [r["kind"] for r in rows] == ["datamodels", "trak"]
    assert rows[0]["gradient_evaluations"] == 20 * 20 and rows[1]["gradient_evaluations"] == 40 + 40 + 50
    assert all(r["lds"]["ci_low"] <= r["lds"]["mean"] <= r["lds"]["ci_high"] for r in rows)
    assert (tmp_path / "reports" / "lds_compare_linear-gaussian.png").read_bytes()[:4] == b"\x89PNG"
    assert main([*args[:-4], "--eval-models", "2"]) == 2
