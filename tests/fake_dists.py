"""Installed-looking distributions for plugin tests: a ``*.dist-info`` folder (METADATA, entry_points.txt)
and the modules it points at, in a folder the test puts on ``sys.path``. ``importlib.metadata`` finds them
exactly as it finds a pip-installed package."""
from __future__ import annotations

import sys
import textwrap
from pathlib import Path

GROUP = "bench.test-methods"  # the tests' own entry-point group, so nothing really installed interferes

GOOD_METHOD = '''
from dataclasses import dataclass
from bench import Method
from bench.bounds import Steps
from bench.optim import clone

@dataclass(kw_only=True)
class {cls}(Method):
    """A third-party method (test fixture)."""
    {name_line}
    steps: Steps = 0

    def unlearn(self, model, ctx):
        return clone(model)
'''


def method_source(cls: str = "Plugin", name: str | None = None) -> str:
    """Source of a well-formed method class; ``name=None`` leaves out the class's ``name`` attribute."""
    return GOOD_METHOD.format(cls=cls, name_line=f"name = {name!r}" if name is not None else "")


def install(root: Path, dist: str, version: str, entries: list[str], modules: dict[str, str],
            group: str = GROUP) -> Path:
    """Write ``modules`` (name -> source) and a distribution ``dist==version`` whose entry points in ``group``
    are the lines ``entries`` (``key = module:attr``); return the folder to put on sys.path."""
    root.mkdir(parents=True, exist_ok=True)
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[{group}]\n" + "".join(f"{line}\n" for line in entries))
    for name, source in modules.items():
        path = root / (name.replace(".", "/") + ".py")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    return root


def forget_modules(*names: str) -> None:
    """Drop the fixture modules from sys.modules so the next test imports its own."""
    for name in list(sys.modules):
        if name in names or any(name.startswith(f"{n}.") for n in names):
            del sys.modules[name]
