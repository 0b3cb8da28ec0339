"""The framework (bench/) imports no task or method module: tasks and methods reach it through registries."""
from __future__ import annotations

import re
from pathlib import Path

import bench

#: any import statement of tasks.* or methods.*, indented ones (inside functions, TYPE_CHECKING) included
FORBIDDEN = re.compile(r"^\s*(from|import)\s+(tasks|methods)(\.|\s|$)", re.MULTILINE)


def offending_lines(root: Path) -> list[str]:
    """``file:line: text`` of every forbidden import under ``root``."""
    found = []
    for file in sorted(root.rglob("*.py")):
        text = file.read_text(encoding="utf-8")
        for match in FORBIDDEN.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found.append(f"{file.relative_to(root.parent)}:{line}: {text.splitlines()[line - 1].strip()}")
    return found


def test_the_pattern_catches_top_level_and_indented_imports(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "a.py").write_text("from tasks.digits import Digits\n")
    (pkg / "b.py").write_text("def f():\n    import methods.gradient\n    from tasks import x\n")
    (pkg / "c.py").write_text('import tasksx\nfrom bench.registry import TASKS\nx = "from tasks import y"\n')
    assert [line.split(":")[0] for line in offending_lines(pkg)] == ["pkg/a.py", "pkg/b.py", "pkg/b.py"]


def test_bench_imports_no_task_or_method_module():
    root = Path(bench.__file__).resolve().parent
    assert offending_lines(root) == []
