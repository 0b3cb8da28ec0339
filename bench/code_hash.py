"""A fingerprint of the code behind a class, for cache keys: its module, the local modules it imports, and
the version of the distribution that ships it.

Editing ``methods/toolkit.py`` changes what ``methods/ssd.py`` computes, so the key of a cached unlearned
model must cover every module of the method's own package that its module imports, transitively, and not
only its own file. "Local" means: the same top-level package (``methods.ssd`` -> ``methods.*``); for a
module outside any package (a ``--plugin`` file, a loose ``my_method.py``), the modules and packages beside
it in its folder (none when that folder is site-packages). The ``bench`` framework is never the method's
code (built-ins do not hash it either). Imports are read from the source with ``ast`` (every ``import``
statement, also inside functions); locality is decided from the top-level name before anything is looked
up, so no foreign module is imported, and each file's scan is memoised by path, size and mtime: a few
milliseconds, the same on every machine with the same sources. Not seen: modules imported by computed
names (``importlib.import_module(name)``).
"""
from __future__ import annotations

import ast
import hashlib
import importlib.util
import inspect
import site
import sys
import sysconfig
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

__all__ = ["CodeFingerprint", "code_fingerprint", "code_hash", "local_modules"]

#: the framework a method is written against, not the method's code
FRAMEWORK = "bench"


@dataclass(frozen=True)
class CodeFingerprint:
    """The modules (name -> sha256 of the file) and distributions (``name==version``) behind a class."""

    modules: dict[str, str]
    distributions: tuple[str, ...]

    def digest(self) -> str:
        h = hashlib.sha256()
        for name in sorted(self.modules):
            h.update(f"{name}\0{self.modules[name]}\n".encode())
        for dist in self.distributions:
            h.update(f"dist\0{dist}\n".encode())
        return h.hexdigest()[:16]


_SCANS: dict[tuple[str, int, int], tuple[str, tuple[tuple[str, tuple[str, ...], int], ...]]] = {}


def _scan(path: Path) -> tuple[str, tuple[tuple[str, tuple[str, ...], int], ...]]:
    """(sha256 of the file, its imports as (module, imported names, relative level)), memoised by stat."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _SCANS:
        data = path.read_bytes()
        imports: list[tuple[str, tuple[str, ...], int]] = []
        if path.suffix == ".py":
            try:
                tree = ast.parse(data, filename=str(path))
            except (SyntaxError, ValueError):
                tree = None
            for node in ast.walk(tree) if tree is not None else ():
                if isinstance(node, ast.Import):
                    imports.extend((alias.name, (), 0) for alias in node.names)
                elif isinstance(node, ast.ImportFrom):
                    imports.append((node.module or "", tuple(a.name for a in node.names), node.level))
        _SCANS[key] = (hashlib.sha256(data).hexdigest(), tuple(imports))
    return _SCANS[key]


def _file_of(module: str) -> Path | None:
    """The file a module is (or would be) loaded from, without importing it where it is not imported yet."""
    loaded = sys.modules.get(module)
    file = getattr(loaded, "__file__", None) if loaded is not None else None
    if file is None:
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError, AttributeError):
            return None
        file = spec.origin if spec is not None and spec.has_location else None
    return Path(file) if file and Path(file).is_file() else None


def _is_package(file: Path) -> bool:
    return file.stem == "__init__"


def _resolve(module: str, level: int, importer: str, importer_file: Path) -> str | None:
    """The absolute module name of ``from <level dots><module> import ...`` inside ``importer``."""
    if level == 0:
        return module
    package = importer if _is_package(importer_file) else importer.rpartition(".")[0]
    parts = package.split(".") if package else []
    if level - 1 > len(parts):
        return None
    base = ".".join(parts[: len(parts) - (level - 1)])
    return f"{base}.{module}" if base and module else (base or module or None)


@lru_cache(maxsize=1)
def _install_dirs() -> frozenset[Path]:
    """Folders where installed distributions live: a loose module there has no local siblings."""
    dirs = {sysconfig.get_paths().get(key) for key in ("purelib", "platlib")}
    try:
        dirs |= set(site.getsitepackages()) | {site.getusersitepackages()}
    except AttributeError:  # some virtualenvs' site module lacks these
        pass
    return frozenset(Path(d).resolve() for d in dirs if d)


def _top(module: str) -> str:
    return module.partition(".")[0]


def _locality(root: str, root_file: Path) -> Callable[[str], bool]:
    """A predicate on module names: is this module local to ``root``? Decided by its top-level name alone,
    so nothing outside the local code is ever looked up (a lazy ``import transformers`` stays unimported)."""
    if "." in root or _is_package(root_file):
        top = _top(root)
        return lambda module: _top(module) == top
    folder = root_file.resolve().parent
    if folder in _install_dirs():  # an installed single-module distribution: only itself
        return lambda module: module == root
    foreign = set(sys.stdlib_module_names) | set(sys.builtin_module_names) | {FRAMEWORK}
    verdicts: dict[str, bool] = {root: True}

    def local(module: str) -> bool:
        top = _top(module)
        if top not in verdicts:
            top_file = None if top in foreign else _file_of(top)
            verdicts[top] = top_file is not None and (
                top_file.resolve().parent.parent if _is_package(top_file) else top_file.resolve().parent) == folder
        return verdicts[top]
    return local


def local_modules(module: str) -> dict[str, Path]:
    """``module`` and every local module it imports, transitively: name -> file."""
    root_file = _file_of(module)
    if root_file is None:
        return {}
    local = _locality(module, root_file)
    found: dict[str, Path] = {module: root_file}
    todo = [module]
    while todo:
        name = todo.pop()
        for target, names, level in _scan(found[name])[1]:
            base = _resolve(target, level, name, found[name])
            if base is None or not local(base):
                continue
            base_file = _file_of(base)
            if base_file is None:
                continue
            attrs = [n for n in names if n != "*"]
            subs = [f"{base}.{n}" for n in attrs] if _is_package(base_file) else []
            subs = [c for c in subs if _file_of(c) is not None]
            wanted = subs + ([base] if not names or "*" in names or len(subs) < len(attrs) else [])
            for candidate in wanted:
                if candidate not in found:
                    found[candidate] = base_file if candidate == base else _file_of(candidate)
                    todo.append(candidate)
    return found


def code_fingerprint(cls: type, distributions: tuple[str, ...] = ()) -> CodeFingerprint:
    """Every local module behind ``cls``, hashed, plus ``distributions`` (``name==version`` of the installed
    package that ships it, which the registry knows from the entry point)."""
    modules = {name: _scan(file)[0] for name, file in local_modules(cls.__module__).items()}
    if not modules:  # defined interactively or in a frame without a file: its own source, or its name
        try:
            text = inspect.getsource(cls)
        except (OSError, TypeError):
            text = cls.__qualname__
        modules = {cls.__module__: hashlib.sha256(text.encode()).hexdigest()}
    return CodeFingerprint(modules, tuple(sorted(distributions)))


def code_hash(cls: type, distributions: tuple[str, ...] = ()) -> str:
    """A short hex digest of ``code_fingerprint(cls, distributions)``."""
    return code_fingerprint(cls, distributions).digest()
