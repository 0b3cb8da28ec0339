"""Bounds declared once, with the parameter: ``steps: Annotated[int, Range(0, 100_000)] = 100``.

``bench.params`` reads this metadata, so the CLI, the runner and the method contract all refuse an
out-of-range value with the same rule and the same message. The aliases below are the bounds shared by
many methods (a step budget, a batch size, a learning rate, SGD momentum); use them rather than restating
the numbers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated

#: more optimiser steps than any method here needs; 10**12 would run until killed
MAX_STEPS = 100_000
#: larger batches than any task here has points
MAX_BATCH = 10_000_000


@dataclass(frozen=True)
class Range:
    """A closed (or half-open) interval a number must lie in; ``None`` leaves that side unbounded."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def contains(self, value: float) -> bool:
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            return False
        return True

    def describe(self) -> str:
        """The interval as a user reads it: ``in [1, 10000]``, ``>= 0``, ``in (0, 1)``."""
        low, high = _num(self.low), _num(self.high)
        if self.low is not None and self.high is not None:
            return f"in {'(' if self.low_open else '['}{low}, {high}{')' if self.high_open else ']'}"
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {low}"
        if self.high is not None:
            return f"{'<' if self.high_open else '<='} {high}"
        return "any number"

    def example(self, default: object) -> float:
        """A value inside the range to suggest: the default when it fits, else the nearest end."""
        if isinstance(default, (int, float)) and not isinstance(default, bool) and self.contains(default):
            return default
        if self.low is not None and not self.low_open:
            return self.low
        if self.high is not None and not self.high_open:
            return self.high
        return self.low if self.low is not None else 0


def _num(value: float | None) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def is_finite_number(value: object) -> bool:
    return not isinstance(value, float) or math.isfinite(value)


Steps = Annotated[int, Range(0, MAX_STEPS)]
OptionalSteps = Annotated[int | None, Range(0, MAX_STEPS)]
BatchSize = Annotated[int | None, Range(1, MAX_BATCH)]
LearningRate = Annotated[float | None, Range(0, 1e6, low_open=True)]
Momentum = Annotated[float, Range(0, 1, high_open=True)]
Fraction = Annotated[float, Range(0, 1)]
NonNegative = Annotated[float, Range(0)]
Positive = Annotated[float, Range(0, low_open=True)]
Count = Annotated[int, Range(1)]
Seed = Annotated[int, Range(0, 2**32 - 1)]
#: subset models to fit datamodels on (some are held out to score them)
DatamodelModels = Annotated[int, Range(10, 1_000_000)]
#: the fraction of the train set each subset model sees
SubsetFraction = Annotated[float, Range(0, 1, low_open=True, high_open=True)]

# task recipes
Epochs = Annotated[int, Range(1, 10_000)]
TrainBatch = Annotated[int, Range(1, MAX_BATCH)]
StepSize = Annotated[float, Range(0, 1e6, low_open=True)]
Width = Annotated[int, Range(1, 65_536)]
ForgetSize = Annotated[int, Range(1, MAX_BATCH)]
Smoothing = Annotated[float, Range(0, 1, high_open=True)]
