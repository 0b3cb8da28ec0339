"""Name -> class registries for methods and tasks: built-ins, entry points and plugin files."""
from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import importlib.util
import pkgutil
import re
import sys
import traceback
from pathlib import Path
from typing import Generic, TypeVar

from bench.errors import BenchError, UnknownNameError
from bench.method import Method
from bench.task import Task

T = TypeVar("T")

#: registered names become folder and file names (results/<task>/<method>-<hash>.json): slugs only
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


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
        if not NAME_PATTERN.fullmatch(name):
            raise ValueError(f"{self.kind} name {name!r} of {cls.__name__} is not a slug: use 1-64 lowercase "
                             "letters, digits, '-' or '_', starting with a letter or digit (names become file "
                             "names, so '/', '.' and spaces are refused)")
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
            try:
                loaded = entry.load()
            except Exception as err:  # a broken third-party package must say which one, not crash
                raise BenchError(f"the {self.kind} entry point '{entry.name}' ({entry.value}, group {self.group}) "
                                 f"failed to import: {type(err).__name__}: {err}; fix or uninstall that "
                                 "package") from None
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
    try:
        spec.loader.exec_module(module)
    except SyntaxError as err:
        sys.modules.pop(module_name, None)
        raise BenchError(f"plugin {file} has a syntax error at line {err.lineno}: {err.msg}; fix the file "
                         "(or drop --plugin)") from None
    except Exception as err:  # anything a plugin raises on import is the plugin's problem, told as such
        sys.modules.pop(module_name, None)
        where = _plugin_frame(err, file)
        raise BenchError(f"plugin {file} failed to import{where}: {type(err).__name__}: {err}; fix the file "
                         "(or drop --plugin)") from None


def _plugin_frame(err: BaseException, file: Path) -> str:
    """' (line N)' of the deepest traceback frame inside the plugin file, or ''."""
    frames = [f for f in traceback.extract_tb(err.__traceback__) if Path(f.filename).resolve() == file.resolve()]
    return f" (line {frames[-1].lineno})" if frames else ""
