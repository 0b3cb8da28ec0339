"""The whole page: every group's section (a record that breaks rendering is skipped, not fatal), the skipped
files, provenance across records, filled into the template with its script pinned by a CSP hash."""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable

from bench.report import section as group_section
from bench.report.columns import dig, number
from bench.report.group import Group, group_records
from bench.report.load import Loaded, Skipped
from bench.report.table import display_path, esc, fmt, record_href

TEMPLATE = Path(__file__).with_name("template.html")


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
            section, entry = group_section.render_group(group, out_dir)
        except Exception:  # noqa: BLE001 - the page must survive any malformed record
            good = []
            for item in group.records:
                try:
                    group_section.render_group(Group(group.key, [item]), out_dir)
                    good.append(item)
                except Exception as err:  # noqa: BLE001
                    bad.append(Skipped(item.path, _failure(err)))
            if not good:
                continue
            try:
                section, entry = group_section.render_group(Group(group.key, good), out_dir)
            except Exception as err:  # noqa: BLE001 - only their combination fails: skip them all, say so
                bad.extend(Skipped(i.path, f"its group {_failure(err)}") for i in good)
                continue
        sections.append(section)
        toc.append(entry)
    return sections, toc, bad


