"""The report survives bad records, never overwrites what it did not write, and never ranks apples with pears."""
from __future__ import annotations

import copy
import json

import pytest

from bench.cli import main
from bench.record import RECORD_SCHEMA
from bench.registry import METHODS
from bench.report.build import build_report
from bench.runner import RunSpec, run
from bench.atomic import write_json_atomic
from tasks.linear_gaussian import LinearGaussian

TASK = dict(n=30, d=20, n_val=20, trainer="sgd", train_steps=60)


def _record(method: str, n_models: int = 3, seed: int = 0) -> dict:
    return run(RunSpec(method=METHODS.get(method)(), task=LinearGaussian(**TASK), n_models=n_models, seed=seed))


@pytest.fixture(scope="module")
def good() -> dict[str, dict]:
    return {"noop": _record("noop"), "finetune": _record("finetune")}


@pytest.fixture
def results(tmp_path, good):
    folder = tmp_path / "results"
    write_json_atomic(folder / "lg" / "noop.json", good["noop"])
    write_json_atomic(folder / "lg" / "finetune.json", good["finetune"])
    return folder


def _page(results, tmp_path) -> str:
    return build_report(results, tmp_path / "site" / "index.html").read_text()


def test_bad_records_are_skipped_with_file_and_reason(results, tmp_path, good):
    bad = results / "bad"
    bad.mkdir()
    listy = copy.deepcopy(good["noop"])
    listy["metrics"] = [1, 2]
    write_json_atomic(bad / "list-for-dict.json", listy)
    huge = json.dumps(good["noop"]).replace('"n_models": 3', '"n_models": ' + "9" * 5000)
    (bad / "huge-int.json").write_text(huge)
    big_metric = copy.deepcopy(good["noop"])
    big_metric["metrics"]["klom"] = {"forget": {"mean": int("9" * 400)}}  # parses, too large for a float
    write_json_atomic(bad / "big-metric.json", big_metric)
    deep = copy.deepcopy(good["noop"])
    (bad / "deep.json").write_text(json.dumps(deep)[:-1] + ', "x": ' + "[" * 100_000 + "]" * 100_000 + "}")
    nested = copy.deepcopy(good["noop"])
    node = nested["task_report"] = {}
    for _ in range(200):
        node["a"] = {}
        node = node["a"]
    write_json_atomic(bad / "nested.json", nested)
    for schema in (1, 99):
        other = copy.deepcopy(good["noop"])
        other["schema"] = schema
        write_json_atomic(bad / f"schema-{schema}.json", other)
    (bad / "nan.json").write_text(json.dumps(good["noop"])[:-1] + ', "x": NaN}')
    page = _page(results, tmp_path)
    for name, reason in [("list-for-dict.json", "'metrics' should be dict, is list"),
                         ("huge-int.json", "not strict JSON"),
                         ("deep.json", "nested too deeply"),
                         ("nested.json", "nested deeper than 64 levels"),
                         ("schema-1.json", f"record of another schema (schema 1; this report reads schema {RECORD_SCHEMA})"),
                         ("schema-99.json", "schema 99"),
                         ("nan.json", "NaN is not JSON")]:
        assert name in page and reason.replace("'", "&#x27;") in page, name
    skipped = page.split('id="skipped"')[1].split("</section>")[0]
    assert "big-metric.json" not in skipped  # a too-large number is shown as missing, the record kept
    assert 'data-method="noop"' in page and 'data-method="finetune"' in page


def test_a_record_that_breaks_rendering_is_skipped_not_fatal(results, tmp_path, monkeypatch):
    import bench.report.columns as columns
    real = columns.columns_for

    def fragile(records):
        if any(r["method"]["name"] == "finetune" for r in records):
            raise TypeError("unsupported operand")
        return real(records)
    monkeypatch.setattr(columns, "columns_for", fragile)
    page = _page(results, tmp_path)
    assert "finetune.json" in page and "cannot be shown (TypeError: unsupported operand)" in page
    assert 'data-method="noop"' in page and 'data-method="finetune"' not in page


def test_records_with_different_n_are_never_one_table(results, tmp_path):
    write_json_atomic(results / "lg" / "noop-n4.json", _record("noop", n_models=4))
    page = _page(results, tmp_path)
    assert "N=3" in page and "N=4" in page
    sections = [s for s in page.split('<section class="group"')[1:]]
    assert len(sections) == 2 and all(("N=3" in s) != ("N=4" in s) for s in sections)


def test_identical_replicates_are_one_run_and_never_a_zero_interval(results, tmp_path, good):
    for i in range(3):
        write_json_atomic(results / "copies" / f"noop-copy{i}.json", good["noop"])
    page = _page(results, tmp_path)
    noop_row = page.split('data-method="noop"')[1].split("</tr>")[0]
    assert noop_row.count("<a ") == 1  # three copies of one run count once
    assert "\u00b10<" not in page and "\u00b10.0<" not in page


def test_report_out_refuses_records_folders_and_foreign_files(results, tmp_path, capsys, good):
    record = results / "lg" / "noop.json"
    before = record.read_text()
    assert main(["report", "--results", str(results), "--out", str(record)]) == 2
    assert "would write over the results folder's records" in capsys.readouterr().err
    assert record.read_text() == before
    folder = tmp_path / "a-folder"
    folder.mkdir()
    assert main(["report", "--results", str(results), "--out", str(folder)]) == 2
    assert "is a folder" in capsys.readouterr().err
    foreign = tmp_path / "notes.html"
    foreign.write_text("<p>my notes</p>")
    assert main(["report", "--results", str(results), "--out", str(foreign)]) == 2
    assert "is not an earlier report" in capsys.readouterr().err and foreign.read_text() == "<p>my notes</p>"
    assert main(["report", "--results", str(results), "--out", str(foreign), "--force"]) == 0
    capsys.readouterr()
    assert main(["report", "--results", str(results), "--out", str(foreign)]) == 0  # now it is ours
    outside = tmp_path / "copy.json"
    outside.write_text(before)
    assert main(["report", "--results", str(results), "--out", str(outside)]) == 2


def test_identical_values_get_no_interval():
    from bench.report.aggregate import aggregate
    cell = aggregate([0.25, 0.25, 0.25])
    assert cell.mean == 0.25 and cell.half is None and cell.kind == "identical" and cell.n == 3


def test_degenerate_groups_are_shown_but_not_ranked(tmp_path):
    folder = tmp_path / "results"
    for method in ("noop", "finetune"):
        record = run(RunSpec(method=METHODS.get(method)(), task=LinearGaussian(n=30, d=20, n_val=20), n_models=2))
        assert any("trainer=exact" in w for w in record["warnings"])
        write_json_atomic(folder / f"{method}.json", record)
    page = _page(folder, tmp_path)
    assert "Not ranked:" in page and "trainer=exact" in page and "Ranked by" not in page


def test_the_checked_in_example_report_counts_as_ours():
    """Pages written before the generator mark existed (reports/index.html) may still be rebuilt in place."""
    from pathlib import Path

    from bench.report.output import is_our_report
    assert is_our_report(Path(__file__).parents[1] / "reports" / "index.html")
