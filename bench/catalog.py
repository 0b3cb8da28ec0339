"""Named, lazily imported entry points that live with the tasks: reproductions and contract probes.

The framework knows reproductions (``python -m bench reproduce NAME``) and probe tasks only by name. Each task
package registers ``name -> "module:function"`` when it is imported (the task registry imports every module of
``tasks``; the catalog does the same), and installed packages add their own through an entry-point group
(``bench.reproductions``: ``my-figure = my_pkg.figures:reproduce``). The target module is imported only when the
name is used, because reproductions pull in plotting and large models.
"""
from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import pkgutil
from typing import Callable

from bench.errors import NameCollisionError, UnknownNameError
from bench.registry import warn_once


class Catalog:
    """``name -> "module:attribute"`` (attribute defaults to ``default_attr``), filled on import of the packages."""

    def __init__(self, kind: str, group: str, packages: tuple[str, ...] = ("tasks",),
                 default_attr: str = "reproduce") -> None:
        self.kind, self.group, self.packages, self.default_attr = kind, group, packages, default_attr
        self._targets: dict[str, str] = {}
        self._loaded = False

    def register(self, name: str, target: str) -> None:
        """Claim ``name`` for ``target`` ("module" or "module:function"); a second, different claim fails."""
        existing = self._targets.get(name)
        if existing is not None and existing != target:
            raise NameCollisionError(f"{self.kind} name '{name}' is claimed by {existing} and by {target}; "
                                     "rename one of them")
        self._targets[name] = target

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for package_name in self.packages:
            package = importlib.import_module(package_name)
            for info in pkgutil.iter_modules(package.__path__):
                importlib.import_module(f"{package_name}.{info.name}")
        try:
            entries = importlib.metadata.entry_points(group=self.group)
        except Exception as err:  # unreadable metadata of some installed package
            warn_once(f"could not read the installed {self.kind} plugins ({self.group}): {err}")
            return
        for entry in sorted(entries, key=lambda e: (e.name, e.value)):
            try:
                self.register(entry.name, entry.value)
            except NameCollisionError as err:
                warn_once(f"skipped the {self.kind} plugin '{entry.name} = {entry.value}': {err}")

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        self._load()
        return sorted(self._targets)

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._targets

    def target(self, name: str) -> str:
        """The ``module:function`` registered as ``name``; unknown names raise with a did-you-mean hint."""
        self._load()
        if name not in self._targets:
            close = difflib.get_close_matches(name, list(self._targets), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise UnknownNameError(f"unknown {self.kind} '{name}'.{hint} Known: {', '.join(self.names())}")
        return self._targets[name]

    def get(self, name: str) -> Callable:
        """Import and return the callable registered as ``name``."""
        module, _, attr = self.target(name).partition(":")
        return getattr(importlib.import_module(module), attr or self.default_attr)


#: ``python -m bench reproduce NAME``: each target is ``reproduce(out, log, **options) -> summary``
REPRODUCTIONS = Catalog("reproduction", "bench.reproductions")
#: extra contract probes: each target is a function of no arguments returning a tiny ``Task``
PROBES = Catalog("probe", "bench.probes", default_attr="probe")


def register_reproduction(name: str, target: str) -> None:
    """Make ``python -m bench reproduce name`` run ``target`` ("module" or "module:function")."""
    REPRODUCTIONS.register(name, target)


def get_reproduction(name: str) -> Callable:
    """The reproduction registered as ``name`` (the CLI looks it up here, so tests can replace it)."""
    return REPRODUCTIONS.get(name)
