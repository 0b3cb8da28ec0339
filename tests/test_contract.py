"""Every registered method passes the method contract, automatically."""
import pytest

from bench.bounds import Steps
from bench.contract import check_method
from bench.registry import METHODS


@pytest.mark.parametrize("name", METHODS.names())
def test_registered_method_honours_contract(name):
    check_method(METHODS.get(name))


def test_contract_catches_a_method_that_mutates_its_input():
    from dataclasses import dataclass

    import torch

    from bench.method import Method

    @dataclass(kw_only=True)
    class Mutating(Method):
        """Zeroes the model it was given."""
        name = "mutating"
        steps: Steps = 1

        def unlearn(self, model, ctx):
            with torch.no_grad():
                for p in model.parameters():
                    p.zero_()
            return model

    with pytest.raises(AssertionError, match="new model|mutated"):
        check_method(Mutating)


def test_contract_catches_budget_overrun():
    from dataclasses import dataclass

    from bench.errors import BudgetExceededError
    from bench.method import Method
    from bench.optim import clone

    @dataclass(kw_only=True)
    class Greedy(Method):
        """Claims more steps than its budget."""
        name = "greedy"
        steps: Steps = 1

        def unlearn(self, model, ctx):
            for _ in range(self.steps + 1):
                ctx.step_done(model)
            return clone(model)

    with pytest.raises(BudgetExceededError):
        check_method(Greedy)


def test_contract_requires_declared_bounds():
    from dataclasses import dataclass

    from bench.method import Method
    from bench.optim import clone

    @dataclass(kw_only=True)
    class Unbounded(Method):
        """Declares steps as a plain int: -5 or 10**12 would slip through to the runner."""
        name = "unbounded"
        steps: int = 0

        def unlearn(self, model, ctx):
            return clone(model)

    with pytest.raises(AssertionError, match="'steps' declares no bounds"):
        check_method(Unbounded)


def test_vision_probe_catches_a_method_that_skips_the_input_path():
    """The fisher bug class: calling the network on raw uint8 images instead of through task.outputs."""
    from dataclasses import dataclass

    from bench.contract import tiny_vision_task
    from bench.method import Method
    from bench.optim import clone

    @dataclass(kw_only=True)
    class RawInputs(Method):
        """Feeds the network the task's raw inputs."""
        name = "raw-inputs"
        requires = frozenset({"classification"})
        steps: Steps = 0

        def unlearn(self, model, ctx):
            out = clone(model)
            out(ctx.forget.x)  # uint8 straight into a conv layer
            return out

    with pytest.raises(RuntimeError):
        check_method(RawInputs, tiny_vision_task())
