"""Find the result records under a folder: parse strictly, validate against ``bench.record``, keep the rest
as skipped files with a reason (listed on the page, never fatal)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from bench.record import record_problem


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


