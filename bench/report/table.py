"""HTML of one leaderboard table: escaped cells with their intervals, sortable headers, record links."""
from __future__ import annotations

import html
import os
import urllib.parse
from pathlib import Path
from typing import Any

from bench.report import floor_test
from bench.report.aggregate import Cell, Row, _params_text
from bench.report.columns import Column, dig

POINTS_MARK = "\u2020"  # dagger: interval from the per-example values of a single record
FLOOR_TITLE = ("noise floor: a second, independently retrained oracle ensemble scored like a method; what a "
               "perfect method scores with this many models")


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


