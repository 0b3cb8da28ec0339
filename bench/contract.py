"""The contract every registered method must honour, as a reusable check (like sklearn's check_estimator).

Third-party authors can run ``check_method(MyMethod)`` in their own tests.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from bench.context import UnlearnContext
from bench.errors import ParamError
from bench.method import Method
from bench.seeding import derive_seed
from bench.task import Task, TaskData

CONTRACT_BUDGET = 3


def tiny_task(method_cls: type[Method] | None = None) -> Task:
    """The linear toy, or a tiny language task for methods that need gradients recorded in training."""
    if method_cls is not None and "classification" in method_cls.requires:
        from tasks.digits import Digits
        return Digits(width=8, epochs=1, forget_size=8)
    if method_cls is not None and "recorded_gradients" in method_cls.requires:
        from tasks.dave import DaveTiny
        return DaveTiny(n_layer=2, n_embd=32, epochs=2, vocab_size=300)
    from tasks.linear_gaussian import LinearGaussian
    return LinearGaussian(n=24, d=12, n_val=8, forget_size=4, trainer="gd", train_steps=50, init_scale=1.0)


def tiny_vision_task() -> Task:
    """A vision probe: random uint8 images through a narrow ResNet-9, so a method that skips the task's input
    path (normalisation inside ``outputs``/``model_inputs``) fails here, not on CIFAR-10."""
    from dataclasses import dataclass

    from bench.task import Split
    from bench.vision import VisionTask, resnet9

    @dataclass(kw_only=True)
    class ProbeImages(VisionTask):
        name = "probe-images"
        version = "1"
        num_classes = 3
        default_batch_size = 8
        full_width = 4
        forget_size: int = 4
        epochs: int = 1
        batch_size: int = 8
        lr: float = 0.05
        label_smoothing: float = 0.0
        width: int = 4

        def load(self) -> tuple[Split, Split]:
            gen = torch.Generator().manual_seed(0)
            x = torch.randint(0, 256, (40, 3, 32, 32), generator=gen, dtype=torch.uint8)
            y = torch.randint(0, self.num_classes, (40,), generator=gen)
            return Split(x[:32], y[:32]), Split(x[32:], y[32:])

        def make_model(self, seed: int) -> nn.Module:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                return resnet9(self.num_classes, self.width)

    return ProbeImages()


def probe_tasks(method_cls: type[Method]) -> list[Task]:
    """Every task a method is checked on: the tiny task, plus the vision probe for classifier methods."""
    tasks = [tiny_task(method_cls)]
    if "classification" in method_cls.requires:
        tasks.append(tiny_vision_task())
    return tasks


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _context(task: Task, data: TaskData, method: Method, seed: int, original: nn.Module) -> UnlearnContext:
    oracle_outputs, recorded, datamodels = None, None, None
    if "datamodels" in method.requires:
        from bench.executor import Executor
        from oracles.datamodels import build_datamodels
        datamodels = build_datamodels(task, n_models=24, alpha=0.5, seed=seed, device=torch.device("cpu"),
                                      store=None, executor=Executor(), progress=False)
    if "recorded_gradients" in method.requires:
        from bench.recording import totals_from_flat
        from oracles.ensemble import model_spec
        from oracles.recorded import record_gradients
        original_seed = derive_seed(seed, "original")
        flat = record_gradients(task, data.forget_idx, original_seed, original,
                                model_spec(task, np.array([], dtype=np.int64), original_seed),
                                torch.device("cpu"), None).flat

        def lookup(kind: str) -> dict[str, torch.Tensor]:
            return totals_from_flat(flat, kind)
        recorded = lookup
    if "oracle_outputs" in method.requires:
        oracle_seed = derive_seed(seed, "target")
        oracle = task.train(task.make_model(oracle_seed), data.retain, oracle_seed).eval()

        def predict(x: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return task.outputs(oracle, x)
        oracle_outputs = predict
    return UnlearnContext(task=task, data=data, seed=derive_seed(seed, "unlearn"), max_steps=CONTRACT_BUDGET,
                          oracle_outputs=oracle_outputs, recorded_gradients=recorded, datamodels=datamodels)


def check_method(method_cls: type[Method], task: Task | None = None, seed: int = 0) -> None:
    """Raise AssertionError naming the first broken rule of the method contract (on ``task``, or on every
    probe task: the tiny task and, for classifier methods, a vision task with uint8 inputs)."""
    if task is None:
        for probe in probe_tasks(method_cls):
            check_method(method_cls, probe, seed)
        return
    name = method_cls.__name__
    method_cls.check_signature()
    method = method_cls()  # default-constructible
    params = method.get_params()
    assert "steps" in params, f"{name} must take a 'steps' budget"
    assert method_cls(**params).get_params() == params, f"{name}: get_params() does not round-trip"
    for spec in method_cls.param_specs():
        assert not spec.numeric or spec.bounds is not None, (
            f"{name}: numeric parameter '{spec.name}' declares no bounds; annotate it, e.g. "
            f"Annotated[int, Range(0, 1000)] or an alias from bench.bounds (Steps, BatchSize, LearningRate)")
    steps_spec = next(s for s in method_cls.param_specs() if s.name == "steps")
    try:
        method_cls(**{**params, "steps": -1})
    except ParamError:
        pass
    else:
        raise AssertionError(f"{name}: steps=-1 was accepted; declare steps with bench.bounds.Steps "
                             f"(its bounds: {steps_spec.bounds})")

    overrides = {"steps": CONTRACT_BUDGET}
    if "batch_size" in params:
        overrides["batch_size"] = 4  # exercise the method's own randomness in the determinism check
    budgeted = method_cls(**{**params, **overrides})

    train, val = task.load()
    forget_idx = task.select_forget(train, np.random.default_rng(seed))
    data = TaskData(train, val, forget_idx)
    data_before = (train.x.clone(), train.y.clone(), forget_idx.copy())
    original_seed = derive_seed(seed, "original")
    original = task.train(task.make_model(original_seed), train, original_seed).eval()
    before = _snapshot(original)

    ctx = _context(task, data, budgeted, seed, original)
    out = budgeted.unlearn(original, ctx)
    assert isinstance(out, nn.Module), f"{name}.unlearn must return an nn.Module, got {type(out).__name__}"
    assert out is not original, f"{name}.unlearn must return a new model, not its input"
    assert _same(_snapshot(original), before), f"{name}.unlearn mutated the input model"
    assert torch.equal(train.x, data_before[0]) and torch.equal(train.y, data_before[1]) and \
        np.array_equal(forget_idx, data_before[2]), f"{name}.unlearn mutated the task data"
    assert ctx.steps_used <= CONTRACT_BUDGET, f"{name} took {ctx.steps_used} steps with budget {CONTRACT_BUDGET}"
    again = budgeted.unlearn(original, _context(task, data, budgeted, seed, original))
    if method_cls.output == "predictions":  # a wrapper that predicts outputs: check outputs, not weights
        with torch.no_grad():
            got, ref = task.outputs(out, train.x), task.outputs(original, train.x)
            assert got.shape == ref.shape, f"{name} changed the output shape"
            assert torch.equal(got, task.outputs(again, train.x)), f"{name} is not deterministic under a fixed seed"
        return
    assert type(out) is type(original), f"{name} changed the architecture ({type(out).__name__})"
    shapes_in = {k: v.shape for k, v in before.items()}
    shapes_out = {k: v.shape for k, v in out.state_dict().items()}
    assert shapes_in == shapes_out, f"{name} changed the state-dict keys or shapes"
    assert _same(_snapshot(again), _snapshot(out)), f"{name} is not deterministic under a fixed seed"
