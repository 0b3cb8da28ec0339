"""General English that every machine has offline: the docstrings of Python's standard library.

A small GPT-2 must know some English before the Dave sentences are "new data" to it (paper 000 fine-tunes a
pretrained GPT-2), and this project cannot download one. Every Python installation ships the standard library's
source, and its docstrings are edited English prose. They are read with ``ast`` from the ``.py`` files rather than
imported with ``pydoc``/``inspect``: parsing runs no module code (``antigravity`` would open a browser, ``this``
prints), does not depend on which C extensions are built, and walks files in a fixed order.

Determinism: modules come from ``sys.stdlib_module_names`` (fixed per CPython version), sorted, files sorted
within packages, test and GUI packages skipped; paragraphs are the blank-line-separated parts of each docstring,
kept when they read as prose (no indented code, no doctest prompts, mostly letters). The same Python version
gives the same corpus; ``CorpusInfo.sha256`` says whether two machines agree.
"""
from __future__ import annotations

import ast
import hashlib
import platform
import sys
import sysconfig
from dataclasses import asdict, dataclass
from pathlib import Path

#: packages that are tests, GUIs, demos or vendored data rather than library documentation
SKIPPED = frozenset({"test", "idlelib", "lib2to3", "tkinter", "turtledemo", "turtle", "ensurepip", "pydoc_data",
                     "this", "antigravity", "distutils", "venv"})
MIN_PARAGRAPH_CHARS = 40


@dataclass(frozen=True)
class CorpusInfo:
    """What a pretrained model was trained on, recorded with it so others can check they have the same text."""

    python_version: str
    implementation: str
    files: int
    paragraphs: int
    characters: int
    sha256: str

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Corpus:
    paragraphs: tuple[str, ...]
    info: CorpusInfo


def stdlib_root() -> Path:
    """The folder holding the standard library's ``.py`` files."""
    return Path(sysconfig.get_paths()["stdlib"])


def module_files(root: Path) -> list[Path]:
    """Source files of the public standard-library modules, in a fixed order."""
    out: list[Path] = []
    for name in sorted(n for n in sys.stdlib_module_names if not n.startswith("_") and n not in SKIPPED):
        single, package = root / f"{name}.py", root / name
        if single.is_file():
            out.append(single)
        elif package.is_dir():
            out += [f for f in sorted(package.rglob("*.py"), key=lambda p: p.as_posix())
                    if not any(part.startswith("test") or part in SKIPPED for part in f.relative_to(root).parts[1:])]
    return out


def docstrings(source: str) -> list[str]:
    """Module, class and function docstrings of one file, in source order."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    nodes = [n for n in ast.walk(tree) if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef,
                                                         ast.AsyncFunctionDef))]
    nodes.sort(key=lambda n: getattr(n, "lineno", 0))
    return [d for d in (ast.get_docstring(n, clean=True) for n in nodes) if d]


def is_prose(paragraph: str) -> bool:
    """A paragraph of English sentences, not code, tables or argument lists."""
    lines = paragraph.splitlines()
    if len(paragraph) < MIN_PARAGRAPH_CHARS or any(line.startswith((" ", "\t", ">>>", "...")) for line in lines):
        return False
    letters = sum(c.isalpha() or c == " " for c in paragraph)
    return letters / len(paragraph) > 0.85 and paragraph.rstrip()[-1:] in ".:!?" and " " in paragraph


def prose_paragraphs(docstring: str) -> list[str]:
    """Blank-line-separated parts of a docstring that read as prose, each joined into one line."""
    parts = [p.strip() for p in docstring.replace("\r\n", "\n").split("\n\n")]
    return [" ".join(p.split()) for p in parts if p and is_prose(p)]


def gather(max_chars: int | None = None, root: Path | None = None) -> Corpus:
    """The prose paragraphs of every standard-library docstring, optionally only the first ``max_chars``."""
    root = stdlib_root() if root is None else root
    files = module_files(root)
    paragraphs: list[str] = []
    seen: set[str] = set()
    total = 0
    used = 0
    for path in files:
        if max_chars is not None and total >= max_chars:
            break
        used += 1
        for doc in docstrings(path.read_text(encoding="utf-8", errors="replace")):
            for paragraph in prose_paragraphs(doc):
                if paragraph in seen:  # inherited boilerplate ("Return self==value.") would dominate otherwise
                    continue
                seen.add(paragraph)
                paragraphs.append(paragraph)
                total += len(paragraph)
    if not paragraphs:
        raise RuntimeError(f"no docstrings found under {root}: is the standard library's source installed?")
    digest = hashlib.sha256("\n".join(paragraphs).encode("utf-8")).hexdigest()
    info = CorpusInfo(python_version=platform.python_version(), implementation=sys.implementation.name,
                      files=used, paragraphs=len(paragraphs), characters=total, sha256=digest)
    return Corpus(tuple(paragraphs), info)
