"""Calling a method's ``unlearn`` safely: a method is third-party code, so whatever it does wrong (raise,
return nothing, return another architecture, explode the model) is reported as that method's failure,
in one sentence that names it, instead of as a traceback from deep inside the runner or the scorer.
"""
from __future__ import annotations

import inspect
import traceback
from typing import Callable

from torch import nn

from bench.context import UnlearnContext
from bench.divergence import check_unlearned
from bench.errors import BenchError, BudgetExceededError, DivergenceError, MethodFailedError
from bench.method import Method


def _origin(method: Method) -> str:
    cls = type(method)
    try:
        where = f" in {inspect.getsourcefile(cls)}"
    except TypeError:
        where = ""
    return f"method '{method.name}' ({cls.__module__}.{cls.__qualname__}{where})"


def _raise_site(err: BaseException) -> str:
    frames = traceback.extract_tb(err.__traceback__)
    if not frames:
        return ""
    last = frames[-1]
    return f" at {last.filename}:{last.lineno}"


def architecture_difference(original: nn.Module, out: nn.Module) -> str | None:
    """How ``out``'s state dict differs from ``original``'s (keys, shapes, dtypes), or None if it does not."""
    a, b = original.state_dict(), out.state_dict()
    missing, extra = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}")
        if extra:
            parts.append(f"unexpected {', '.join(extra[:3])}{' ...' if len(extra) > 3 else ''}")
        return "; ".join(parts)
    for key, tensor in a.items():
        if tuple(tensor.shape) != tuple(b[key].shape):
            return f"{key} has shape {tuple(b[key].shape)}, the original's {tuple(tensor.shape)}"
    return None


def check_output(method: Method, original: nn.Module, out: object, index: int) -> nn.Module:
    """The returned object must be a new ``nn.Module`` of the original's architecture (unless the method
    declares ``output = "predictions"``: a wrapper that is scored but never cached)."""
    who = _origin(method)
    if out is None:
        raise MethodFailedError(f"{who} returned None for model {index}; unlearn must return the unlearned "
                                "nn.Module (did it forget a `return`?)")
    if not isinstance(out, nn.Module):
        raise MethodFailedError(f"{who} returned a {type(out).__name__} for model {index}, not an nn.Module")
    if out is original:
        raise MethodFailedError(f"{who} returned its input model for model {index}; return a new model "
                                "(bench.optim.clone(model)) and never mutate the input")
    if method.output == "model":
        diff = architecture_difference(original, out)
        if diff is not None:
            raise MethodFailedError(f"{who} returned a model of another architecture for model {index} "
                                    f"({diff}); unlearn must return the original's architecture")
    return out


def guarded_unlearn(method: Method, original: nn.Module, ctx: UnlearnContext, index: int) -> nn.Module:
    """``method.unlearn(original, ctx)``, with every failure turned into a message naming the method."""
    try:
        out = method.unlearn(original, ctx)
    except (BenchError, DivergenceError, BudgetExceededError, MethodFailedError):
        raise
    except Exception as err:  # a method bug: say whose, what and where, then stop
        raise MethodFailedError(f"{_origin(method)} raised {type(err).__name__}: {err} while unlearning model "
                                f"{index} (after {ctx.steps_used} steps){_raise_site(err)}; this is a bug in "
                                "the method or one of its parameters") from err
    model = check_output(method, original, out, index)
    check_unlearned(ctx.task, method.name, model.eval(), original, ctx.data.val, index, ctx.steps_used)
    return model


def load_cached_model(entry_state: dict, make: Callable[[], nn.Module], discard: Callable[[], None],
                      log: Callable[[str], None], what: str) -> nn.Module | None:
    """A model built by ``make`` with cached weights, or None (the entry discarded) if they do not fit it."""
    model = make()
    try:
        model.load_state_dict(entry_state)
    except (RuntimeError, KeyError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        log(f"cache: cached {what} does not fit the model ({first}); discarding it and recomputing")
        discard()
        return None
    return model
