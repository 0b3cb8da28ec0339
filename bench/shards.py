"""``--shard i/k``: which units one job of a cluster array computes (units i, i+k, i+2k, ...), and ``merge``."""
from __future__ import annotations

import re
from dataclasses import dataclass

from bench.errors import BenchError

_PATTERN = re.compile(r"([0-9]+)/([0-9]+)")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0-based, as SLURM's ``$SLURM_ARRAY_TASK_ID`` with ``--array=0-(k-1)``)."""

    index: int
    count: int

    def units(self, n: int) -> list[int]:
        return list(range(self.index, n, self.count))

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


MERGE = "merge"


def parse_shard(text: str | None) -> Shard | str | None:
    """``None`` (a whole run), ``"merge"`` (reduce stored units only) or a ``Shard``; bad input is exit 2."""
    if text is None:
        return None
    if text.strip() == MERGE:
        return MERGE
    match = _PATTERN.fullmatch(text.strip())
    if not match:
        raise BenchError(f"--shard takes I/K (for example 3/10: units 3, 13, 23, ...) or 'merge', got {text!r}")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or not 0 <= index < count:
        raise BenchError(f"--shard {text}: need 0 <= I < K (shards are numbered from 0), got I={index}, K={count}")
    return Shard(index, count)


def describe_missing(missing: list[int], n: int) -> str:
    """The missing units as a compact list, with the shards (of any k) that would compute them unknown."""
    shown = ", ".join(str(i) for i in missing[:50]) + (" ..." if len(missing) > 50 else "")
    return f"{len(missing)} of {n} units are not computed yet: {shown}"
