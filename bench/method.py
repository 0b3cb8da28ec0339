"""The ``Method`` extension point: one call that turns a trained model into an unlearned one."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

from torch import nn

from bench.errors import DefinitionError
from bench.params import Configurable

if TYPE_CHECKING:
    from bench.context import UnlearnContext


class Method(Configurable, ABC):
    """An unlearning method.

    Hyperparameters are keyword-only ``__init__`` arguments with defaults and no logic (the simplest way:
    ``@dataclass(kw_only=True)``); every method has a ``steps`` budget. ``requires`` names the extras
    the runner must put in the context (``"oracle_outputs"``, ``"recorded_gradients"``) or the kind of task
    the method needs (``"classification"``: a ``bench.classification.ClassifierTask``).
    """

    name: ClassVar[str]
    kind_name: ClassVar[str] = "method"
    requires: ClassVar[frozenset[str]] = frozenset()
    #: "model": unlearn returns weights of the original's architecture; "predictions": it returns a wrapper
    #: that only predicts the unlearned outputs (datamodel-direct), which is scored but not cached.
    output: ClassVar[str] = "model"
    #: Contract tags. ``probe``: the tiny task the contract suite runs the method on (a key of
    #: ``bench.contract.PROBES``: "linear", "digits" or "dave-tiny"); ``changes_model``: False only for
    #: a method whose point is to change nothing (noop), which exempts it from the "changes the model" check.
    probe: ClassVar[str] = "linear"
    changes_model: ClassVar[bool] = True
    #: True only where ``steps=None`` means "the method's own full schedule" (retrain), not a missing budget.
    unbounded_steps: ClassVar[bool] = False
    steps: int

    @abstractmethod
    def unlearn(self, model: nn.Module, ctx: "UnlearnContext") -> nn.Module:
        """Return a new, unlearned model. Never mutate ``model`` or anything in ``ctx``."""

    @classmethod
    def check_signature(cls) -> None:
        """The hyperparameter rules of ``Configurable`` plus the step budget every method declares."""
        super().check_signature()
        if "steps" not in {spec.name for spec in cls.param_specs()}:
            raise DefinitionError(
                f"{cls.__name__} has no 'steps' hyperparameter: every method declares its step budget (the optimiser "
                "steps it may take; the harness counts and enforces them), e.g. `steps: Steps = 100` with Steps "
                "from bench.bounds, or `steps: Steps = 0` for a method that takes no steps")

    @classmethod
    def description(cls) -> str:
        return (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
