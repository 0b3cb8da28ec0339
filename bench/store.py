"""Atomic writes: a reader sees the old file or the complete new one, never half of either."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_atomic(path: str | Path, data: bytes) -> Path:
    """Write to a temporary file in the same folder, fsync it, then rename it over ``path``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
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
