"""The HTML leaderboard built from real records: grouping, aggregation, escaping, links, floor, CLI errors."""
from __future__ import annotations

import base64
import copy
import hashlib
import math
import re
import urllib.parse
from html.parser import HTMLParser
from pathlib import Path

import pytest

from bench.cli import main
from bench.registry import METHODS
from bench.report.aggregate import aggregate
from bench.report.build import build_report
from bench.report.figures import pareto_front
from bench.runner import RunSpec, run
from bench.atomic import write_json_atomic
from tasks.linear_gaussian import LinearGaussian

EVIL = "<script>alert(1)</script>"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
OTHER_VERSION = "999-hand-edited"  # a task version no real record has


def tiny_record(method: str, seed: int = 0, forget_ids: list[int] | None = None) -> dict:
    """A real record from the runner on a tiny linear-gaussian task with 4 models (sgd: models vary by seed, so
    the scores are not degenerate and the page ranks them)."""
    spec = RunSpec(method=METHODS.get(method)(), task=LinearGaussian(n=30, d=20, n_val=20, trainer="sgd",
                                                                    train_steps=60), n_models=4,
                   seed=seed, forget_ids=forget_ids)
    return run(spec)


def write_records(folder: Path, records: dict[str, dict]) -> None:
    for name, record in records.items():
        write_json_atomic(folder / name, record)


class PageParser(HTMLParser):
    """Just enough of the page's structure for assertions: boards, their headers and rows, links, images."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, dict] = {}
        self.links: list[str] = []
        self.images: list[str] = []
        self.ids: set[str] = set()
        self.scripts = 0
        self._table: dict | None = None
        self._row: dict | None = None
        self._cell: dict | None = None
        self._in_floor = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "script":
            self.scripts += 1
        elif tag == "img":
            self.images.append(a.get("src", ""))
        elif tag == "a" and a.get("href"):
            self.links.append(a["href"])
        elif tag == "table" and "board" in (a.get("class") or "").split():
            self._table = {"headers": [], "rows": [], "floor": []}
            self.tables[a["id"]] = self._table
        elif self._table is None:
            return
        elif tag == "tbody":
            self._in_floor = a.get("class") == "floor"
        elif tag == "tr" and "data-method" in a:
            self._row = {"method": a["data-method"], "cells": []}
            (self._table["floor"] if self._in_floor else self._table["rows"]).append(self._row)
        elif tag == "th" and "aria-sort" in a:
            self._table["headers"].append({"aria-sort": a["aria-sort"], "key": a.get("data-key"), "text": ""})
            self._cell = self._table["headers"][-1]
        elif tag in ("td", "th") and self._row is not None:
            self._cell = {"value": a.get("data-value"), "text": "", "ci": ""}
            self._row["cells"].append(self._cell)
        elif tag == "span" and a.get("class") == "ci" and self._cell is not None:
            self._cell["ci"] = a.get("title", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._table = None
        elif tag == "tr":
            self._row = None
        elif tag in ("td", "th"):
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell["text"] += data


def parse_page(text: str) -> PageParser:
    parser = PageParser()
    parser.feed(text)
    return parser


def column(table: dict, key: str) -> int:
    """Index of the column whose header has data-key ``key``."""
    return next(i for i, h in enumerate(table["headers"]) if h["key"] == key)


def table_methods(table: dict) -> list[str]:
    return [row["method"] for row in table["rows"]]


@pytest.fixture(scope="module")
def base_records() -> dict[str, dict]:
    """noop, retrain and gdga at seed 0, gdga again at seed 1 on the same forget set (aggregated)."""
    first = tiny_record("gdga")
    return {"lg/noop.json": tiny_record("noop"), "lg/retrain.json": tiny_record("retrain"),
            "lg/gdga-s0.json": first, "lg/gdga-s1.json": tiny_record("gdga", seed=1, forget_ids=first["forget_ids"])}


@pytest.fixture
def results(tmp_path: Path, base_records: dict[str, dict]) -> Path:
    folder = tmp_path / "results"
    write_records(folder, base_records)
    other = copy.deepcopy(base_records["lg/noop.json"])
    other["task"]["version"] = OTHER_VERSION
    write_json_atomic(folder / "lg-other-version" / "noop.json", other)
    (folder / "notes.json").write_text('{"not": "a record"}')
    (folder / "broken.json").write_text("{ truncated")
    return folder


@pytest.fixture
def page(results: Path, tmp_path: Path) -> tuple[Path, str]:
    out = tmp_path / "site" / "board" / "index.html"
    path = build_report(results, out)
    return path, path.read_text(encoding="utf-8")


def _group_tables(parsed: PageParser) -> dict[str, dict]:
    """Tables keyed 'real' (the runner's task version) and 'other' (the hand-edited version: noop only)."""
    return {("other" if table_methods(t) == ["noop"] else "real"): t for t in parsed.tables.values()}


def test_task_versions_are_never_mixed(page, base_records):
    path, text = page
    parsed = parse_page(text)
    assert len(parsed.tables) == 2
    tables = _group_tables(parsed)
    assert sorted(table_methods(tables["real"])) == ["gdga", "noop", "retrain"]
    assert table_methods(tables["other"]) == ["noop"]
    real = base_records["lg/noop.json"]["task"]["version"]
    assert f"linear-gaussian v{real} \u00b7" in text and f"linear-gaussian v{OTHER_VERSION} \u00b7" in text


def test_seeds_of_one_method_aggregate_with_a_t_interval(page, base_records):
    tables = _group_tables(parse_page(page[1]))
    [gdga] = [r for r in tables["real"]["rows"] if r["method"] == "gdga"]
    cost = gdga["cells"][column(tables["real"], "cost")]
    values = [base_records[f"lg/gdga-s{s}.json"]["timings"]["cost_relative_to_retrain"] for s in (0, 1)]
    assert math.isclose(float(cost["value"]), sum(values) / 2, rel_tol=1e-9)
    assert cost["ci"] == "95% t-interval over 2 records"
    assert gdga["cells"][2]["text"].split() == ["1", "2"]  # two record links


def test_rows_start_sorted_by_the_primary_metric(page):
    table = _group_tables(parse_page(page[1]))["real"]
    index = column(table, "klom.forget.mean")
    assert table["headers"][index]["aria-sort"] == "ascending"
    assert "Ranked by <strong>KLoM forget mean</strong> (lower is better)" in page[1]
    values = [float(r["cells"][index]["value"]) for r in table["rows"]]
    assert values == sorted(values) and table["rows"][0]["method"] == "retrain"


def test_noise_floor_row_is_present_and_labelled(page):
    for table in parse_page(page[1]).tables.values():
        [floor] = table["floor"]
        assert floor["method"] == "noise floor (N=4)"
        assert floor["cells"][column(table, "klom.forget.mean")]["value"] not in (None, "")
    assert "a second, independently retrained oracle ensemble" in page[1]


def test_record_links_are_relative_and_point_to_existing_files(page, results):
    path, text = page
    links = [link for link in parse_page(text).links if link.endswith(".json")]
    assert links and all(not link.startswith(("/", "file:")) for link in links)
    targets = {(path.parent / urllib.parse.unquote(link)).resolve() for link in links}
    assert all(t.is_file() for t in targets)
    assert targets == {p.resolve() for p in results.rglob("*.json")} - {
        (results / "notes.json").resolve(), (results / "broken.json").resolve()}


def test_skipped_files_are_listed(page):
    text = page[1]
    assert 'id="skipped"' in text
    assert "broken.json" in text and "not valid JSON" in text
    assert "notes.json" in text and "not a result record" in text


def test_figures_are_embedded_pngs_and_the_page_is_self_contained(page):
    parsed = parse_page(page[1])
    assert len(parsed.images) >= 2
    for src in parsed.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG_MAGIC)
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page[1])
    assert "provenance" in parsed.ids


def test_only_the_pages_own_script_may_run(page):
    text = page[1]
    assert text.count("<script") == 1
    script = re.search(r"<script>(.*?)</script>", text, re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}';" in text


def test_user_and_model_text_is_escaped(tmp_path, base_records):
    evil = copy.deepcopy(base_records["lg/gdga-s0.json"])
    evil["method"]["params"]["note"] = EVIL
    evil["task"]["label"] = EVIL
    stages = ("before_finetuning", "after_finetuning", "after_unlearning")
    evil["task_report"] = {"generations": {s: {"forget": [f"{s} {EVIL}"]} for s in stages},
                           "texts": {"forget": [f"said {EVIL}"]}}
    folder = tmp_path / "results"
    write_json_atomic(folder / "<img src=x onerror=alert(1)>.json", evil)
    (folder / "<script>bad.json").write_text("nope")
    text = build_report(folder, tmp_path / "index.html").read_text()
    assert "<script>alert" not in text.lower() and "<img src=x" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "after_unlearning &lt;script&gt;alert(1)&lt;/script&gt;" in text  # the generations table
    assert "&lt;img src=x onerror=alert(1)&gt;.json" in text and "&lt;script&gt;bad.json" in text
    assert text.count("<script") == 1


def test_rebuilding_adds_new_results(results, tmp_path, base_records):
    out = tmp_path / "index.html"
    before = parse_page(build_report(results, out).read_text())
    extra = copy.deepcopy(base_records["lg/gdga-s0.json"])
    extra["method"]["params"]["forget_weight"] = 0.5
    write_json_atomic(results / "lg" / "gdga-variant.json", extra)
    after = parse_page(build_report(results, out).read_text())
    rows = lambda p: sum(len(t["rows"]) for t in p.tables.values())  # noqa: E731
    assert rows(after) == rows(before) + 1
    assert "forget_weight=0.5" in out.read_text()


def test_aggregate_intervals():
    from scipy import stats
    cell = aggregate([1.0, 2.0, 4.0])
    assert cell.kind == "t" and math.isclose(cell.mean, 7 / 3)
    sd = stats.tstd([1.0, 2.0, 4.0])
    assert math.isclose(cell.half, stats.t.ppf(0.975, 2) * sd / math.sqrt(3))
    single = aggregate([0.5], [[0.0, 1.0, 0.5, 0.5]])
    assert single.kind == "points" and math.isclose(single.half, 1.96 * stats.tstd([0, 1, .5, .5]) / 2)
    assert aggregate([0.5]).half is None and aggregate([None]).mean is None


def test_pareto_front():
    assert pareto_front([(1.0, 5.0), (2.0, 6.0), (0.5, 9.0), (3.0, 1.0)]) == [(0.5, 9.0), (1.0, 5.0), (3.0, 1.0)]


def test_cli_report_writes_the_page(results, tmp_path, capsys):
    out = tmp_path / "cli" / "index.html"
    assert main(["report", "--results", str(results), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out) and out.is_file()


def test_cli_report_on_an_empty_folder_exits_2(tmp_path, capsys):
    empty = tmp_path / "nothing-here"
    empty.mkdir()
    assert main(["report", "--results", str(empty), "--out", str(tmp_path / "index.html")]) == 2
    err = capsys.readouterr().err
    assert "no result records found" in err and str(empty) in err and "python -m bench run" in err
    assert not (tmp_path / "index.html").exists()
