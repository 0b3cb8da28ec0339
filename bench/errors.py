"""Exceptions that carry a user-facing message; the CLI maps them to exit codes."""
from __future__ import annotations


class BenchError(Exception):
    """A problem the user can fix (bad name, bad argument, bad forget set). CLI exit code 2."""

    exit_code = 2


class UnknownNameError(BenchError, KeyError):
    """A method or task name that is not registered."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class ParamError(BenchError, ValueError):
    """An unknown, missing or ill-typed hyperparameter."""


class ForgetSetError(BenchError, ValueError):
    """An empty, duplicated or out-of-range forget set."""


class DivergenceError(Exception):
    """Unlearning produced non-finite losses or weights; no result is written. CLI exit code 3."""

    exit_code = 3


class BudgetExceededError(Exception):
    """A method took more optimisation steps than its declared budget (a bug in the method)."""

    exit_code = 3


class MethodFailedError(Exception):
    """A method's ``unlearn`` raised, returned no model or a model of another architecture, or broke the
    contract the harness enforces (mutated its input or the data). CLI exit code 3."""

    exit_code = 3


class CacheWriteError(BenchError):
    """The model cache cannot take a write the run depends on (disk full, file-size limit). CLI exit code 2."""


class DefinitionError(BenchError, TypeError):
    """A method or task class that cannot be registered as written (no name, no ``steps``, no ``@dataclass``,
    ``*args``/``**kwargs``); the message says what to change."""


class NameCollisionError(BenchError, ValueError):
    """Two sources (built-in module, plugin file, installed distribution) claim one registered name."""
