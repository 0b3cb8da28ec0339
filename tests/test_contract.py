"""Every registered method passes every rule of the method contract, one pytest case per (method, rule)."""
import pytest

from bench.bounds import Steps
from bench.contract import check_declared_bounds, check_runs_on_vision_probe, method_checks
from bench.registry import METHODS

CHECKS = [check for name in METHODS.names() for check in method_checks(METHODS.get(name))]


@pytest.mark.parametrize("check", CHECKS, ids=str)
def test_registered_method_honours_contract(check):
    check()


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
        check_declared_bounds(Unbounded)


def test_vision_probe_catches_a_method_that_skips_the_input_path():
    """The fisher bug class: calling the network on raw uint8 images instead of through task.outputs."""
    from dataclasses import dataclass

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

    with pytest.raises(AssertionError, match="vision probe"):
        check_runs_on_vision_probe(RawInputs)
