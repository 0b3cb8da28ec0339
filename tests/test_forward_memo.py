"""Statistics of one split take one forward pass, and the arrays are bit-identical to separate passes."""
import contextlib

import numpy as np
import pytest
import torch
from torch import nn

import bench.statistics as statistics
from bench.forward_memo import one_forward_per_input
from bench.task import TaskData
from tasks.digits import Digits
from tasks.linear_gaussian import LinearGaussian


def _real_forwards(model: nn.Module, monkeypatch) -> list[int]:
    """Counts runs of the model's first leaf layer's own forward: it only runs when the model really runs."""
    calls = [0]
    first = next(m for m in model.modules() if not list(m.children()))
    plain = type(first).forward

    def counted(self, *args, **kwargs):
        calls[0] += self is first
        return plain(self, *args, **kwargs)
    monkeypatch.setattr(type(first), "forward", counted)
    return calls


def _splits(task, seed: int = 0):
    train, val = task.load()
    data = TaskData(train, val, np.arange(6))
    points = statistics.choose_points(data, seed, max_points=200)
    return points.splits(data)


@pytest.mark.parametrize("task", [Digits(width=8, epochs=1), Digits(arch="cnn", width=8, epochs=1),
                                  LinearGaussian()], ids=["digits-mlp", "digits-cnn", "linear"])
def test_one_forward_per_split_and_identical_arrays(task, monkeypatch):
    torch.manual_seed(0)
    model = task.make_model(3).eval()
    splits = _splits(task)
    calls = _real_forwards(model, monkeypatch)
    fused = statistics.compute_stats(task, model, splits)
    assert calls[0] == len(splits)  # forget, retain, val: one pass each
    monkeypatch.setattr(statistics, "one_forward_per_input", lambda m: contextlib.nullcontext())
    calls[0] = 0
    separate = statistics.compute_stats(task, model, splits)
    assert calls[0] > 2 * len(splits)  # without it every statistic ran the model again
    assert fused.utility == separate.utility
    for split, stats in separate.arrays.items():
        assert stats.keys() == fused.arrays[split].keys()
        for name, array in stats.items():
            assert array.dtype == fused.arrays[split][name].dtype
            assert array.tobytes() == fused.arrays[split][name].tobytes(), (split, name)


def test_only_equal_inputs_in_eval_mode_reuse_outputs():
    model = nn.Linear(3, 2).eval()
    x = torch.randn(5, 3)
    with torch.no_grad(), one_forward_per_input(model) as counts:
        a = model(x)
        a.mul_(0)  # a caller changing its copy does not change what the next caller gets
        b = model(x.clone())
        c = model(x + 1)
    assert counts == {"computed": 2, "reused": 1}
    assert torch.equal(b, nn.functional.linear(x, model.weight, model.bias))
    assert torch.equal(c, nn.functional.linear(x + 1, model.weight, model.bias))
    assert "forward" not in model.__dict__  # restored
    with one_forward_per_input(model) as counts:
        model(x), model(x)
    assert counts == {"computed": 2, "reused": 0}  # outputs that carry gradients are never shared
    model.train()
    with torch.no_grad(), one_forward_per_input(model) as counts:
        model(x), model(x)
    assert counts == {"computed": 0, "reused": 0}


def test_non_tensor_outputs_pass_through():
    class Dicty(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 2)

        def forward(self, x, scale=1.0):
            return {"logits": self.lin(x) * scale}

    model = Dicty().eval()
    x = torch.ones(1, 2)
    with torch.no_grad(), one_forward_per_input(model) as counts:
        first, second = model(x), model(x)
        scaled = model(x, scale=2.0)
    assert counts == {"computed": 2, "reused": 0}
    assert torch.equal(first["logits"], second["logits"]) and torch.equal(scaled["logits"], 2 * first["logits"])
