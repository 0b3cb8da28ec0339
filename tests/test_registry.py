"""Registries: built-ins, did-you-mean, duplicates, entry points and plugin files."""
import sys
import textwrap

import pytest

import bench
from bench.errors import UnknownNameError
from bench.registry import METHODS, TASKS, Registry

EXPECTED_METHODS = {"noop", "retrain", "finetune", "ga", "gdga", "oracle-matching", "oracle-matching-retain"}


def test_public_api():
    for name in ("Method", "Task", "register_method", "register_task"):
        assert hasattr(bench, name)


def test_builtins_are_registered():
    assert EXPECTED_METHODS <= set(METHODS.names())
    assert "linear-gaussian" in TASKS.names()


def test_unknown_name_suggests_close_matches():
    with pytest.raises(UnknownNameError, match=r"(?s)unknown method .gdgaa.*Did you mean: gdga"):
        METHODS.get("gdgaa")


def test_duplicate_names_are_refused():
    registry = Registry("method", bench.Method, "methods", "bench.test-none")
    registry._loaded = True

    class A(bench.Method):
        """A."""
        name = "dup"

        def __init__(self, *, steps: int = 0):
            self.steps = steps

        def unlearn(self, model, ctx):
            return model

    class B(A):
        """B."""

    registry.register(A)
    registry.register(A)  # the same class twice is harmless
    with pytest.raises(ValueError, match="claimed twice.*A from.*B from"):
        registry.register(B)


def test_register_requires_a_name_and_subclass():
    registry = Registry("method", bench.Method, "methods", "bench.test-none")
    with pytest.raises(TypeError, match="subclasses"):
        registry.register(int)


def _fake_distribution(root, group, module, attr):
    """An installed-looking distribution on sys.path whose entry point names ``module:attr``."""
    dist = root / "thirdparty_unlearning-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty-unlearning\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[{group}]\nmine = {module}:{attr}\n")


def test_entry_point_method_is_discovered(tmp_path, monkeypatch):
    (tmp_path / "thirdparty_method.py").write_text(textwrap.dedent('''
        from dataclasses import dataclass
        from bench import Method
        from bench.optim import clone

        @dataclass(kw_only=True)
        class Shrink(Method):
            """Scales every weight by a factor (a third-party example)."""
            name = "thirdparty-shrink"
            steps: int = 0
            factor: float = 0.5

            def unlearn(self, model, ctx):
                return clone(model)
    '''))
    _fake_distribution(tmp_path, "bench.methods", "thirdparty_method", "Shrink")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = Registry("method", bench.Method, "methods", "bench.methods")
    assert "thirdparty-shrink" in registry.names()
    assert registry.get("thirdparty-shrink").__module__ == "thirdparty_method"
    sys.modules.pop("thirdparty_method", None)


def test_plugin_file_registers_a_method_and_cli_runs_it(tmp_path, capsys):
    from bench.cli import main

    plugin = tmp_path / "my_method.py"
    plugin.write_text(textwrap.dedent('''
        from dataclasses import dataclass
        from bench import Method, register_method
        from bench.optim import clone

        @register_method
        @dataclass(kw_only=True)
        class Identity(Method):
            """Returns a copy of the original (a plugin example)."""
            name = "plugin-identity"
            steps: int = 0

            def unlearn(self, model, ctx):
                return clone(model)
    '''))
    code = main(["--plugin", str(plugin), "run", "--method", "plugin-identity", "--task", "linear-gaussian",
                 "--task-arg", "n=20", "--task-arg", "d=10", "--out", str(tmp_path / "out")])
    assert code == 0
    assert "plugin-identity" in capsys.readouterr().out
    METHODS._classes.pop("plugin-identity")
