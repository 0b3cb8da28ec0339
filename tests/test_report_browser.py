"""The leaderboard as a browser shows it: headless Chromium runs the page's script, sorts, screenshots.

Driven with Chromium's own flags only (--dump-dom, --screenshot): the page's ``#sort=<table-id>:<column>``
fragment clicks a header on load, so sorting is checked without a DevTools client. Skipped when Chromium
is missing on a developer machine; under CI (which installs Debian's chromium in .ci/run) it must exist.
"""
from __future__ import annotations

import base64
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from bench.report.build import build_report
from bench.atomic import write_json_atomic
from test_report import PNG_MAGIC, column, parse_page, table_methods, tiny_record

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="module")
def chromium() -> str:
    found = shutil.which("chromium") or next((p for p in ("/usr/bin/chromium",) if os.access(p, os.X_OK)), None)
    if found:
        return found
    if _in_ci():
        pytest.fail("chromium is not installed but CI is set: .ci/run must install Debian's chromium")
    pytest.skip("chromium is not installed (apt-get install -y chromium); the browser test needs it")


def browse(chromium: str, profile: Path, url: str, *args: str) -> subprocess.CompletedProcess:
    """One headless Chromium run on ``url`` with a fresh profile folder."""
    command = [chromium, *FLAGS, f"--user-data-dir={profile}", *args, url]
    result = subprocess.run(command, capture_output=True, timeout=90)
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-2000:]
    return result


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    """A page from a small real run: noop, retrain and gdga on a tiny linear-gaussian task, 4 models each."""
    root = tmp_path_factory.mktemp("browser")
    for method in ("noop", "retrain", "gdga"):
        write_json_atomic(root / "results" / f"{method}.json", tiny_record(method))
    return build_report(root / "results", root / "site" / "index.html")


def dump_dom(chromium: str, tmp_path: Path, url: str) -> str:
    return browse(chromium, tmp_path / "profile", url, "--dump-dom").stdout.decode()


def test_page_renders_tables_figures_and_provenance(chromium, report, tmp_path):
    dom = parse_page(dump_dom(chromium, tmp_path, report.as_uri()))
    [table] = dom.tables.values()
    assert sorted(table_methods(table)) == ["gdga", "noop", "retrain"]
    assert [r["method"] for r in table["floor"]] == ["noise floor (N=4)"]
    assert dom.images
    for src in dom.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG_MAGIC)
    assert "provenance" in dom.ids


def test_header_click_sorts_rows_and_sets_aria_sort(chromium, report, tmp_path):
    [(table_id, before)] = parse_page(report.read_text()).tables.items()
    cost = column(before, "cost")
    primary = column(before, "klom.forget.mean")
    after = parse_page(dump_dom(chromium, tmp_path, f"{report.as_uri()}#sort={table_id}:{cost}")).tables[table_id]
    assert after["headers"][cost]["aria-sort"] == "ascending"
    assert after["headers"][primary]["aria-sort"] == "none"
    values = [float(r["cells"][cost]["value"]) for r in after["rows"]]
    assert values == sorted(values)
    assert table_methods(after) != table_methods(before)  # the click really reordered the rows
    # clicking the already-ascending primary column reverses it
    again = parse_page(dump_dom(chromium, tmp_path, f"{report.as_uri()}#sort={table_id}:{primary}")).tables[table_id]
    assert again["headers"][primary]["aria-sort"] == "descending"
    kloms = [float(r["cells"][primary]["value"]) for r in again["rows"]]
    assert kloms == sorted(kloms, reverse=True)


def test_screenshot(chromium, report, tmp_path):
    folder = Path(os.environ.get("BENCH_TEST_ARTIFACTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    shot = folder / "report-screenshot.png"
    shot.unlink(missing_ok=True)
    browse(chromium, tmp_path / "profile", report.as_uri(), f"--screenshot={shot}", "--window-size=1280,2000")
    data = shot.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 50_000
