"""Fingerprints of data on disk by content, not by path: replacing every image under ``data_root`` (or a
checkpoint at the same path) must change cache keys, or a run silently reuses models trained on old data.

The fast fingerprint hashes every file's relative name, size and mtime plus a sampled digest of content (the
first, middle and last 64 KiB of up to ``SAMPLED_FILES`` files spread evenly over the sorted list); it is
memoised per path and invalidated by any change of size or mtime. ``full=True`` hashes every byte.
"""
from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

CHUNK = 64 * 1024
SAMPLED_FILES = 64
SCAN_TTL_S = 30.0
#: trees with at most this many files are re-listed on every call (milliseconds), so a checkpoint folder
#: replaced seconds after it was fingerprinted is noticed; only big datasets reuse a listing for SCAN_TTL_S
RESCAN_UP_TO_FILES = 4096
_memo: dict[tuple, str] = {}
_scans: dict[tuple, tuple[float, list[tuple]]] = {}


def _files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    if not root.is_dir():
        return []
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))


def _sample(path: Path, size: int, digest: "hashlib._Hash", full: bool) -> None:
    with path.open("rb") as handle:
        if full or size <= 3 * CHUNK:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
            return
        for offset in (0, size // 2, size - CHUNK):
            handle.seek(offset)
            digest.update(handle.read(CHUNK))


def _scan(roots: list[Path]) -> list[tuple]:
    """(root, file, size, mtime) of every file; a scan of more than ``RESCAN_UP_TO_FILES`` files is reused for
    ``SCAN_TTL_S`` (cache keys are built once per model, and a CelebA folder holds 200,000 files)."""
    key = tuple(str(r) for r in roots)
    hit = _scans.get(key)
    if hit is not None and len(hit[1]) > RESCAN_UP_TO_FILES and time.monotonic() - hit[0] < SCAN_TTL_S:
        return hit[1]
    entries = []
    for root in roots:
        for path in _files(root):
            try:
                st = path.stat()
            except OSError:
                continue
            entries.append((root, path, st.st_size, st.st_mtime_ns))
    _scans[key] = (time.monotonic(), entries)
    return entries


def fingerprint(paths: list[str | Path], *, full: bool = False) -> str:
    """A short hex digest of the files at (or under) ``paths``; 'missing' for paths that do not exist."""
    entries = _scan([Path(p).expanduser() for p in paths])
    if not entries:
        return "missing"
    key = (full, tuple((str(p), size, mtime) for _, p, size, mtime in entries))
    if key in _memo:
        return _memo[key]
    digest = hashlib.sha256()
    step = 1 if full else max(1, len(entries) // SAMPLED_FILES)
    for i, (root, path, size, mtime) in enumerate(entries):
        digest.update(f"{os.path.relpath(path, root.parent)}\0{size}\0{mtime}\n".encode())
        if i % step == 0:
            try:
                _sample(path, size, digest, full)
            except OSError:
                digest.update(b"unreadable")
    _memo[key] = digest.hexdigest()[:16]
    return _memo[key]
