"""Where the report may be written: never over a result record, never over a file that is not an earlier
report of ours (unless ``--force``), never to a folder. The page is cheap to rebuild; a record is not.
"""
from __future__ import annotations

from pathlib import Path

from bench.errors import BenchError

#: the template's marker that identifies a page as one of our reports (and the title pages had before it)
GENERATOR_MARK = b'<meta name="generator" content="unlearning-bench report">'
LEGACY_MARK = b"<title>Unlearning benchmark leaderboard</title>"
_SNIFF_BYTES = 4096


def is_our_report(path: Path) -> bool:
    """Whether ``path`` starts like a page this report builder wrote."""
    try:
        with path.open("rb") as handle:
            head = handle.read(_SNIFF_BYTES)
        return GENERATOR_MARK in head or (head.startswith(b"<!DOCTYPE html>") and LEGACY_MARK in head)
    except OSError:
        return False


def check_report_target(out_path: Path, results_dir: Path, force: bool) -> None:
    """Refuse a target that would destroy something: a folder, a record, or a file we did not write."""
    if str(out_path).strip() in ("", "."):
        raise BenchError("report --out is empty; give an HTML file name, e.g. --out reports/index.html")
    if out_path.is_dir():
        raise BenchError(f"report --out {out_path} is a folder; give an HTML file name inside it, e.g. "
                         f"--out {out_path / 'index.html'}")
    target = out_path.resolve()
    results = results_dir.resolve()
    if target.suffix.lower() == ".json" and target.is_relative_to(results):
        raise BenchError(f"report --out {out_path} would write over the results folder's records; give an "
                         "HTML file outside them, e.g. --out reports/index.html")
    if target.exists() and not is_our_report(target):
        if not force:
            raise BenchError(f"report --out {out_path} exists and is not an earlier report; refusing to "
                             "overwrite it. Choose another file, or add --force to replace it")
    if out_path.parent.exists() and not out_path.parent.is_dir():
        raise BenchError(f"report --out {out_path}: {out_path.parent} is a file, not a folder")
