"""Parsing command-line hyperparameters by their type annotations."""
from dataclasses import dataclass
from typing import Literal

import pytest

from bench.errors import ParamError
from bench.method import Method
from bench.params import parse_assignments, parse_value


@pytest.mark.parametrize("text,annotation,expected", [
    ("3", int, 3), ("0.5", float, 0.5), ("1e-3", float, 1e-3), ("true", bool, True), ("No", bool, False),
    ("none", float | None, None), ("2", float | None, 2.0), ("gd", Literal["exact", "gd"], "gd"),
    ("a, b", tuple[str, ...], ("a", "b")), ("1,2", tuple[int, ...], (1, 2)), ("x", str, "x"),
])
def test_parse_value(text, annotation, expected):
    assert parse_value(text, annotation) == expected


@pytest.mark.parametrize("text,annotation", [("abc", float), ("1.5", int), ("maybe", bool),
                                             ("sgd", Literal["exact", "gd"]), ("x", int | None)])
def test_parse_value_rejects(text, annotation):
    with pytest.raises(ValueError):
        parse_value(text, annotation)


@dataclass(kw_only=True)
class _Toy(Method):
    """A toy."""
    name = "toy"
    steps: int = 5
    lr: float | None = None

    def unlearn(self, model, ctx):
        return model


def test_from_strings_types_values():
    toy = _Toy.from_strings({"steps": "7", "lr": "0.25"}, label="method 'toy'")
    assert toy.get_params() == {"steps": 7, "lr": 0.25}


def test_unknown_parameter_suggests_the_close_one():
    with pytest.raises(ParamError, match=r"no parameter 'stpes'.*Did you mean 'steps'"):
        _Toy.from_strings({"stpes": "7"}, label="method 'toy'")


def test_ill_typed_parameter_names_expected_type():
    with pytest.raises(ParamError, match=r"'steps' expects int, got 'many'"):
        _Toy.from_strings({"steps": "many"}, label="method 'toy'")


def test_assignments_need_equals_and_no_repeats():
    assert parse_assignments(["a=1", "b=x=y"], flag="--method-arg") == {"a": "1", "b": "x=y"}
    with pytest.raises(ParamError, match="name=value"):
        parse_assignments(["a"], flag="--method-arg")
    with pytest.raises(ParamError, match="twice"):
        parse_assignments(["a=1", "a=2"], flag="--method-arg")


def test_signature_rules_are_enforced():
    class Positional(Method):
        name = "positional"

        def __init__(self, steps=1):
            self.steps = steps

        def unlearn(self, model, ctx):
            return model

    class NoDefault(Method):
        name = "nodefault"

        def __init__(self, *, steps):
            self.steps = steps

        def unlearn(self, model, ctx):
            return model

    with pytest.raises(TypeError, match="keyword-only"):
        Positional.check_signature()
    with pytest.raises(TypeError, match="needs a default"):
        NoDefault.check_signature()


def test_plain_init_subclass_is_introspected():
    class Plain(Method):
        name = "plain"

        def __init__(self, *, steps: int = 2, alpha: float = 0.5):
            self.steps, self.alpha = steps, alpha

        def unlearn(self, model, ctx):
            return model

    assert Plain.from_strings({"alpha": "2"}, label="x").get_params() == {"steps": 2, "alpha": 2.0}
