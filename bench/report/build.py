"""``python -m bench report``: collect result records, aggregate them per task/forget set/version, write one
self-contained HTML page atomically.

The steps live in one module each: ``load`` (find and validate records), ``group`` (which records share a
table), ``columns`` (metric columns from declarations), ``aggregate`` (rows, intervals, ranking), ``table``,
``section`` and ``page`` (HTML). Everything a record or a user provides (method parameters, generated text, file
names, task labels) goes through ``html.escape`` before it reaches the page, and the page's
Content-Security-Policy allows only the template's own inline script (by hash), so nothing smuggled into a
record can run when the page is opened. That script sorts a table when a header is clicked; a URL fragment
``#sort=<table-id>:<column-index>`` clicks that header on load (deep links, and the headless-browser test,
which has no other way to click).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from bench.atomic import write_atomic
from bench.report.load import load_records
from bench.report.output import check_report_target
from bench.report.page import render_page

Log = Callable[[str], None]


def build_report(results_dir: str | Path, out_path: str | Path, log: Log = lambda _msg: None,
                 force: bool = False) -> Path:
    """Read every record under ``results_dir`` and write the leaderboard page atomically to ``out_path``."""
    from bench.errors import BenchError
    results_dir, out_path = Path(results_dir), Path(out_path)
    how = (f"create some with e.g. `python -m bench run --method noop --task linear-gaussian --n-models 3 "
           f"--out {results_dir}`")
    if not results_dir.is_dir():
        raise BenchError(f"results folder '{results_dir}' does not exist; {how}")
    check_report_target(out_path, results_dir, force)
    loaded, skipped = load_records(results_dir)
    if not loaded:
        extra = f" ({len(skipped)} *.json file(s) there are not result records)" if skipped else ""
        raise BenchError(f"no result records found under '{results_dir}' (searched recursively for *.json)"
                         f"{extra}; {how}")
    log(f"report: {len(loaded)} records, {len(skipped)} skipped, from {results_dir}")
    page = render_page(loaded, skipped, results_dir, out_path)
    path = write_atomic(out_path, page.encode("utf-8"))
    _readable(path)
    return path


def _readable(path: Path) -> None:
    """The atomic write's temporary file is private (0600); a report is for sharing: 0666 minus the umask."""
    umask = os.umask(0)
    os.umask(umask)
    path.chmod(0o666 & ~umask)
