"""Collect result records, aggregate them per task/forget set/version, render one self-contained HTML page.

Everything a record or a user provides (method parameters, generated text, file names, task labels) goes
through ``html.escape`` before it reaches the page, and the page's Content-Security-Policy allows only the
template's own inline script (by hash), so nothing smuggled into a record can run when the page is opened.
That script sorts a table when a header is clicked; a URL fragment ``#sort=<table-id>:<column-index>`` clicks
that header on load (deep links, and the headless-browser test, which has no other way to click).
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import html
import json
import math
import os
import re
import urllib.parse
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from bench.record import RECORD_SCHEMA
from bench.report import floor_test
from bench.report.output import check_report_target
from bench.atomic import write_atomic

Log = Callable[[str], None]
Getter = Callable[[dict], Any]

SPLITS = ("forget", "retain", "val")
TEMPLATE = Path(__file__).with_name("template.html")
REQUIRED = {"method": dict, "task": dict, "metrics": dict, "forget_ids": list, "n_models": int}
HIGHER_BETTER = {"accuracy", "forget_score", "final_score"}
POINTS_MARK = "\u2020"  # dagger: interval from the per-example values of a single record
FLOOR_TITLE = ("noise floor: a second, independently retrained oracle ensemble scored like a method; what a "
               "perfect method scores with this many models")
LEGEND = ("\u00b1: half-width of a 95% confidence interval. \u201ct over seeds\u201d: a row that averages "
          "several records (same method and parameters, different seeds) gets a Student-t interval over its records; "
          f"a single record gets none, except that ({POINTS_MARK}) its KLoM means carry \u00b11.96 standard errors "
          "of the per-example KLoM. Noise-floor rows (a second oracle ensemble) are pinned below the methods.")
EXTRA_FAMILIES = {"ulira": "U-LiRA", "population_mia": "population MIA"}


# ----------------------------------------------------------------------------------------------- loading

@dataclass(frozen=True)
class Loaded:
    """One result record and the file it came from."""

    path: Path
    record: dict


@dataclass(frozen=True)
class Skipped:
    """A *.json file that is not a readable result record, and why (listed on the page, never fatal)."""

    path: Path
    reason: str


#: optional fields the page reads, with the type they must have when present
OPTIONAL = {"seeds": dict, "timings": dict, "provenance": dict, "per_example": dict, "cache": dict,
            "task_report": dict, "protocol": str, "steps_used": list}
MAX_DEPTH = 64


def _depth(obj: Any, limit: int = MAX_DEPTH) -> int:
    """Nesting depth of ``obj``, counting no further than ``limit`` + 1 (iteratively: no recursion limit)."""
    deepest, stack = 0, [(obj, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
    return deepest


def record_problem(obj: Any) -> str | None:
    """Why ``obj`` is not a result record of the schema this page reads (None when it is one): the report
    must not crash on other JSON, on records of another schema, or on a record with a field of the wrong type."""
    if not isinstance(obj, dict):
        return "not a result record (the JSON is not an object)"
    if "method" not in obj or "task" not in obj:
        return "not a result record (it has no 'method' and 'task')"
    schema = obj.get("schema")
    if schema != RECORD_SCHEMA or isinstance(schema, bool):
        shown = "no schema field" if "schema" not in obj else f"schema {str(schema)[:20]!s}"
        return f"record of another schema ({shown}; this report reads schema {RECORD_SCHEMA}): rerun it to update"
    for key, kind in REQUIRED.items():
        value = obj.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            got = "missing" if key not in obj else type(value).__name__
            return f"malformed record: '{key}' should be {kind.__name__}, is {got}"
    for key, kind in OPTIONAL.items():
        if key in obj and obj[key] is not None and not isinstance(obj[key], kind):
            return f"malformed record: '{key}' should be {kind.__name__}, is {type(obj[key]).__name__}"
    if not isinstance(obj["method"].get("name"), str) or not isinstance(obj["task"].get("name"), str):
        return "malformed record: method or task has no name"
    if "version" not in obj["task"]:
        return "malformed record: the task has no version"
    if not isinstance(obj["method"].get("params", {}), dict) or not isinstance(obj["task"].get("params", {}), dict):
        return "malformed record: method or task params are not an object"
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in obj["forget_ids"]):
        return "malformed record: 'forget_ids' should be a list of integers"
    if not 1 <= obj["n_models"] <= 10**6:
        return f"malformed record: 'n_models' {str(obj['n_models'])[:20]} is out of range"
    if _depth(obj) > MAX_DEPTH:
        return f"malformed record: nested deeper than {MAX_DEPTH} levels"
    return None


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON (records write null for non-finite numbers)")


def load_records(results_dir: Path) -> tuple[list[Loaded], list[Skipped]]:
    """Every *.json under ``results_dir`` (recursively, sorted) that parses and looks like a result record."""
    loaded, skipped = [], []
    for path in sorted(p for p in results_dir.rglob("*.json") if p.is_file()):
        try:
            obj = json.loads(path.read_text(encoding="utf-8"), parse_constant=_refuse_constant)
        except (OSError, UnicodeDecodeError) as err:
            skipped.append(Skipped(path, f"unreadable: {err}"))
            continue
        except json.JSONDecodeError as err:
            skipped.append(Skipped(path, f"not valid JSON: {err}"))
            continue
        except RecursionError:
            skipped.append(Skipped(path, "not readable: nested too deeply"))
            continue
        except ValueError as err:  # e.g. an integer of thousands of digits, or a NaN literal
            skipped.append(Skipped(path, f"not strict JSON: {str(err)[:200]}"))
            continue
        problem = record_problem(obj)
        if problem:
            skipped.append(Skipped(path, problem))
        else:
            loaded.append(Loaded(path, obj))
    return loaded, skipped


# ---------------------------------------------------------------------------------------------- grouping

def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str)


def group_key(record: dict) -> str:
    """Records are comparable only with the same task name, version, parameters, forget set, protocol,
    scorer version (records without one were scored by version 1) and number of models N."""
    task = record["task"]
    metrics = record.get("metrics") if isinstance(record.get("metrics"), dict) else {}
    return _canonical([task["name"], str(task["version"]), task.get("params", {}), record["forget_ids"],
                       record.get("protocol", "independent"), metrics.get("scorer_version", 1),
                       record["n_models"]])


@dataclass
class Group:
    """All records of one (task, version, params, forget set, protocol): one leaderboard table."""

    key: str
    records: list[Loaded]

    @property
    def first(self) -> dict:
        return self.records[0].record

    @property
    def ident(self) -> str:
        return hashlib.sha1(self.key.encode()).hexdigest()[:10]


def group_records(loaded: Iterable[Loaded]) -> list[Group]:
    """Groups in a stable order: by task name, version, then first appearance."""
    groups: dict[str, Group] = {}
    for item in loaded:
        key = group_key(item.record)
        groups.setdefault(key, Group(key, [])).records.append(item)
    return sorted(groups.values(), key=lambda g: (g.first["task"]["name"], str(g.first["task"]["version"]),
                                                  len(g.first["forget_ids"]), g.key))


# ----------------------------------------------------------------------------------------------- columns

def dig(obj: Any, *keys: Any) -> Any:
    """obj[k1][k2]... or None where any level is missing (records differ in what they contain)."""
    for key in keys:
        if isinstance(obj, dict):
            obj = obj.get(key)
        elif isinstance(obj, list) and isinstance(key, int) and -len(obj) <= key < len(obj):
            obj = obj[key]
        else:
            return None
    return obj


def number(value: Any) -> float | None:
    """A finite float, or None (missing, null, NaN, infinite, or not a number at all)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        value = float(value)
    except OverflowError:  # an integer too large for a float is no score
        return None
    return value if math.isfinite(value) else None


def _value(*keys: Any) -> Getter:
    return lambda record: number(dig(record, *keys))


def _points(*keys: Any) -> Getter:
    def get(record: dict) -> list[float] | None:
        values = dig(record, *keys)
        if not isinstance(values, list):
            return None
        finite = [v for v in map(number, values) if v is not None]
        return finite or None
    return get


@dataclass(frozen=True)
class Column:
    """One metric column: how to read it from a record (and from the record's noise-floor entry)."""

    key: str
    label: str
    better: str | None  # "lower", "higher", or None where neither direction means better
    value: Getter
    floor: Getter | None = None
    points: Getter | None = None  # per-example values: the CI of a single record's mean
    floor_points: Getter | None = None


def _ordered_splits(names: Iterable[str]) -> list[str]:
    names = list(dict.fromkeys(names))
    return [s for s in SPLITS if s in names] + [s for s in names if s not in SPLITS]


def _klom_columns(records: list[dict]) -> list[Column]:
    splits = _ordered_splits(s for r in records for s in (dig(r, "metrics", "klom") or {}))
    columns = []
    for split in splits:
        for stat in ("mean", "p95", "p99"):
            mean = stat == "mean"
            columns.append(Column(
                f"klom.{split}.{stat}", f"KLoM {split} {stat}", "lower",
                _value("metrics", "klom", split, "unlearned", stat), _value("metrics", "klom", split, "floor", stat),
                _points("per_example", "klom", split) if mean else None,
                _points("per_example", "klom_floor", split) if mean else None))
    return columns


def _challenge_columns() -> list[Column]:
    path = ("metrics", "challenge")
    return [Column(f"challenge.{key}", label, better, _value(*path, key), _value(*path, "floor", key))
            for key, label, better in (("forget_score", "challenge forget score F", "higher"),
                                       ("final_score", "challenge final score", "higher"),
                                       ("epsilon_mean", "challenge \u03b5 mean", "lower"))]


def _utility_columns(records: list[dict]) -> list[Column]:
    splits = _ordered_splits(s for r in records for s in (dig(r, "metrics", "utility") or {}))
    columns = []
    for split in splits:
        names = dict.fromkeys(m for r in records for m in (dig(r, "metrics", "utility", split, "unlearned") or {}))
        for name in (n for n in names if n != "loss"):
            columns.append(Column(f"utility.{split}.{name}", f"{name} {split}",
                                  "higher" if name in HIGHER_BETTER else "lower",
                                  _value("metrics", "utility", split, "unlearned", name),
                                  _value("metrics", "utility", split, "floor", name)))
    return columns


def _language_columns(records: list[dict]) -> list[Column]:
    """Perplexity, ROUGE on the forget text and influence after unlearning (language tasks' task_report)."""
    stage = "after_unlearning"
    columns = []
    names = dict.fromkeys(n for r in records for n in (dig(r, "task_report", "perplexity", stage) or {}))
    for name in names:
        columns.append(Column(f"lm.perplexity.{name}", f"perplexity {name} (after unlearning)", "lower",
                              _value("task_report", "perplexity", stage, name)))
    scores = dict.fromkeys(k for r in records for k in (dig(r, "task_report", "rouge", stage, "forget") or {}))
    for key in scores:
        columns.append(Column(f"lm.rouge.{key}", f"{key} forget text (after unlearning)", None,
                              _value("task_report", "rouge", stage, "forget", key)))
    if any(number(dig(r, "task_report", "influence", stage)) is not None for r in records):
        columns.append(Column("lm.influence", "self-influence (after unlearning)", None,
                              _value("task_report", "influence", stage)))
    return columns


def _leaves(obj: Any, prefix: tuple = ()) -> list[tuple]:
    """Paths to the numeric leaves of a nested dict (for metric families whose shape may still change)."""
    if isinstance(obj, dict):
        return [p for k, v in obj.items() for p in _leaves(v, (*prefix, k))]
    return [prefix] if number(obj) is not None else []


def _is_score(key: Any) -> bool:
    """Attack scores (AUC, TPR at a fixed FPR), not bookkeeping such as model counts or spreads."""
    return str(key) == "auc" or str(key).startswith("tpr")


def _score_label(path: tuple) -> str:
    """'tpr_at_1pct_fpr' -> 'TPR @ 1% FPR'; 'auc' -> 'AUC'."""
    text = " ".join(map(str, path))
    match = re.fullmatch(r"(.*?)tpr_at_([0-9.]+)(pct_?)?fpr", text)
    if match:
        return f"{match.group(1)}TPR @ {match.group(2)}% FPR"
    return text.replace("auc", "AUC")


def _family_columns(records: list[dict]) -> list[Column]:
    """U-LiRA and population MIA, when a record computed them; a 'floor' sub-dict feeds the floor row."""
    columns = []
    for family, title in EXTRA_FAMILIES.items():
        paths = dict.fromkeys(p for r in records if isinstance(dig(r, "metrics", family), dict)
                              for p in _leaves(dig(r, "metrics", family)) if p[0] != "floor" and _is_score(p[-1]))
        for path in paths:
            columns.append(Column(f"{family}.{'/'.join(map(str, path))}", f"{title} {_score_label(path)}",
                                  None, _value("metrics", family, *path), _value("metrics", family, "floor", *path)))
    return columns


def columns_for(records: list[dict]) -> list[Column]:
    """The metric columns a group's records actually have values for, in reading order."""
    candidates = [*_klom_columns(records), *_challenge_columns(), *_utility_columns(records),
                  *_language_columns(records), *_family_columns(records),
                  Column("cost_evals", "cost in gradient evaluations relative to retraining", "lower",
                         _value("timings", "gradient_evals_relative_to_retrain")),
                  Column("cost", "wall-clock relative to retraining", "lower",
                         _value("timings", "cost_relative_to_retrain")),
                  Column("precompute_evals", "precompute (charged separately) in gradient evaluations relative to "
                         "retraining", "lower", _value("timings", "precompute_gradient_evals_relative_to_retrain"))]
    return [c for c in candidates if any(c.value(r) is not None or (c.floor and c.floor(r) is not None)
                                         for r in records)
            and (c.key != "precompute_evals" or any(c.value(r) for r in records))]


# ------------------------------------------------------------------------------------------- aggregation

@dataclass(frozen=True)
class Cell:
    """A mean with its 95% interval half-width; kind 't' (over records) or 'points' (one record's points)."""

    mean: float | None
    half: float | None = None
    kind: str = ""
    n: int = 0


def t_half_width(values: list[float]) -> float:
    """Half-width of the 95% t-interval of the mean (n >= 2)."""
    from scipy import stats
    n = len(values)
    return float(stats.t.ppf(0.975, n - 1) * np.std(values, ddof=1) / math.sqrt(n))


def aggregate(values: list[float | None], points: list[list[float] | None] | None = None) -> Cell:
    """Mean over records with a t-interval; for a single record, mean +- 1.96 SE of its per-example values."""
    finite = [v for v in values if v is not None]
    if not finite:
        return Cell(None)
    mean = float(np.mean(finite))
    if len(finite) >= 2 and max(finite) == min(finite):
        return Cell(mean, None, "identical", len(finite))  # no spread to estimate: not a +-0 interval
    if len(finite) >= 2:
        return Cell(mean, t_half_width(finite), "t", len(finite))
    per_point = next((p for v, p in zip(values, points or []) if v is not None), None)
    if per_point is not None and len(per_point) >= 2:
        se = float(np.std(per_point, ddof=1) / math.sqrt(len(per_point)))
        return Cell(mean, 1.96 * se, "points", 1)
    return Cell(mean, None, "", 1)


@dataclass
class Row:
    """One leaderboard line: a method with one parameter setting and N (or the noise floor at one N)."""

    label: str
    detail: str
    method: dict
    n_models: int
    records: list[Loaded]
    cells: dict[str, Cell] = field(default_factory=dict)
    floor: bool = False


def _params_text(params: dict) -> str:
    return ", ".join(f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}" for k, v in params.items())


def _distinguishing(params: dict, siblings: list[dict]) -> dict:
    """The parameters that differ between rows of the same method (the rest is in the row's tooltip)."""
    keys = {k for p in siblings for k in p}
    return {k: params.get(k) for k in sorted(keys) if len({_canonical(p.get(k)) for p in siblings}) > 1}


def _distinct_runs(records: list[Loaded]) -> list[Loaded]:
    """One record per run: copies of a record (same method, parameters and seeds) are replicates of the
    same computation, not independent evidence, so only the last one found counts."""
    runs: dict[str, Loaded] = {}
    for item in records:
        rec = item.record
        runs[_canonical([rec["method"], rec.get("seeds"), rec["n_models"]])] = item
    return list(runs.values())


def method_rows(records: list[Loaded], columns: list[Column]) -> list[Row]:
    """Aggregate records with the same method, parameters and N (different seeds) into one row each."""
    buckets: dict[tuple, list[Loaded]] = defaultdict(list)
    for item in _distinct_runs(records):
        method = item.record["method"]
        buckets[(method["name"], _canonical(method.get("params", {})), item.record["n_models"])].append(item)
    by_name: dict[str, list[dict]] = defaultdict(list)
    for name, params, _n in buckets:
        by_name[name].append(json.loads(params))
    rows = []
    for (name, params_json, n), items in buckets.items():
        params = json.loads(params_json)
        detail = _params_text(_distinguishing(params, by_name[name]))
        if len({n for (m, _p, n) in buckets if m == name}) > 1:
            detail = ", ".join(filter(None, [detail, f"N={n}"]))
        row = Row(name, detail, items[0].record["method"], n, items)
        recs = [i.record for i in items]
        for col in columns:
            row.cells[col.key] = aggregate([col.value(r) for r in recs],
                                           [col.points(r) for r in recs] if col.points else None)
        rows.append(row)
    return rows


def floor_rows(records: list[Loaded], columns: list[Column]) -> list[Row]:
    """The noise floor per N: scores of a second independent oracle ensemble, once per distinct ensemble.

    Every record of a group with the same N and seeds carries the same floor, so duplicates are dropped
    before averaging (otherwise identical copies would fake a zero-width interval).
    """
    sources: dict[int, dict[str, Loaded]] = defaultdict(dict)
    for item in records:
        rec = item.record
        if any(c.floor and c.floor(rec) is not None for c in columns):
            sources[rec["n_models"]].setdefault(_canonical(dig(rec, "seeds", "floor")), item)
    rows = []
    for n in sorted(sources):
        items = list(sources[n].values())
        recs = [i.record for i in items]
        row = Row(f"noise floor (N={n})", "second oracle ensemble", {"name": "noise floor", "params": {}}, n,
                  items, floor=True)
        for col in columns:
            if col.floor is not None:
                row.cells[col.key] = aggregate([col.floor(r) for r in recs],
                                               [col.floor_points(r) for r in recs] if col.floor_points else None)
        rows.append(row)
    return rows


def primary_column(columns: list[Column], rows: list[Row]) -> Column | None:
    """Mean KLoM on the forget split (lower is better); otherwise the first ranked metric with values."""
    have = [c for c in columns if any(r.cells.get(c.key, Cell(None)).mean is not None for r in rows)]
    preferred = [c for c in have if c.key == "klom.forget.mean"]
    ranked = [c for c in have if c.better]
    return (preferred or ranked or have or [None])[0]


def rank(rows: list[Row], primary: Column | None) -> list[Row]:
    """Best first by the primary metric; rows without a value go last."""
    if primary is None:
        return sorted(rows, key=lambda r: r.label)
    sign = -1.0 if primary.better == "higher" else 1.0

    def key(row: Row) -> tuple:
        mean = row.cells[primary.key].mean
        return (mean is None, sign * mean if mean is not None else 0.0, row.label, row.detail)
    return sorted(rows, key=key)


# ----------------------------------------------------------------------------------------------- helpers

def esc(value: Any) -> str:
    """HTML-escape anything shown on the page (quotes too, so it is safe inside attributes)."""
    return html.escape(str(value), quote=True)


def fmt(value: float | None) -> str:
    if value is None:
        return "\u2014"
    return f"{value:.4g}"


def record_href(path: Path, out_dir: Path) -> str:
    """Relative, URL-quoted link from the page's folder to a record, so it works opened from disk."""
    rel = os.path.relpath(path.resolve(), out_dir.resolve())
    return urllib.parse.quote(Path(rel).as_posix())


def display_path(path: Path, out_dir: Path) -> str:
    return Path(os.path.relpath(path.resolve(), out_dir.resolve())).as_posix()


# --------------------------------------------------------------------------------------------- rendering

def _header_cell(col: Column, index: int, primary: Column | None) -> str:
    direction = {"lower": "\u2193 better", "higher": "\u2191 better"}.get(col.better, "")
    interval = f"95% CI: t over seeds, {POINTS_MARK} SE over points" if col.points else "95% CI: t over seeds"
    sort = "ascending" if col is primary and col.better != "higher" else (
        "descending" if col is primary else "none")
    first = "descending" if col.better == "higher" else "ascending"
    return (f'<th scope="col" aria-sort="{sort}" data-col="{index}" data-first="{first}" data-key="{esc(col.key)}">'
            f'<button type="button">{esc(col.label)}<span class="sub">{esc(direction)}</span>'
            f'<span class="sub">{esc(interval)}</span></button></th>')


def _plain_header(label: str, index: int, sub: str = "") -> str:
    subs = f'<span class="sub">{esc(sub)}</span>' if sub else ""
    return (f'<th scope="col" aria-sort="none" data-col="{index}" data-first="ascending">'
            f'<button type="button">{esc(label)}{subs}</button></th>')


def _cell(cell: Cell | None) -> str:
    if cell is None or cell.mean is None:
        return '<td data-value="" class="na">\u2014</td>'
    ci = ""
    if cell.half is not None:
        mark = POINTS_MARK if cell.kind == "points" else ""
        title = ("mean over points \u00b1 1.96 SE of the per-example values (one record)" if cell.kind == "points"
                 else f"95% t-interval over {cell.n} records")
        ci = f' <span class="ci" title="{esc(title)}">\u00b1{esc(f"{cell.half:.2g}")}{mark}</span>'
    elif cell.kind == "identical":
        title = f"the same value in all {cell.n} records: their spread cannot be estimated, so no interval"
        ci = f' <span class="ci" title="{esc(title)}">(same in {cell.n})</span>'
    return f'<td data-value="{esc(repr(cell.mean))}">{esc(fmt(cell.mean))}{ci}</td>'


def _record_links(row: Row, out_dir: Path) -> str:
    links = []
    for i, item in enumerate(row.records, 1):
        seed = dig(item.record, "seeds", "base")
        title = f"{display_path(item.path, out_dir)} (seed {seed})"
        links.append(f'<a href="{esc(record_href(item.path, out_dir))}" title="{esc(title)}">'
                     f'{"json" if len(row.records) == 1 else i}</a>')
    return f'<td data-value="{len(row.records)}" class="links">{" ".join(links)}</td>'


def _row_html(row: Row, columns: list[Column], out_dir: Path, extra: str = "") -> str:
    params = row.method.get("params", {})
    codes = sorted({str(dig(i.record, "method", "code")) for i in row.records})
    title = FLOOR_TITLE if row.floor else f"{row.label}: {_params_text(params)} (code {', '.join(codes)})"
    detail = f'<span class="detail">{esc(row.detail)}</span>' if row.detail else ""
    cls = ' class="floor"' if row.floor else ""
    cells = "".join(_cell(row.cells.get(c.key)) for c in columns)
    return (f'<tr{cls} data-method="{esc(row.label)}"><th scope="row" data-value="{esc(row.label)} '
            f'{esc(row.detail)}" title="{esc(title)}"><span class="method">{esc(row.label)}</span>{detail}</th>'
            f'<td data-value="{row.n_models}">{row.n_models}</td>{_record_links(row, out_dir)}{cells}{extra}</tr>')


def render_table(table_id: str, columns: list[Column], rows: list[Row], floors: list[Row],
                 primary: Column | None, out_dir: Path, standing: list[str] | None = None) -> str:
    """The sortable leaderboard: method rows (sortable) and the pinned noise-floor rows; ``standing`` holds
    one 'rank vs noise floor' cell per method row (``bench.report.floor_test``)."""
    heads = [_plain_header("method", 0), _plain_header("N models", 1),
             _plain_header("records", 2, "raw JSON")]
    heads += [_header_cell(col, i + 3, primary) for i, col in enumerate(columns)]
    if standing is not None:
        heads.append(floor_test.header_html(len(columns) + 3))
    body = "".join(_row_html(r, columns, out_dir, standing[k] if standing else "") for k, r in enumerate(rows))
    pad = '<td data-value=""></td>' if standing is not None else ""
    floor_body = "".join(_row_html(r, columns, out_dir, pad) for r in floors)
    foot = f'<tbody class="floor">{floor_body}</tbody>' if floors else ""
    return (f'<div class="scroll"><table class="board" id="{esc(table_id)}">'
            f'<thead><tr>{"".join(heads)}</tr></thead><tbody class="methods">{body}</tbody>{foot}</table></div>')


def _task_summary(group: Group) -> str:
    rec = group.first
    task, ids = rec["task"], rec["forget_ids"]
    shown = ", ".join(map(str, ids[:12])) + (f", \u2026 ({len(ids)} in all)" if len(ids) > 12 else "")
    label = f'<p class="label">{esc(task.get("label"))}</p>' if task.get("label") else ""
    items = [("task", f"{task['name']} (version {task['version']})"),
             ("parameters", _params_text(task.get("params", {})) or "none"),
             ("training recipe", _params_text(task.get("recipe") or {}) or "n/a"),
             ("forget set", f"{len(ids)} ids: {shown}"),
             ("protocol", rec.get("protocol", "independent")),
             ("records", str(len(group.records)))]
    dl = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in items)
    return f'{label}<dl class="task">{dl}</dl>'


def _warnings_note(warnings: list[str]) -> str:
    if not warnings:
        return ""
    items = "".join(f"<li>{esc(w)}</li>" for w in warnings)
    return (f'<div class="warnings"><p><strong>Not ranked:</strong> these scores cannot tell methods apart '
            f'from each other or from the noise floor.</p><ul>{items}</ul></div>')


def _primary_note(primary: Column | None) -> str:
    if primary is None:
        return "<p class=\"primary\">No metric to rank by in these records.</p>"
    direction = {"lower": "lower is better", "higher": "higher is better"}.get(primary.better, "unranked")
    why = "" if primary.key == "klom.forget.mean" else " (mean KLoM on the forget split is not available)"
    return (f'<p class="primary">Ranked by <strong>{esc(primary.label)}</strong> ({esc(direction)}){esc(why)}. '
            "Click a column header to sort by it; click again to reverse.</p>")


def _generations(rows: list[Row]) -> str:
    """Before/after generated text for the forget sentence(s), one block of lines per method row."""
    lines = []
    for row in rows:
        item = next((i for i in row.records if isinstance(dig(i.record, "task_report", "generations"), dict)), None)
        if item is None:
            continue
        report = item.record["task_report"]
        stages = [_texts(dig(report, "generations", s, "forget"))
                  for s in ("before_finetuning", "after_finetuning", "after_unlearning")]
        originals = _texts(dig(report, "texts", "forget"))
        for i in range(max(map(len, [originals, *stages]), default=0)):
            cells = [_at(originals, i), *(_at(s, i) for s in stages)]
            label = f"{row.label} {row.detail}".strip()
            lines.append(f'<tr><th scope="row">{esc(label)}</th>'
                         + "".join(f"<td>{esc(printable(c))}</td>" for c in cells) + "</tr>")
    if not lines:
        return ""
    head = "".join(f'<th scope="col">{h}</th>' for h in ("method", "forget text", "before fine-tuning",
                                                         "after fine-tuning", "after unlearning"))
    return ('<h3>Generated text for the forget set (prompted with its first words, greedy)</h3>'
            f'<div class="scroll"><table class="gen"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(lines)}</tbody></table></div>')


def printable(text: str) -> str:
    """Generated text can hold control characters (invalid in HTML): show them as U+FFFD."""
    return re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", "\ufffd", text)


def _texts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value] if isinstance(value, list) else []


def _at(values: list[str], i: int) -> str:
    return values[i] if i < len(values) else ""


def _figure(uri: str | None, alt: str, caption: str) -> str:
    if not uri:
        return ""
    return (f'<figure><img src="{esc(uri)}" alt="{esc(alt)}"><figcaption>{esc(caption)}</figcaption></figure>')


def _row_label(row: Row) -> str:
    return f"{row.label} ({row.detail})" if row.detail else row.label


def _figures(rows: list[Row], floors: list[Row]) -> str:
    """KLoM-vs-cost with the Pareto front, per-example KLoM, epsilon histograms, iteration curves."""
    from bench.report import figures
    recs = {_row_label(r): [i.record for i in r.records] for r in rows}
    floor_recs = [i.record for i in floors[0].records] if floors else []
    parts = [
        _figure(figures.klom_vs_cost(recs, floor_recs), "KLoM against cost relative to retraining",
                "Average over forget/retain/val of the 99th-percentile KLoM against unlearning cost relative "
                "to retraining one model; the line joins the Pareto front (nothing cheaper is better); dashed: "
                "noise floor."),
        _figure(figures.klom_distributions(recs, floor_recs), "per-example KLoM per split and method",
                "Per-example KLoM on each split (all records of a row pooled), with the noise floor."),
        _figure(figures.epsilon_histograms(recs, floor_recs), "per-example epsilon histograms per method",
                "Per-example challenge \u03b5 on the forget set (paper 002), unlearned vs noise floor; \u03b5 at the "
                "cap of 50 (the two ensembles are perfectly separable) is the separate right-most bar."),
        _figure(figures.iteration_curves(recs), "metrics tracked during unlearning",
                "Metrics tracked during unlearning of model 0 (records that carry curves)."),
    ]
    body = "".join(parts)
    return f'<div class="figures">{body}</div>' if body else ""


def _standing(rows: list[Row], floors: list[Row]) -> list[str] | None:
    """Rank numbers that skip rows whose forget KLoM cannot be told apart from the noise floor."""
    if not floors:
        return None
    tests = [floor_test.floor_test([i.record for i in r.records]) for r in rows]
    return [floor_test.cell_html(n, t) for n, t in zip(floor_test.ranks(tests), tests)]


def render_group(group: Group, out_dir: Path) -> tuple[str, str]:
    """(section HTML, table-of-contents entry) for one comparable group of records."""
    records = [i.record for i in group.records]
    columns = columns_for(records)
    rows = method_rows(group.records, columns)
    floors = floor_rows(group.records, columns)
    warnings = sorted({w for r in records for w in (r.get("warnings") or []) if isinstance(w, str)})
    # degenerate scores cannot tell methods apart: show them, but do not rank by them
    primary = None if warnings else primary_column(columns, rows)
    rows = rank(rows, primary)
    standing = _standing(rows, floors) if primary is not None else None
    task = group.first["task"]
    title = (f"{task['name']} v{task['version']} \u00b7 forget set of {len(group.first['forget_ids'])} \u00b7 "
             f"{group.first.get('protocol', 'independent')} protocol \u00b7 scorer v"
             f"{(group.first.get('metrics') or {}).get('scorer_version', 1)} \u00b7 N={group.first['n_models']}")
    section_id, table_id = f"g-{group.ident}", f"t-{group.ident}"
    html_ = (f'<section class="group" id="{section_id}"><h2>{esc(title)}</h2>{_task_summary(group)}'
             f'{_warnings_note(warnings) or _primary_note(primary)}{render_table(table_id, columns, rows, floors, primary, out_dir, standing)}'
             f'<p class="legend">{LEGEND}</p>'
             f'{_figures(rows, floors)}{_generations(rows)}</section>')
    toc = (f'<li><a href="#{section_id}">{esc(title)}</a> '
           f'<span class="detail">{esc(_params_text(task.get("params", {})))}</span></li>')
    return html_, toc


def _distinct(values: Iterable[Any]) -> str:
    return ", ".join(sorted({str(v) for v in values if v is not None})) or "unknown"


def _as_dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def render_provenance(loaded: list[Loaded], out_dir: Path) -> str:
    """Versions, commits, hardware and dates across all records, then one line per record with its link."""
    provs = [_as_dict(i.record.get("provenance")) for i in loaded]
    commits = _distinct(f"{str(p.get('git_commit', 'unknown'))[:12]}{' (dirty)' if p.get('git_dirty') else ''}"
                        for p in provs)
    dates = sorted(str(p["date"]) for p in provs if p.get("date"))
    packages: dict[str, set] = defaultdict(set)
    for p in provs:
        for name, version in _as_dict(p.get("packages")).items():
            packages[name].add(str(version))
    hardware = _distinct(", ".join(f"{k}={v}" for k, v in _as_dict(p.get("hardware")).items()) for p in provs)
    summary = [("git commits", commits), ("dates", f"{dates[0]} \u2026 {dates[-1]}" if dates else "unknown"),
               ("python", _distinct(p.get("python") for p in provs)),
               ("platforms", _distinct(p.get("platform") for p in provs)), ("hardware", hardware),
               ("backends", _distinct(f"{p.get('backend')} x{p.get('workers')}" for p in provs if p.get("backend"))),
               *((f"package {n}", ", ".join(sorted(v))) for n, v in sorted(packages.items()))]
    dl = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in summary)
    lines = "".join(_provenance_row(i, out_dir) for i in loaded)
    head = "".join(f'<th scope="col">{h}</th>' for h in ("record", "task", "method", "N", "date", "commit",
                                                         "device", "run seconds", "from cache"))
    return (f'<dl class="prov">{dl}</dl><details><summary>All {len(loaded)} records</summary>'
            f'<div class="scroll"><table class="prov"><thead><tr>{head}</tr></thead><tbody>{lines}</tbody>'
            '</table></div></details>')


def _provenance_row(item: Loaded, out_dir: Path) -> str:
    rec, prov = item.record, item.record.get("provenance") or {}
    cache = ", ".join(f"{k} {v}" for k, v in (rec.get("cache") or {}).items())
    cells = [f"{rec['task']['name']} v{rec['task']['version']}", rec["method"]["name"], rec["n_models"],
             prov.get("date", "unknown"), str(prov.get("git_commit", "unknown"))[:12],
             dig(prov, "hardware", "device") or "unknown", fmt(number(dig(rec, "timings", "run_seconds"))), cache]
    link = (f'<a href="{esc(record_href(item.path, out_dir))}">{esc(display_path(item.path, out_dir))}</a>')
    return f"<tr><td>{link}</td>" + "".join(f"<td>{esc(c)}</td>" for c in cells) + "</tr>"


def render_skipped(skipped: list[Skipped], out_dir: Path) -> str:
    if not skipped:
        return ""
    items = "".join(f"<li><code>{esc(display_path(s.path, out_dir))}</code>: {esc(s.reason)}</li>" for s in skipped)
    return (f'<section class="skipped" id="skipped"><h2>Skipped files</h2><p>{len(skipped)} *.json file(s) under '
            f'the results folder are not readable result records and were left out:</p><ul>{items}</ul></section>')


# ---------------------------------------------------------------------------------------------- template

def script_hash(template: str) -> str:
    """CSP source for the template's one inline script, so no other script can run in the page."""
    match = re.search(r"<script>(.*?)</script>", template, re.S)
    if match is None:
        raise RuntimeError("the report template has no inline script")
    return "'sha256-" + base64.b64encode(hashlib.sha256(match.group(1).encode()).digest()).decode() + "'"


def fill(template: str, values: dict[str, str]) -> str:
    """Replace ``{{ name }}`` placeholders (values are already escaped HTML); unknown names are an error."""
    def sub(match: re.Match) -> str:
        name = match.group(1)
        if name not in values:
            raise KeyError(f"template placeholder {{{{ {name} }}}} has no value")
        return values[name]
    return re.sub(r"\{\{\s*([a-z_]+)\s*\}\}", sub, template)


def render_page(loaded: list[Loaded], skipped: list[Skipped], results_dir: Path, out_path: Path) -> str:
    out_dir = out_path.parent
    template = TEMPLATE.read_text(encoding="utf-8")
    sections, toc, unrenderable = render_groups(loaded, out_dir)
    if unrenderable:
        bad = {s.path for s in unrenderable}
        loaded = [item for item in loaded if item.path not in bad]
        skipped = [*skipped, *unrenderable]
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    return fill(template, {
        "script_hash": script_hash(template),
        "generated": esc(now),
        "results_dir": esc(display_path(results_dir, out_dir)),
        "n_records": str(len(loaded)),
        "n_groups": str(len(sections)),
        "toc": "".join(toc),
        "groups": "".join(sections),
        "skipped": render_skipped(skipped, out_dir),
        "provenance": render_provenance(loaded, out_dir),
    })


def _failure(err: Exception) -> str:
    return f"cannot be shown ({type(err).__name__}: {str(err)[:200]})"


def render_groups(loaded: list[Loaded], out_dir: Path) -> tuple[list[str], list[str], list[Skipped]]:
    """Every group's section; a record that breaks rendering is found (by rendering the group's records one at
    a time), listed as skipped with the reason, and the group rendered without it. One bad record must not
    take the page down with it."""
    sections, toc, bad = [], [], []
    for group in group_records(loaded):
        try:
            section, entry = render_group(group, out_dir)
        except Exception:  # noqa: BLE001 - the page must survive any malformed record
            good = []
            for item in group.records:
                try:
                    render_group(Group(group.key, [item]), out_dir)
                    good.append(item)
                except Exception as err:  # noqa: BLE001
                    bad.append(Skipped(item.path, _failure(err)))
            if not good:
                continue
            try:
                section, entry = render_group(Group(group.key, good), out_dir)
            except Exception as err:  # noqa: BLE001 - only their combination fails: skip them all, say so
                bad.extend(Skipped(i.path, f"its group {_failure(err)}") for i in good)
                continue
        sections.append(section)
        toc.append(entry)
    return sections, toc, bad


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
