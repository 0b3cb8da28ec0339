"""Atomic writes: a reader sees the old file or the complete new one, never half of either."""
from __future__ import annotations

import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

#: temporary files are named ``.<target>.<writer pid>.<random>.tmp`` so a later run can tell stale ones apart
_TMP_NAME = re.compile(r"^\..+\.(\d+)\.[^.]+\.tmp$")
STALE_TMP_SECONDS = 24 * 3600  # a tmp file of a live writer on another host is never this old


def write_atomic(path: str | Path, data: bytes) -> Path:
    """Write to a temporary file in the same folder, fsync it, then rename it over ``path``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def write_json_atomic(path: str | Path, obj: Any) -> Path:
    """Strict JSON (non-finite numbers become null; ``bench.strict_json.strict_record`` also says why)."""
    from bench.strict_json import replace_non_finite
    clean, _ = replace_non_finite(obj)
    return write_atomic(path, (json.dumps(clean, indent=2, sort_keys=False, allow_nan=False) + "\n").encode())


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_tmp(root: str | Path) -> int:
    """Delete temporary files that a killed writer left under ``root``; return how many.

    A file is stale when its writer (the pid in its name) no longer runs on this machine, or when it is
    older than a day (a writer on another host sharing the folder). Live writers' files are kept.
    """
    base = Path(root)
    if not base.is_dir():
        return 0
    removed, now = 0, time.time()
    for path in base.rglob(".*.tmp"):
        match = _TMP_NAME.match(path.name)
        try:
            old = now - path.stat().st_mtime > STALE_TMP_SECONDS
        except FileNotFoundError:
            continue
        if old or (match is not None and not _pid_alive(int(match.group(1)))):
            path.unlink(missing_ok=True)
            removed += 1
    return removed
