"""Checks run before any training: a run that cannot finish (unwritable output, unreachable scheduler,
contradictory flags) must fail in a second with exit 2, not after an hour with a traceback.

The CLI calls these; they only read their arguments and probe the file system or the network.
"""
from __future__ import annotations

import argparse
import os
import socket
import tempfile
import urllib.parse
from pathlib import Path

from bench.bounds import Range
from bench.errors import BenchError
from bench.params import parse_int

SCHEDULER_TIMEOUT_S = 5.0


def int_arg(flag: str, bounds: Range):
    """An argparse ``type``: an integer in ASCII digits within ``bounds`` (the message names both)."""
    def parse(text: str) -> int:
        try:
            value = parse_int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} expects an integer in ASCII digits 0-9, got {text!r}") from None
        if not bounds.contains(value):
            raise argparse.ArgumentTypeError(f"{flag} must be {bounds.describe()}, got {value}")
        return value
    return parse


def parse_ids(text: str) -> list[int]:
    """``--forget-ids 3,17,42``: comma-separated non-negative integers in ASCII digits ('1_0' is refused)."""
    ids = []
    for part in text.split(","):
        if not part.strip():
            continue
        try:
            ids.append(parse_int(part))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"--forget-ids expects comma-separated integers in ASCII digits 0-9, got {part.strip()!r} "
                f"in {text!r}") from None
    return ids


def check_forget_flags(forget_ids: list[int] | None, forget_size: int | None, task_args: dict[str, str]) -> None:
    """An explicit forget set and a forget size contradict each other; say which one to drop."""
    if forget_ids is not None and (forget_size is not None or "forget_size" in task_args):
        given = "--forget-size" if forget_size is not None else "--task-arg forget_size=..."
        raise BenchError(f"--forget-ids and {given} were both given; an explicit forget set fixes its own size "
                         f"({len(forget_ids)} ids), so drop {given} (or drop --forget-ids to draw a random set)")


def check_writable_dir(path: str | Path, what: str, flag: str) -> Path:
    """Create ``path`` if needed and prove a file can be written there (and removed again)."""
    if str(path).strip() == "":
        raise BenchError(f"{flag} is empty; give a folder for the {what} (e.g. {flag} results)")
    folder = Path(path).expanduser()
    if folder.exists() and not folder.is_dir():
        raise BenchError(f"{flag} {str(path)!r} is a file, not a folder; give a folder for the {what}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise BenchError(f"cannot create the {what} folder {flag} {str(path)!r}: {err.strerror or err}; "
                         "give a folder you can write to") from None
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".bench-write-check.", suffix=".tmp")
        try:
            os.write(fd, b"ok")
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as err:
        raise BenchError(f"the {what} folder {flag} {str(path)!r} is not writable ({err.strerror or err}); "
                         "give a folder you can write to (nothing was trained)") from None
    return folder


def check_cache_dir(path: str | Path | None, flag: str = "--cache-dir") -> None:
    """The model cache must be a writable folder before hours of training are spent filling it."""
    if path is None:
        from oracles.cache import default_cache_root
        path, flag = default_cache_root(), ("$BENCH_CACHE" if os.environ.get("BENCH_CACHE") else "the default cache")
    check_writable_dir(path, "model cache", flag)


def check_scheduler(address: str | None, timeout: float = SCHEDULER_TIMEOUT_S) -> None:
    """Open (and close) a TCP connection to a Dask scheduler, so a typo fails in seconds, not after 30 s."""
    if not address:
        return
    parsed = urllib.parse.urlparse(address if "://" in address else f"tcp://{address}")
    if parsed.scheme not in ("tcp", "tls") or not parsed.hostname:
        raise BenchError(f"--scheduler {address!r} is not a scheduler address; use tcp://HOST:PORT")
    try:
        port = parsed.port or 8786
    except ValueError:
        raise BenchError(f"--scheduler {address!r} has an invalid port; use tcp://HOST:PORT") from None
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout):
            pass
    except OSError as err:
        raise BenchError(f"cannot reach the Dask scheduler at {address} within {timeout:.0f} s "
                         f"({err.strerror or err}); start it (`dask scheduler`) or fix --scheduler, or drop "
                         "--backend dask to train locally") from None
