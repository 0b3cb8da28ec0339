"""The contract every method must honour, as small named checks (in the spirit of scikit-learn's
``parametrize_with_checks``).

``method_checks(MyMethod)`` yields one ``Check`` per rule; each raises ``AssertionError`` naming the rule
it found broken. Run them as separate pytest cases::

    @pytest.mark.parametrize("check", method_checks(MyMethod), ids=str)
    def test_contract(check):
        check()

``check_method(MyMethod)`` runs them all and raises on the first failure. The method runs on the tiny
probe task its ``probe`` tag names (never guessed), through ``bench.enforce.unlearn_checked``, exactly as
the runner calls it.
"""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn

from bench.context import UnlearnContext
from bench.enforce import budget_of, data_fingerprint, state_hash, unlearn_checked
from bench.errors import BudgetExceededError, MethodFailedError, ParamError
from bench.method import Method
from bench.providers import PROVIDERS, inputs_of
from bench.seeding import derive_seed
from bench.task import Split, Task, TaskData

__all__ = ["CONTRACT_BUDGET", "PROBES", "Check", "check_method", "method_checks", "probe_task"]

CONTRACT_BUDGET = 3

#: probe tag -> (registered task name, tiny parameters): seconds on a CPU.
PROBES: dict[str, tuple[str, dict]] = {
    "linear": ("linear-gaussian", dict(n=24, d=12, n_val=8, forget_size=4, trainer="gd", train_steps=50,
                                       init_scale=1.0)),
    "digits": ("digits", dict(width=8, epochs=1, forget_size=8)),
    "dave-tiny": ("dave-tiny", dict(n_layer=2, n_embd=32, epochs=2, vocab_size=300)),
}


def probe_task(method_cls: type[Method]) -> Task:
    """The tiny task named by the method's ``probe`` tag."""
    from bench.registry import TASKS

    tag = getattr(method_cls, "probe", "linear")
    if tag not in PROBES:
        raise AssertionError(f"{method_cls.__name__}.probe = {tag!r} is not a probe task; "
                             f"choose one of {', '.join(PROBES)}")
    name, params = PROBES[tag]
    return TASKS.get(name)(**params)


def tiny_vision_task() -> Task:
    """A vision probe: random uint8 images through a narrow ResNet-9, so a method that skips the task's input
    path (normalisation inside ``outputs``/``model_inputs``) fails here, not on CIFAR-10. The probe lives with
    the vision tasks (``tasks.vision.probe``); the framework finds it by name."""
    from bench.catalog import PROBES

    return PROBES.get("vision")()


@dataclass(frozen=True)
class Check:
    """One rule of the contract for one method class; calling it raises AssertionError if broken."""

    rule: str
    method_cls: type[Method]
    run: Callable[[type[Method]], None]

    def __call__(self) -> None:
        self.run(self.method_cls)

    def __str__(self) -> str:
        return f"{getattr(self.method_cls, 'name', self.method_cls.__name__)}-{self.rule}"


# ------------------------------------------------------------------------------------------ the probe

@dataclass
class _Probe:
    task: Task
    data: TaskData
    original: nn.Module
    seed: int


def _probe(method_cls: type[Method], seed: int = 0) -> _Probe:
    """The probe task named by the method's tag, its data and one trained original."""
    return _probe_for_tag(getattr(method_cls, "probe", "linear"), method_cls, seed)


def _probe_for_tag(tag: str, method_cls: type[Method], seed: int) -> _Probe:
    if tag in _PROBE_CACHE:
        return _PROBE_CACHE[tag]
    task = probe_task(method_cls)
    train, val = task.load()
    forget_idx = task.select_forget(train, np.random.default_rng(seed))
    original_seed = derive_seed(seed, "original")
    original = task.train(task.make_model(original_seed), train, original_seed).eval()
    _PROBE_CACHE[tag] = _Probe(task, TaskData(train, val, forget_idx), original, seed)
    return _PROBE_CACHE[tag]


_PROBE_CACHE: dict[str, _Probe] = {}  # one original per probe task, shared by every method and rule


class _ProbePlan:
    """The part of a ``UnitPlan`` the providers read, for one method on a probe."""

    def __init__(self, probe: _Probe, method: Method) -> None:
        self.task, self.method, self.forget_idx, self.base_seed = probe.task, method, probe.data.forget_idx, probe.seed
        self.seeds = {role: [derive_seed(probe.seed, role)] for role in ("original", "target")}

    def model_spec(self, role: str, i: int) -> dict:
        from oracles.ensemble import model_spec
        excluded = np.array([], dtype=np.int64) if role == "original" else self.forget_idx
        return model_spec(self.task, excluded, self.seeds[role][i])


class _ProbeEnv:
    """What ``bench.providers`` reads from a unit (``UnitEnv``), on a probe: the providers' own code builds the
    method's inputs here exactly as in a run, without a cache. Models are trained once per probe and role."""

    def __init__(self, probe: _Probe, method: Method) -> None:
        self.plan, self.index, self.store = _ProbePlan(probe, method), 0, None
        self.device, self.data, self.probe = torch.device("cpu"), probe.data, probe
        self.recorded_flat = None

    def spec(self, role: str) -> dict:
        return self.plan.model_spec(role, 0)

    def model(self, role: str) -> nn.Module:
        if role == "original":
            return self.probe.original
        if role != "target":
            raise AssertionError(f"the contract probe has no {role!r} model (a provider asked for it)")
        seed = self.plan.seeds[role][0]
        task = self.probe.task
        return task.train(task.make_model(seed), self.data.retain, seed).eval()


def _probe_key(probe: _Probe) -> tuple:
    """A probe by value (task name, parameters, seed): ids of short-lived probe tasks could be reused."""
    return probe.task.name, json.dumps(probe.task.get_params(), sort_keys=True, default=str), probe.seed


_PROVIDED: dict[tuple, object] = {}  # (probe, input, method params) -> the value: built once, like a run's cache

#: cheaper settings for parameters whose defaults are sized for real runs (applied where a method has them)
_PROBE_OVERRIDES = {"steps": CONTRACT_BUDGET, "datamodel_models": 24}


def _context(method: Method, probe: _Probe) -> UnlearnContext:
    """A fresh context (steps, generator) with every input the method requires, built by ``bench.providers``
    (the runner's table) on the probe's original."""
    values = {}
    for name in inputs_of(method.requires):
        key = (_probe_key(probe), name, json.dumps(method.get_params(), sort_keys=True, default=str))
        if key not in _PROVIDED:
            _PROVIDED[key] = PROVIDERS[name].provide(_ProbeEnv(probe, method))[0]
        values[PROVIDERS[name].field] = _PROVIDED[key]
    return UnlearnContext(task=probe.task, data=probe.data, seed=derive_seed(probe.seed, "unlearn"),
                          max_steps=CONTRACT_BUDGET, **values)


def _budgeted(method_cls: type[Method]) -> Method:
    params = method_cls().get_params()
    overrides = {name: value for name, value in _PROBE_OVERRIDES.items() if name in params}
    if "batch_size" in params:
        overrides["batch_size"] = 4  # exercise the method's own randomness in the determinism check
    return method_cls(**{**params, **overrides})


def _private_copy(probe: _Probe) -> _Probe:
    """The shared probe, copied, so a method that breaks the rules cannot corrupt it for the next one."""
    data = probe.data
    return _Probe(probe.task, TaskData(Split(data.train.x.clone(), data.train.y.clone()),
                                       Split(data.val.x.clone(), data.val.y.clone()), data.forget_idx.copy()),
                  copy.deepcopy(probe.original), probe.seed)


def _unlearn(method_cls: type[Method]) -> tuple[nn.Module, UnlearnContext, _Probe]:
    """Run the budgeted method once on (a copy of) the probe, enforced; a violation becomes an AssertionError."""
    probe = _private_copy(_probe(method_cls))
    method = _budgeted(method_cls)
    ctx = _context(method, probe)
    try:
        return unlearn_checked(method, probe.original, ctx), ctx, probe
    except MethodFailedError as err:
        raise AssertionError(str(err)) from err


def _outputs_hash(method_cls: type[Method], model: nn.Module, probe: _Probe) -> str:
    """Weights for a method that returns models; predictions for one that returns a predictor."""
    if method_cls.output == "predictions":
        with torch.no_grad():
            return state_hash(_Outputs(probe.task.outputs(model, probe.data.train.x)))
    return state_hash(model)


class _Outputs(nn.Module):
    def __init__(self, values: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("values", values.detach().clone())


# ------------------------------------------------------------------------------------------ the rules

def check_default_constructible(method_cls: type[Method]) -> None:
    method_cls.check_signature()
    try:
        method = method_cls()
    except TypeError as err:
        raise AssertionError(f"{method_cls.__name__} must be constructible with no arguments "
                             f"(every hyperparameter needs a default): {err}") from err
    try:
        budget_of(method)
    except MethodFailedError as err:
        raise AssertionError(str(err)) from err


def check_params_round_trip(method_cls: type[Method]) -> None:
    params = method_cls().get_params()
    assert "steps" in params, f"{method_cls.__name__} must take a 'steps' budget"
    assert method_cls(**params).get_params() == params, f"{method_cls.__name__}: get_params() does not round-trip"


def check_no_mutation(method_cls: type[Method]) -> None:
    """Model weights, buffers and train/eval mode, and every split of the data, are unchanged."""
    shared = _probe(method_cls)
    weights, data = state_hash(shared.original), data_fingerprint(shared.data)
    _, _, probe = _unlearn(method_cls)  # unlearn_checked raises on a violation of the copy it was given
    assert state_hash(probe.original) == weights, f"{method_cls.__name__}.unlearn changed its input model"
    assert data_fingerprint(probe.data) == data, f"{method_cls.__name__}.unlearn changed the task data"


def check_returns_new_model_same_architecture(method_cls: type[Method]) -> None:
    out, _, probe = _unlearn(method_cls)
    assert out is not probe.original, f"{method_cls.__name__}.unlearn must return a new model"
    if method_cls.output == "predictions":
        with torch.no_grad():
            got, ref = probe.task.outputs(out, probe.data.train.x), probe.task.outputs(probe.original, probe.data.train.x)
        assert got.shape == ref.shape, f"{method_cls.__name__} changed the output shape"


def check_changes_model_on_probe(method_cls: type[Method]) -> None:
    """A method that changes nothing on its probe would pass every other check vacuously."""
    if not method_cls.changes_model:
        return
    out, _, probe = _unlearn(method_cls)
    assert _outputs_hash(method_cls, out, probe) != _outputs_hash(method_cls, probe.original, probe), (
        f"{method_cls.__name__} did not change the model on its probe task ({probe.task.name}, "
        f"{CONTRACT_BUDGET} steps): pick a probe tag where it acts, or set changes_model = False"
    )


def check_within_budget_as_measured(method_cls: type[Method]) -> None:
    try:
        _, ctx, _ = _unlearn(method_cls)
    except BudgetExceededError as err:
        raise AssertionError(f"{method_cls.__name__} exceeded its budget of {CONTRACT_BUDGET} steps: {err}") from err
    assert ctx.steps_used <= CONTRACT_BUDGET, f"{method_cls.__name__} took {ctx.steps_used} steps"


def check_deterministic_in_fresh_process(method_cls: type[Method]) -> None:
    """Same seed, same result, in this process twice and in a fresh interpreter (hash seed, global RNG)."""
    first, _, probe = _unlearn(method_cls)
    second, _, _ = _unlearn(method_cls)
    here = _outputs_hash(method_cls, first, probe)
    assert here == _outputs_hash(method_cls, second, probe), f"{method_cls.__name__} is not deterministic under a fixed seed"
    if "<locals>" in method_cls.__qualname__:
        return  # a class defined inside a function cannot be imported by a fresh process
    there = _hash_in_subprocess(method_cls)
    assert here == there, f"{method_cls.__name__} gives a different result in a fresh process under the same seed"


def _hash_in_subprocess(method_cls: type[Method]) -> str:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    target = json.dumps([method_cls.__module__, method_cls.__qualname__])
    threads = str(torch.get_num_threads())  # same reduction order as here
    proc = subprocess.run([sys.executable, "-m", "bench.contract", target, threads], capture_output=True, text=True,
                          env=env, timeout=600)
    assert proc.returncode == 0, f"the fresh process failed:\n{proc.stderr[-2000:]}"
    return proc.stdout.strip().splitlines()[-1]


def check_declared_bounds(method_cls: type[Method]) -> None:
    """Every numeric hyperparameter declares its range once (bench.bounds), so bad values fail up front."""
    name = method_cls.__name__
    for spec in method_cls.param_specs():
        assert not spec.numeric or spec.bounds is not None, (
            f"{name}: numeric parameter '{spec.name}' declares no bounds; annotate it, e.g. "
            f"Annotated[int, Range(0, 1000)] or an alias from bench.bounds (Steps, BatchSize, LearningRate)")
    try:
        method_cls(**{**method_cls().get_params(), "steps": -1})
    except ParamError:
        return
    raise AssertionError(f"{name}: steps=-1 was accepted; declare steps with bench.bounds.Steps")


def check_runs_on_vision_probe(method_cls: type[Method]) -> None:
    """Classifier methods also run on uint8 images, so one that skips the task's input path fails here."""
    if "classification" not in method_cls.requires:
        return
    task = tiny_vision_task()
    train, val = task.load()
    data = TaskData(train, val, task.select_forget(train, np.random.default_rng(0)))
    original_seed = derive_seed(0, "original")
    probe = _Probe(task, data, task.train(task.make_model(original_seed), train, original_seed).eval(), 0)
    method = _budgeted(method_cls)
    try:
        unlearn_checked(method, probe.original, _context(method, probe))
    except MethodFailedError as err:
        raise AssertionError(f"{method_cls.__name__} fails on the vision probe: {err}") from err


RULES: dict[str, Callable[[type[Method]], None]] = {
    "default-constructible": check_default_constructible,
    "params-round-trip": check_params_round_trip,
    "declared-bounds": check_declared_bounds,
    "no-mutation": check_no_mutation,
    "new-model-same-architecture": check_returns_new_model_same_architecture,
    "changes-model-on-probe": check_changes_model_on_probe,
    "within-budget-as-measured": check_within_budget_as_measured,
    "deterministic-fresh-process": check_deterministic_in_fresh_process,
    "runs-on-vision-probe": check_runs_on_vision_probe,
}


def method_checks(method_cls: type[Method]) -> Iterator[Check]:
    """One named check per contract rule, in the order a failure is easiest to understand."""
    for rule, run in RULES.items():
        yield Check(rule, method_cls, run)


def check_method(method_cls: type[Method]) -> None:
    """Raise AssertionError naming the first broken rule of the method contract."""
    for check in method_checks(method_cls):
        check()


def _child_main(target: str, threads: str) -> None:
    import importlib

    import bench.registry  # noqa: F401  (registers tasks the probe needs)
    module, qualname = json.loads(target)
    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    torch.set_num_threads(int(threads))
    out, _, probe = _unlearn(obj)
    print(_outputs_hash(obj, out, probe))


if __name__ == "__main__":
    _child_main(sys.argv[1], sys.argv[2])
