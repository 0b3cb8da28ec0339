"""Name -> class registries for methods and tasks: built-ins, entry points and plugin files."""
from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import importlib.util
import pkgutil
import sys
from pathlib import Path
from typing import Generic, TypeVar

from bench.errors import BenchError, UnknownNameError
from bench.method import Method
from bench.task import Task

T = TypeVar("T")


class Registry(Generic[T]):
    """Classes registered under unique names, loaded lazily from a package and an entry-point group."""

    def __init__(self, kind: str, base: type, package: str, group: str) -> None:
        self.kind, self.base, self.package, self.group = kind, base, package, group
        self._classes: dict[str, type[T]] = {}
        self._loaded = False

    def register(self, cls: type[T]) -> type[T]:
        """Register ``cls`` under ``cls.name``; usable as a class decorator."""
        if not (isinstance(cls, type) and issubclass(cls, self.base)):
            raise TypeError(f"only {self.base.__name__} subclasses can be registered as {self.kind}s, got {cls!r}")
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not name:
            raise TypeError(f"{cls.__name__} needs a class attribute 'name' (a non-empty string)")
        existing = self._classes.get(name)
        if existing is not None and existing is not cls:
            raise ValueError(f"{self.kind} name '{name}' is taken by {existing.__module__}.{existing.__qualname__}")
        cls.check_signature()
        self._classes[name] = cls
        return cls

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        package = importlib.import_module(self.package)
        for info in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{self.package}.{info.name}")
        for entry in importlib.metadata.entry_points(group=self.group):
            loaded = entry.load()
            if isinstance(loaded, type) and issubclass(loaded, self.base) and loaded not in self._classes.values():
                self.register(loaded)

    def names(self) -> list[str]:
        self._load()
        return sorted(self._classes)

    def get(self, name: str) -> type[T]:
        """The class registered as ``name``; unknown names raise with a did-you-mean suggestion."""
        self._load()
        if name in self._classes:
            return self._classes[name]
        close = difflib.get_close_matches(name, list(self._classes), n=3, cutoff=0.5)
        hint = f"\nDid you mean: {', '.join(close)}?" if close else ""
        raise UnknownNameError(
            f"unknown {self.kind} '{name}'.{hint}\nKnown {self.kind}s: {', '.join(sorted(self._classes))} "
            f"(see `python -m bench list`)"
        )


METHODS: Registry[Method] = Registry("method", Method, "methods", "bench.methods")
TASKS: Registry[Task] = Registry("task", Task, "tasks", "bench.tasks")


def register_method(cls: type[Method]) -> type[Method]:
    """Class decorator: make a ``Method`` subclass available by its ``name``."""
    return METHODS.register(cls)


def register_task(cls: type[Task]) -> type[Task]:
    """Class decorator: make a ``Task`` subclass available by its ``name``."""
    return TASKS.register(cls)


def load_plugin(path: str | Path) -> None:
    """Import a Python file that registers methods or tasks (``--plugin my_method.py``)."""
    file = Path(path)
    if not file.is_file():
        raise BenchError(f"plugin file not found: {file}")
    module_name = f"bench_plugin_{file.stem}"
    spec = importlib.util.spec_from_file_location(module_name, file)
    if spec is None or spec.loader is None:
        raise BenchError(f"cannot import plugin {file}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
