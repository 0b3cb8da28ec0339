"""Every registered method passes the method contract, automatically."""
import pytest

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
        steps: int = 1

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
        steps: int = 1

        def unlearn(self, model, ctx):
            for _ in range(self.steps + 1):
                ctx.step_done(model)
            return clone(model)

    with pytest.raises(BudgetExceededError):
        check_method(Greedy)
