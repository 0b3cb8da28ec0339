"""Each deliberately broken method is caught by the rule it breaks, and the runner enforces the same rules."""
import numpy as np
import pytest

import contract_fixtures as fx
from bench.contract import method_checks
from bench.errors import MethodFailedError
from bench.runner import RunSpec, run
from tasks.linear_gaussian import LinearGaussian


def failing_rules(method_cls):
    failed = {}
    for check in method_checks(method_cls):
        try:
            check()
        except Exception as err:  # noqa: BLE001 - a broken method may raise anything
            failed[check.rule] = f"{type(err).__name__}: {err}"
    return failed


@pytest.mark.parametrize("method_cls,rule,words", [
    (fx.OwnLoopNoStepDone, "within-budget-as-measured", "exceeds the budget of 3"),
    (fx.FloatSteps, "default-constructible", "must be a non-negative int"),
    (fx.MutatesValidation, "no-mutation", "val"),
    (fx.LeavesTrainMode, "no-mutation", "train/eval mode"),
    (fx.ProcessDependent, "deterministic-fresh-process", "fresh process"),
    (fx.ChangesNothing, "changes-model-on-probe", "did not change the model"),
    (fx.MutatesInput, "no-mutation", "changed its input model"),
    (fx.ReturnsInput, "new-model-same-architecture", "returned its input"),
    (fx.ReturnsNone, "new-model-same-architecture", "returned None"),
    (fx.WrongArchitecture, "new-model-same-architecture", "another architecture"),
    (fx.ReportsTooManySteps, "within-budget-as-measured", "budget of 3"),
    (fx.NoDefault, "default-constructible", "needs a default"),
    (fx.NoRoundTrip, "params-round-trip", "round-trip"),
], ids=lambda v: v.__name__ if isinstance(v, type) else None)
def test_broken_variant_is_caught_by_its_rule(method_cls, rule, words):
    failed = failing_rules(method_cls)
    assert rule in failed, f"{method_cls.__name__} passed '{rule}'; failures: {failed}"
    assert words in failed[rule]


def test_honest_method_passes_every_rule():
    assert failing_rules(fx.Honest) == {}


TASK = LinearGaussian(n=24, d=12, n_val=8, forget_size=4, trainer="gd", train_steps=50, init_scale=1.0)


@pytest.mark.parametrize("protocol", ["independent", "challenge"])
def test_runner_refuses_a_method_that_mutates_the_shared_original(protocol):
    with pytest.raises(MethodFailedError, match="changed its input model"):
        run(RunSpec(method=fx.MutatesInput(), task=TASK, n_models=3, protocol=protocol), store=None)


def test_runner_counts_optimizer_steps_a_method_does_not_report():
    from bench.errors import BudgetExceededError
    with pytest.raises(BudgetExceededError, match="counted by the harness"):
        run(RunSpec(method=fx.OwnLoopNoStepDone(), task=TASK, n_models=1), store=None)
    record = run(RunSpec(method=fx.Honest(steps=5), task=TASK, n_models=1), store=None)
    assert np.all(np.array(record["steps_used"]) == 5)


def test_runner_refuses_a_float_budget():
    with pytest.raises(MethodFailedError, match="steps must be a non-negative int"):
        run(RunSpec(method=fx.FloatSteps(), task=TASK, n_models=1), store=None)
