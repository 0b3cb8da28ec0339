"""Where ensemble work runs: in this process, in local worker processes, or on a Dask cluster (via joblib)."""
from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Literal

from joblib import Parallel, delayed, parallel_config

from bench.errors import BenchError


_WATCHING: list[int] = []  # the parent pid this worker process already watches


def _exit_when_orphaned(parent_pid: int, interval: float = 0.5) -> None:
    """Start (once per worker process) a daemon thread that ends the process when ``parent_pid`` is gone.

    A SIGKILLed run cannot tell its loky workers to stop; without this they keep computing (and keep the
    caller's output pipes open) for minutes. Dask workers have their own nanny for this.
    """
    if _WATCHING == [parent_pid] or os.getpid() == parent_pid:
        return
    _WATCHING[:] = [parent_pid]

    def watch() -> None:
        while True:
            if os.getppid() != parent_pid:
                os._exit(1)
            time.sleep(interval)

    threading.Thread(target=watch, name="bench-parent-watch", daemon=True).start()


def _call_watched(parent_pid: int, fn: Callable[..., Any], *args: Any) -> Any:
    _exit_when_orphaned(parent_pid)
    return fn(*args)


@dataclass
class Executor:
    """Runs independent jobs. ``local`` with one worker runs them in this process, one after another.

    Multi-worker jobs get one torch thread each, so results do not depend on the backend.
    """

    backend: Literal["local", "dask"] = "local"
    workers: int = 1
    scheduler: str | None = None

    def __post_init__(self) -> None:
        if self.backend not in ("local", "dask"):
            raise BenchError(f"unknown backend {self.backend!r}; use local or dask")
        if self.workers < 1:
            raise BenchError(f"--workers must be at least 1, got {self.workers}")
        if self.scheduler and self.backend != "dask":
            raise BenchError("--scheduler only applies to --backend dask")
        self._client = None

    @property
    def parallel(self) -> bool:
        return self.backend == "dask" or self.workers > 1

    @contextlib.contextmanager
    def _dask_client(self) -> Iterator[Any]:
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError:
            raise BenchError("--backend dask needs dask.distributed: pip install 'dask[distributed]'") from None
        if self.scheduler:
            with Client(self.scheduler) as client:
                yield client
        else:
            with LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                              dashboard_address=None) as cluster, Client(cluster) as client:
                yield client

    def map(self, fn: Callable[..., Any], jobs: Iterable[tuple]) -> Iterator[Any]:
        """Yield ``fn(*job)`` for each job, in order, as results arrive."""
        jobs = list(jobs)
        if not self.parallel:
            for job in jobs:
                yield fn(*job)
            return
        if self.backend == "dask":
            calls = (delayed(fn)(*job) for job in jobs)
            with self._dask_client(), parallel_config(backend="dask"):
                yield from Parallel(n_jobs=-1, return_as="generator")(calls)
        else:
            parent = os.getpid()
            watched = (delayed(_call_watched)(parent, fn, *job) for job in jobs)
            yield from Parallel(n_jobs=self.workers, backend="loky", return_as="generator")(watched)
