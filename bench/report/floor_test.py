"""Which leaderboard rows can be told apart from the noise floor, by a paired bootstrap over examples.

The noise floor is what a perfect method scores at this N: a second oracle ensemble scored against the same
oracles. A method whose forget-set KLoM is within the floor's own noise is not 'better' or 'worse' than
another such method in any sense the data supports, so the report does not give it a rank; it says why.

Test, per row: per forget example j, the difference d_j = KLoM_method(j) - KLoM_floor(j) (the same points,
scored against the same oracle ensemble, so the pair is matched; a row of several records averages d_j over
them). Resample the examples with replacement ``BOOTSTRAP`` times (seeded) and take the 2.5th and 97.5th
percentiles of the mean difference. If that 95% interval contains 0 the row cannot be told apart from the
floor. With fewer than ``MIN_EXAMPLES`` examples, or no per-example KLoM, the test is not made and the row keeps
its rank (the page says so).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

BOOTSTRAP = 2000
MIN_EXAMPLES = 5
SEED = 0
SPLIT = "forget"


@dataclass(frozen=True)
class FloorTest:
    """The outcome for one row: the mean paired difference to the floor and its bootstrap interval."""

    tested: bool
    distinguishable: bool
    difference: float | None = None
    low: float | None = None
    high: float | None = None
    examples: int = 0
    reason: str = ""


def _finite_list(value: Any) -> np.ndarray | None:
    if not isinstance(value, list) or not value:
        return None
    try:
        arr = np.asarray([float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan
                          for v in value], dtype=np.float64)
    except OverflowError:
        return None
    return arr


def paired_differences(records: list[dict], split: str = SPLIT) -> np.ndarray | None:
    """Per-example KLoM(method) - KLoM(floor), averaged over the records (None when any record lacks them,
    their lengths differ, or no example has both values finite)."""
    rows = []
    for record in records:
        per = record.get("per_example") if isinstance(record, dict) else None
        if not isinstance(per, dict):
            return None
        mine = _finite_list((per.get("klom") or {}).get(split) if isinstance(per.get("klom"), dict) else None)
        floor = _finite_list((per.get("klom_floor") or {}).get(split) if isinstance(per.get("klom_floor"), dict)
                             else None)
        if mine is None or floor is None or len(mine) != len(floor):
            return None
        rows.append(mine - floor)
    if not rows or len({len(r) for r in rows}) != 1:
        return None
    diff = np.mean(np.stack(rows), axis=0)
    diff = diff[np.isfinite(diff)]
    return diff if diff.size else None


def bootstrap_interval(diff: np.ndarray, *, draws: int = BOOTSTRAP, seed: int = SEED) -> tuple[float, float]:
    """95% percentile interval of the mean of ``diff`` under resampling of its entries with replacement."""
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, diff.size, size=(draws, diff.size))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def floor_test(records: list[dict], split: str = SPLIT) -> FloorTest:
    """Can this row's ``split`` KLoM be told apart from the noise floor's? (see the module docstring)"""
    diff = paired_differences(records, split)
    if diff is None:
        return FloorTest(False, True, reason="no per-example KLoM with a noise floor: not tested against it")
    if diff.size < MIN_EXAMPLES:
        return FloorTest(False, True, examples=int(diff.size),
                         reason=f"only {diff.size} {split} examples: too few to test against the noise floor")
    low, high = bootstrap_interval(diff)
    mean = float(diff.mean())
    inside = low <= 0.0 <= high
    reason = (f"{split} KLoM minus the noise floor's: {mean:+.3g}, 95% bootstrap interval over {diff.size} "
              f"examples [{low:.3g}, {high:.3g}]")
    if inside:
        reason = f"cannot be told apart from the noise floor: {reason} contains 0"
    return FloorTest(True, not inside, mean, low, high, int(diff.size), reason)


def ranks(tests: list[FloorTest]) -> list[int | None]:
    """Rank numbers in the given (already sorted) order, skipping rows indistinguishable from the floor."""
    out, next_rank = [], 1
    for test in tests:
        if test.distinguishable:
            out.append(next_rank)
            next_rank += 1
        else:
            out.append(None)
    return out


# ----------------------------------------------------------------------------------------------- rendering

def header_html(index: int) -> str:
    """The leaderboard column header (sortable like the others, by the rank number)."""
    from html import escape
    sub = "unranked when the 95% interval of KLoM minus the floor's contains 0"
    return (f'<th scope="col" aria-sort="none" data-col="{index}" data-first="ascending" data-key="floor-test">'
            f'<button type="button">rank vs noise floor<span class="sub">{escape(sub)}</span></button></th>')


def cell_html(rank: int | None, test: FloorTest) -> str:
    """'3' with the interval as a tooltip, or 'unranked' with the reason on the page."""
    from html import escape
    if not test.tested:
        shown = str(rank) if rank is not None else "\u2014"
        return f'<td data-value="{rank if rank is not None else ""}" title="{escape(test.reason)}">{shown} ' \
               f'<span class="ci">(not tested)</span></td>'
    if rank is None:
        return (f'<td data-value="" class="unranked" title="{escape(test.reason)}">unranked: '
                f'<span class="detail">{escape(test.reason)}</span></td>')
    return (f'<td data-value="{rank}" title="{escape(test.reason)}">{rank} <span class="ci">'
            f'({escape(f"{test.difference:+.3g}")} [{escape(f"{test.low:.3g}")}, {escape(f"{test.high:.3g}")}])'
            '</span></td>')
