"""HTML of one group's section: task summary, ranking note, the table, the noise-floor standing, figures
and generated text."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from bench.report import columns as columns_module
from bench.report import floor_test
from bench.report.aggregate import Row, _params_text, floor_rows, method_rows, primary_column, rank
from bench.report.columns import Column, dig
from bench.report.group import Group
from bench.report.table import POINTS_MARK, esc, render_table

LEGEND = ("\u00b1: half-width of a 95% confidence interval. \u201ct over seeds\u201d: a row that averages "
          "several records (same method and parameters, different seeds) gets a Student-t interval over its records; "
          f"a single record gets none, except that ({POINTS_MARK}) its KLoM means carry \u00b11.96 standard errors "
          "of the per-example KLoM. Noise-floor rows (a second oracle ensemble) are pinned below the methods.")


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
    columns = columns_module.columns_for(records)  # through the module, so a test can replace it
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


