"""Per-entry advisory locks (``fcntl.flock``) so concurrent runs on one cache neither corrupt an entry nor
compute it twice: the holder computes, a waiter finds the finished entry when the lock is released.

Locks live in ``root/locks/<key[:2]>/<key>.lock``; the kernel releases them when the holder dies (SIGKILL
included), so a killed run never leaves a lock behind. The empty lock files themselves are harmless.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Iterator


def lock_path(root: str | Path, key: str) -> Path:
    return Path(root) / "locks" / key[:2] / f"{key}.lock"


class EntryLock:
    """One held (or not yet held) lock on a cache key."""

    def __init__(self, root: str | Path, key: str) -> None:
        self.path = lock_path(root, key)
        self._fd: int | None = None

    def acquire(self, blocking: bool = True) -> bool:
        """Take the lock; with ``blocking=False`` return False at once when another process holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None


@contextlib.contextmanager
def entry_lock(root: str | Path, key: str) -> Iterator[EntryLock]:
    """Hold the lock on ``key`` for the duration of the block (waits for another holder)."""
    lock = EntryLock(root, key)
    lock.acquire()
    try:
        yield lock
    finally:
        lock.release()
