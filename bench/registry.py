"""Name -> class registries for methods and tasks: built-ins, entry points and plugin files.

Every registered name remembers where it came from (a ``Source``): a built-in module, an installed
distribution's entry point, a ``--plugin`` file, or some other module. ``bench list`` prints it, and a
collision names both sources.

The rules, in one place:

- An entry point's key is the registered name (``ssd-dampening = pkg:SSD`` registers ``ssd-dampening``).
  A class whose own ``name`` disagrees gets a warning and is renamed to the key.
- An installed plugin that fails to import or to register (no class, not a subclass, a bad signature) is
  reported once on stderr, naming its distribution and entry point, and skipped: everything else works.
- A name claimed by an entry point *and* by a built-in or another distribution is ambiguous: it is warned
  about once, left out of ``names()``, and using it is a ``NameCollisionError`` naming both sources. No
  side wins silently, because a run under the wrong code would be recorded under the right name.
- A built-in module, a plugin file or any code calling ``register`` directly that takes a name already
  held by another class fails at once with ``NameCollisionError``; re-registering the same class, or a
  class of the same module and qualified name (a reloaded plugin file), replaces the old entry.
"""
from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import importlib.util
import pkgutil
import re
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from bench.errors import BenchError, DefinitionError, NameCollisionError, UnknownNameError
from bench.method import Method
from bench.task import Task

T = TypeVar("T")

#: registered names become folder and file names (results/<task>/<method>-<hash>.json): slugs only
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")

#: module name -> file of every ``--plugin`` file loaded in this process (for ``Source``)
_PLUGIN_FILES: dict[str, Path] = {}
_WARNED: set[str] = set()


def warn_once(message: str) -> None:
    """One line on stderr per distinct message and process (a broken plugin must not flood every command)."""
    if message not in _WARNED:
        _WARNED.add(message)
        print(f"warning: {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Source:
    """Where a registered name came from.

    ``kind`` is "built-in", "distribution", "plugin file" or "module"; ``where`` the module, file or
    ``name==version``; ``entry`` the entry point as written (``key = module:attr``) for distributions.
    """

    kind: str
    where: str
    entry: str = ""
    group: str = ""

    def __str__(self) -> str:
        if self.kind == "distribution":
            return f"distribution {self.where} (entry point '{self.entry}' in group {self.group})"
        return f"{self.kind} {self.where}"

    @property
    def short(self) -> str:
        """What ``bench list`` prints beside a name."""
        if self.kind == "distribution":
            return f"plugin {self.where}"
        return f"{self.kind} {self.where}"

    @staticmethod
    def of_entry_point(entry: importlib.metadata.EntryPoint) -> "Source":
        dist = getattr(entry, "dist", None)
        label = f"{dist.name}=={dist.version}" if dist is not None else "(unknown distribution)"
        return Source("distribution", label, f"{entry.name} = {entry.value}", entry.group)


def _module_source(module_name: str, package: str) -> Source:
    if module_name == package or module_name.startswith(package + "."):
        return Source("built-in", module_name)
    if module_name in _PLUGIN_FILES:
        return Source("plugin file", str(_PLUGIN_FILES[module_name]))
    file = getattr(sys.modules.get(module_name), "__file__", None)
    return Source("module", f"{module_name} ({file})" if file else module_name)


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


class Registry(Generic[T]):
    """Classes registered under unique names, loaded lazily from a package and an entry-point group."""

    def __init__(self, kind: str, base: type, package: str, group: str) -> None:
        self.kind, self.base, self.package, self.group = kind, base, package, group
        self._classes: dict[str, type[T]] = {}
        self._sources: dict[str, Source] = {}
        self._conflicts: dict[str, list[Source]] = {}
        self._loaded = False
        self._importing: Source | None = None  # the entry point whose module is being imported
        self._pending: list[type] = []  # classes its decorators registered while that import ran

    # ---------------------------------------------------------------------------------------- registering

    def register(self, cls: type[T]) -> type[T]:
        """Register ``cls`` under ``cls.name``; usable as a class decorator.

        Raises ``DefinitionError`` for a class that cannot be registered as written and
        ``NameCollisionError`` for a name another class holds, each saying what to change.
        """
        self._check_class(cls, getattr(cls, "name", None), f"{cls!r}")
        if self._importing is not None:  # a decorator inside an entry point's import: settled once it ends
            self._pending.append(cls)
            return cls
        source = _module_source(cls.__module__, self.package)
        if source.kind != "built-in" and not self._loaded:
            self._load()  # a plugin's name is checked against every built-in and entry point, not only earlier ones
        if cls in self._classes.values():
            return cls  # already registered (its entry point imported it while loading)
        name = cls.name
        existing = self._classes.get(name)
        if existing is not None and _qualified(existing) != _qualified(cls):
            raise NameCollisionError(
                f"{self.kind} name '{name}' is claimed twice: by {_qualified(existing)} from "
                f"{self._sources[name]} and by {_qualified(cls)} from {source}; rename one of them")
        if name in self._conflicts:
            raise NameCollisionError(f"{self.kind} name '{name}' is already claimed by "
                                     f"{' and by '.join(map(str, self._conflicts[name]))}; choose another name")
        self._classes[name], self._sources[name] = cls, source
        return cls

    def _check_class(self, cls: object, name: object, label: str) -> None:
        """The class is a subclass of the base, its name a slug, its signature introspectable."""
        if not (isinstance(cls, type) and issubclass(cls, self.base)):
            raise DefinitionError(f"only {self.base.__name__} subclasses can be registered as {self.kind}s, "
                                  f"got {label}")
        if not isinstance(name, str) or not name:
            raise DefinitionError(f"{cls.__name__} needs a class attribute 'name' (a non-empty string)")
        if not NAME_PATTERN.fullmatch(name):
            raise DefinitionError(f"{self.kind} name {name!r} of {cls.__name__} is not a slug: use 1-64 lowercase "
                                  "letters, digits, '-' or '_', starting with a letter or digit (names become "
                                  "file names, so '/', '.' and spaces are refused)")
        cls.check_signature()

    def _claim_or_conflict(self, name: str, cls: type[T], source: Source) -> bool:
        """Register ``cls`` from an installed distribution, or record the name as ambiguous; True if registered."""
        if name in self._conflicts:
            if source not in self._conflicts[name]:
                self._conflicts[name].append(source)
            self._warn_conflict(name)
            return False
        existing = self._classes.get(name)
        if existing is not None and existing is not cls:
            self._conflicts[name] = [self._sources[name], source]
            del self._classes[name], self._sources[name]
            self._warn_conflict(name)
            return False
        if existing is None:
            self._classes[name], self._sources[name] = cls, source
        return True

    def _warn_conflict(self, name: str) -> None:
        warn_once(f"{self.kind} name '{name}' is claimed by {' and by '.join(map(str, self._conflicts[name]))}; "
                  f"'{name}' cannot be used until one is uninstalled or renamed (every other {self.kind} works)")

    # ---------------------------------------------------------------------------------------- loading

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        package = importlib.import_module(self.package)
        for info in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{self.package}.{info.name}")
        self._load_entry_points()

    def _entries(self) -> list[importlib.metadata.EntryPoint]:
        try:
            found = importlib.metadata.entry_points(group=self.group)
        except Exception as err:  # unreadable metadata of some installed package
            warn_once(f"could not read the installed {self.kind} plugins (entry-point group {self.group}): "
                      f"{type(err).__name__}: {err}")
            return []
        def dist_name(e: importlib.metadata.EntryPoint) -> str:
            return getattr(getattr(e, "dist", None), "name", "") or ""
        return sorted(found, key=lambda e: (e.name, dist_name(e), e.value))

    def _load_entry_points(self) -> None:
        for entry in self._entries():
            source = Source.of_entry_point(entry)
            self._importing, self._pending = source, []
            try:
                loaded = entry.load()
            except (Exception, SystemExit) as err:  # a broken third-party package is its problem, said once
                warn_once(f"skipped the {self.kind} plugin {source}: it failed to import "
                          f"({_describe(err)}); fix or uninstall that package")
                continue
            finally:
                self._importing = None
            try:
                self._register_entry(entry.name, loaded, source)
            except DefinitionError as err:
                warn_once(f"skipped the {self.kind} plugin {source}: {err}")
            for cls in self._pending:  # other classes its import registered keep their own names
                if cls is not loaded and cls not in self._classes.values():
                    self._claim_or_conflict(cls.name, cls, source)
            self._pending = []

    def _register_entry(self, key: str, cls: object, source: Source) -> None:
        """Register ``cls`` under the entry point's ``key`` (the key wins over the class's own ``name``)."""
        if not NAME_PATTERN.fullmatch(key):
            raise DefinitionError(f"its name '{key}' is not a slug: use 1-64 lowercase letters, digits, '-' or "
                                  "'_' (names become file names); rename the entry point")
        self._check_class(cls, key, f"{cls!r}; point the entry point at the {self.base.__name__} subclass")
        assert isinstance(cls, type)
        if self._classes.get(key) is cls:
            return  # the same class under the same name (a built-in listed again, or a second import)
        for name, other in list(self._classes.items()):
            if other is not cls:
                continue
            if self._sources[name].where == source.where and self._sources[name].kind == "distribution":
                del self._classes[name], self._sources[name]  # same package, registered on import: the key wins
            else:
                raise DefinitionError(f"{_qualified(cls)} is already registered as '{name}' by "
                                      f"{self._sources[name]}; a class has one name: register a subclass "
                                      f"under '{key}'")
        declared = getattr(cls, "name", None)
        if isinstance(declared, str) and declared and declared != key:
            warn_once(f"{self.kind} class {_qualified(cls)} says name = '{declared}' but {source} registers it "
                      f"as '{key}'; '{key}' is used (set name = '{key}' to silence this)")
        if self._claim_or_conflict(key, cls, source):
            cls.name = key  # records, cache keys and messages use the registered name

    # ---------------------------------------------------------------------------------------- looking up

    def names(self) -> list[str]:
        """Every usable name (ambiguous ones are in ``conflicts()``)."""
        self._load()
        return sorted(self._classes)

    def source(self, name: str) -> Source:
        """Where ``name`` came from."""
        self.get(name)
        return self._sources[name]

    def distributions_of(self, cls: type) -> tuple[str, ...]:
        """``name==version`` of the installed distribution(s) that registered ``cls`` (for cache keys); empty
        for built-ins, plugin files and classes never registered (their sources are hashed instead)."""
        return tuple(sorted({source.where for name, source in self._sources.items()
                             if self._classes.get(name) is cls and source.kind == "distribution"}))

    def conflicts(self) -> dict[str, list[Source]]:
        """Names claimed by more than one source, with every claimant."""
        self._load()
        return {name: list(sources) for name, sources in sorted(self._conflicts.items())}

    def get(self, name: str) -> type[T]:
        """The class registered as ``name``; unknown names raise with a did-you-mean suggestion."""
        self._load()
        if name in self._classes:
            return self._classes[name]
        if name in self._conflicts:
            raise NameCollisionError(
                f"{self.kind} '{name}' is claimed by {' and by '.join(map(str, self._conflicts[name]))}; uninstall "
                "one of them or rename its entry point")
        close = difflib.get_close_matches(name, list(self._classes), n=3, cutoff=0.5)
        hint = f"\nDid you mean: {', '.join(close)}?" if close else ""
        raise UnknownNameError(
            f"unknown {self.kind} '{name}'.{hint}\nKnown {self.kind}s: {', '.join(sorted(self._classes))} "
            f"(see `python -m bench list`)"
        )


def _describe(err: BaseException) -> str:
    if isinstance(err, SyntaxError):
        return f"SyntaxError in {err.filename} line {err.lineno}: {err.msg}"
    return f"{type(err).__name__}: {err}"


METHODS: Registry[Method] = Registry("method", Method, "methods", "bench.methods")
TASKS: Registry[Task] = Registry("task", Task, "tasks", "bench.tasks")


def register_method(cls: type[Method]) -> type[Method]:
    """Class decorator: make a ``Method`` subclass available by its ``name``."""
    return METHODS.register(cls)


def register_task(cls: type[Task]) -> type[Task]:
    """Class decorator: make a ``Task`` subclass available by its ``name``."""
    return TASKS.register(cls)


def load_plugin(path: str | Path) -> None:
    """Import a Python file that registers methods or tasks (``--plugin my_method.py``).

    The user named this file, so any problem with it stops the command (exit 2) with one sentence.
    """
    file = Path(path)
    if not file.is_file():
        raise BenchError(f"plugin file not found: {file}")
    module_name = f"bench_plugin_{file.stem}"
    spec = importlib.util.spec_from_file_location(module_name, file)
    if spec is None or spec.loader is None:
        raise BenchError(f"cannot import plugin {file}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    _PLUGIN_FILES[module_name] = file.resolve()
    try:
        spec.loader.exec_module(module)
    except SyntaxError as err:
        sys.modules.pop(module_name, None)
        raise BenchError(f"plugin {file} has a syntax error at line {err.lineno}: {err.msg}; fix the file "
                         "(or drop --plugin)") from None
    except BenchError as err:  # a registration problem: its message already says what to change
        sys.modules.pop(module_name, None)
        where = _plugin_frame(err, file)
        raise BenchError(f"plugin {file}{where}: {err}") from None
    except Exception as err:  # anything a plugin raises on import is the plugin's problem, told as such
        sys.modules.pop(module_name, None)
        where = _plugin_frame(err, file)
        raise BenchError(f"plugin {file} failed to import{where}: {type(err).__name__}: {err}; fix the file "
                         "(or drop --plugin)") from None


def _plugin_frame(err: BaseException, file: Path) -> str:
    """' (line N)' of the deepest traceback frame inside the plugin file, or ''."""
    frames = [f for f in traceback.extract_tb(err.__traceback__) if Path(f.filename).resolve() == file.resolve()]
    return f" (line {frames[-1].lineno})" if frames else ""
