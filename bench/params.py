"""Hyperparameters as keyword-only ``__init__`` arguments, read back by signature introspection.

Methods and tasks share this so that every result can record every parameter, and so that the
CLI can parse ``name=value`` strings into the right types without a separate schema.
"""
from __future__ import annotations

import dataclasses
import difflib
import inspect
import math
import re
import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

from bench.bounds import Range
from bench.errors import DefinitionError, ParamError

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?|[+-]?(inf|infinity|nan)", re.IGNORECASE)


@dataclass(frozen=True)
class ParamSpec:
    """One hyperparameter: its name, type annotation (``Annotated`` stripped), default and declared bounds."""

    name: str
    annotation: Any
    default: Any
    bounds: Range | None = None

    @property
    def type_name(self) -> str:
        return describe_type(self.annotation)

    @property
    def numeric(self) -> bool:
        """Whether the parameter takes an int or a float (so it should declare its bounds)."""
        members = _union_members(self.annotation)
        return any(m in (int, float) for m in members)

    def check(self, value: Any, label: str) -> None:
        """Refuse a non-finite float or a number outside the declared bounds, naming the fix."""
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            return
        if isinstance(value, float) and not math.isfinite(value):
            bound = f" {self.bounds.describe()}" if self.bounds else ""
            raise ParamError(f"{label} parameter '{self.name}' must be a finite number{bound}, got {value}; "
                             f"give e.g. {self.name}={self._example()}")
        if self.bounds is not None and not self.bounds.contains(value):
            raise ParamError(f"{label} parameter '{self.name}' must be {self.bounds.describe()}, got {value!r}; "
                             f"give e.g. {self.name}={self._example()}")

    def _example(self) -> Any:
        if self.bounds is not None:
            return self.bounds.example(self.default)
        return self.default


def parse_int(text: str) -> int:
    """An integer written with ASCII digits only: int() would also take '1_0' and non-ASCII digits."""
    stripped = text.strip()
    if not _INT.fullmatch(stripped):
        raise ValueError(f"not an integer in ASCII digits: {text!r}")
    return int(stripped)


def parse_float(text: str) -> float:
    """A float written in ASCII (digits, '.', exponent; 'nan'/'inf' parse and are refused by bounds later)."""
    stripped = text.strip()
    if not _FLOAT.fullmatch(stripped):
        raise ValueError(f"not a number in ASCII digits: {text!r}")
    return float(stripped)


def _union_members(annotation: Any) -> tuple:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return typing.get_args(annotation)
    return (annotation,)


def split_annotation(hint: Any) -> tuple[Any, Range | None]:
    """``Annotated[T, Range(...)]`` (also inside ``X | None``) -> (T, the Range); plain hints -> (hint, None)."""
    if typing.get_origin(hint) is Annotated:
        base, *extras = typing.get_args(hint)
        ranges = [e for e in extras if isinstance(e, Range)]
        inner, inner_range = split_annotation(base)
        return inner, (ranges[0] if ranges else inner_range)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        members, found = [], None
        for member in typing.get_args(hint):
            plain, bounds = split_annotation(member)
            members.append(plain)
            found = found or bounds
        if found is None:
            return hint, None
        return typing.Union[tuple(members)], found
    return hint, None


def describe_type(annotation: Any) -> str:
    """A short human-readable name for a type annotation (``float``, ``int | None``, ``'a' | 'b'``)."""
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return " | ".join(repr(v) for v in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " | ".join("None" if a is type(None) else describe_type(a) for a in typing.get_args(annotation))
    if origin in (tuple, list):
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        return f"comma-separated list of {describe_type(args[0]) if args else 'str'}"
    if annotation is inspect.Parameter.empty:
        return "str"
    return getattr(annotation, "__name__", str(annotation))


def _parse_scalar(text: str, annotation: Any) -> Any:
    if annotation is bool:
        low = text.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ValueError
    if annotation is int:
        return parse_int(text)
    if annotation is float:
        return parse_float(text)
    if annotation in (str, inspect.Parameter.empty, Any):
        return text
    raise ValueError


def parse_value(text: str, annotation: Any) -> Any:
    """Convert a command-line string to a value of ``annotation``; raise ValueError if it does not fit."""
    origin = typing.get_origin(annotation)
    if origin is Literal:
        for choice in typing.get_args(annotation):
            if str(choice) == text:
                return choice
        raise ValueError
    if origin in (typing.Union, types.UnionType):
        members = typing.get_args(annotation)
        if type(None) in members and text.strip().lower() in {"none", "null"}:
            return None
        for member in members:
            if member is type(None):
                continue
            try:
                return parse_value(text, member)
            except ValueError:
                continue
        raise ValueError
    if origin in (tuple, list):
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis] or [str]
        items = [parse_value(part.strip(), args[0]) for part in text.split(",") if part.strip()]
        return tuple(items) if origin is tuple else items
    return _parse_scalar(text, annotation)


def _is_classvar(annotation: Any) -> bool:
    if isinstance(annotation, str):  # ``from __future__ import annotations``
        return annotation.replace("typing.", "").startswith("ClassVar")
    return annotation is ClassVar or typing.get_origin(annotation) is ClassVar


def _annotated_defaults(cls: type) -> list[tuple[str, type]]:
    """(name, declaring class) of every annotated, non-ClassVar class attribute with a default, below the
    framework's base classes: in a dataclass each is an ``__init__`` parameter, so one that is not marks a
    class that lost its ``@dataclass``."""
    found = []
    not_init = {f.name for f in dataclasses.fields(cls) if not f.init} if dataclasses.is_dataclass(cls) else set()
    for klass in cls.__mro__:
        if klass is Configurable or not (isinstance(klass, type) and issubclass(klass, Configurable)):
            continue
        if klass.__module__ in _FRAMEWORK_BASES:
            continue
        for attr, annotation in vars(klass).get("__annotations__", {}).items():
            hyper = not (_is_classvar(annotation) or attr.startswith("_") or attr in not_init)
            if hyper and attr in vars(klass):
                found.append((attr, klass))
    return found


#: modules whose base classes (Method, Task) annotate attributes for documentation, not as hyperparameters
_FRAMEWORK_BASES = frozenset({"bench.method", "bench.task", "bench.params"})


def _type_hints(cls: type) -> dict[str, Any]:
    for target in (cls.__init__, cls):
        try:
            return typing.get_type_hints(target, include_extras=True)
        except Exception:  # unresolvable forward references: fall back to raw annotations
            continue
    return dict(getattr(cls.__init__, "__annotations__", {}))


class Configurable:
    """Base for objects whose hyperparameters are keyword-only ``__init__`` arguments with defaults.

    Subclasses store each argument under an attribute of the same name (a ``@dataclass(kw_only=True)``
    does this for free) and put no logic in ``__init__``.
    """

    #: what error messages call an instance ("method 'gdga' parameter 'steps' must be ...")
    kind_name: ClassVar[str] = "object"

    @classmethod
    def param_specs(cls) -> list[ParamSpec]:
        """The hyperparameters, in signature order."""
        hints = _type_hints(cls)
        specs = []
        for param in inspect.signature(cls.__init__).parameters.values():
            if param.name == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            annotation, bounds = split_annotation(hints.get(param.name, param.annotation))
            specs.append(ParamSpec(param.name, annotation, param.default, bounds))
        return specs

    @classmethod
    def check_signature(cls) -> None:
        """Refuse classes whose hyperparameters cannot be introspected and recorded, saying how to fix them."""
        name = cls.__name__
        dataclass_fix = ("decorate it with @dataclass(kw_only=True) (from dataclasses) and give every hyperparameter "
                         "a default")
        if cls.__init__ is object.__init__:
            raise DefinitionError(f"{name} is not a dataclass and defines no __init__, so its hyperparameters cannot "
                                  f"be read or recorded: {dataclass_fix}")
        params = inspect.signature(cls.__init__).parameters.values()
        for param in params:
            if param.name == "self":
                continue
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise DefinitionError(
                    f"{name}.__init__ takes *{'' if param.kind is param.VAR_POSITIONAL else '*'}{param.name}, so its "
                    "hyperparameters cannot be listed or recorded: list each one as a keyword-only argument with "
                    f"a default (def __init__(self, *, steps: int = 100, ...)), or {dataclass_fix}")
            if param.kind is not param.KEYWORD_ONLY:
                raise DefinitionError(
                    f"{name}.__init__ parameter '{param.name}' must be keyword-only "
                    "(put it after '*', or use @dataclass(kw_only=True))"
                )
            if param.default is param.empty:
                raise DefinitionError(f"{name}.__init__ parameter '{param.name}' needs a default")
        taken = {p.name for p in params}
        for attr, owner in _annotated_defaults(cls):
            if attr not in taken:
                raise DefinitionError(
                    f"{name} declares '{attr}' with a default in {owner.__name__}, but {name}.__init__ does not take "
                    f"'{attr}', so it is never set from the command line or recorded: {owner.__name__} is probably "
                    f"missing its decorator; {dataclass_fix} (or annotate it ClassVar[...] if it is not a "
                    "hyperparameter)")

    def __getstate__(self) -> dict[str, Any]:
        """Pickled state carries the registered name: an entry point's key overrides the class's ``name`` in
        this process (``bench.registry``), and a worker process that imports the class afresh must agree."""
        state = dict(self.__dict__)
        name = getattr(type(self), "name", None)
        if isinstance(name, str):
            state["name"] = name
        return state

    def __post_init__(self) -> None:
        """Dataclass subclasses validate on construction; a subclass's own ``__post_init__`` calls super()."""
        self.validate()

    def validate(self, label: str | None = None) -> None:
        """Raise ParamError naming the first parameter that is non-finite or outside its declared bounds."""
        label = label or f"{self.kind_name} '{getattr(self, 'name', type(self).__name__)}'"
        for spec in self.param_specs():
            spec.check(getattr(self, spec.name, None), label)

    def get_params(self) -> dict[str, Any]:
        """Every hyperparameter and its current value, read by signature introspection."""
        return {spec.name: getattr(self, spec.name) for spec in self.param_specs()}

    @classmethod
    def from_strings(cls, assignments: dict[str, str], *, label: str) -> "Configurable":
        """Build an instance from ``name -> string`` pairs, typing each value by its annotation."""
        specs = {spec.name: spec for spec in cls.param_specs()}
        kwargs = {}
        for name, text in assignments.items():
            if name not in specs:
                close = difflib.get_close_matches(name, list(specs), n=1)
                hint = f" Did you mean '{close[0]}'?" if close else ""
                known = ", ".join(specs) or "(none)"
                raise ParamError(f"{label} has no parameter '{name}'.{hint} Its parameters: {known}")
            spec = specs[name]
            try:
                kwargs[name] = parse_value(text, spec.annotation)
            except ValueError:
                raise ParamError(
                    f"{label} parameter '{name}' expects {spec.type_name}, got {text!r}"
                ) from None
            spec.check(kwargs[name], label)
        try:
            instance = cls(**kwargs)
        except ParamError:
            raise
        except (TypeError, ValueError) as err:
            raise ParamError(f"{label}: {err}") from None
        instance.validate(label)
        return instance


def parse_assignments(items: list[str] | None, *, flag: str) -> dict[str, str]:
    """Split ``['a=1', 'b=x']`` into a dict; a missing '=' or repeated name is an error."""
    out: dict[str, str] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ParamError(f"{flag} expects name=value, got {item!r}")
        if name in out:
            raise ParamError(f"{flag} sets '{name}' twice")
        out[name] = value
    return out
