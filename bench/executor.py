"""Where ensemble work runs: in this process, in local worker processes, or on a Dask cluster (via joblib).

Local workers are forked from this process where that is safe (Linux, no CUDA GPU), so they start with
torch, the data libraries and the harness already imported. A spawned worker (joblib's loky) pays those
imports first (torch, scikit-learn, torch._dynamo: about 20 s per worker, measured at a load average of 9
on 2 cores): most of the gap between ``--workers 2`` and twice ``--workers 1`` for units of a few seconds.
Elsewhere (macOS, Windows, GPU machines) workers are spawned by loky.
"""
from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
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


def _init_forked_worker(parent_pid: int) -> None:
    """A forked worker leaves Ctrl-C to its parent (which stops the pool) and exits if the parent dies."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _exit_when_orphaned(parent_pid)


def fork_is_safe() -> bool:
    """Forking copies this process: fine on Linux for CPU work. Not on a machine with a CUDA GPU: asking
    whether one is there already initialises the driver here, and a forked child cannot use it then."""
    if not sys.platform.startswith("linux") or "fork" not in multiprocessing.get_all_start_methods():
        return False
    import torch
    return not torch.cuda.is_initialized() and not torch.cuda.is_available()


def _stop(pool: ProcessPoolExecutor) -> None:
    """End a pool's workers now (an error or Ctrl-C in the parent): do not wait for their running jobs."""
    kill = getattr(pool, "kill_workers", None)  # Python 3.14+
    if kill is not None:
        kill()
    else:
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            process.kill()
    pool.shutdown(wait=False, cancel_futures=True)


def _forked_map(workers: int, fn: Callable[..., Any], jobs: list[tuple]) -> Iterator[Any]:
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                               initializer=_init_forked_worker, initargs=(os.getpid(),))
    finished = False
    try:
        futures = [pool.submit(fn, *job) for job in jobs]
        for future in futures:
            yield future.result()
        finished = True
    finally:
        if finished:
            pool.shutdown(wait=True)
        else:
            _stop(pool)


@dataclass
class Executor:
    """Runs independent jobs. ``local`` with one worker runs them in this process, one after another.

    Multi-worker jobs get one torch thread each, so results do not depend on the backend.
    """

    backend: Literal["local", "dask"] = "local"
    workers: int = 1
    scheduler: str | None = None
    start: Literal["auto", "fork", "spawn"] = "auto"  # local workers: forked where safe (auto), or spawned (loky)

    def __post_init__(self) -> None:
        if self.backend not in ("local", "dask"):
            raise BenchError(f"unknown backend {self.backend!r}; use local or dask")
        if self.workers < 1:
            raise BenchError(f"--workers must be at least 1, got {self.workers}")
        if self.scheduler and self.backend != "dask":
            raise BenchError("--scheduler only applies to --backend dask")
        if self.start not in ("auto", "fork", "spawn"):
            raise BenchError(f"unknown worker start {self.start!r}; use auto, fork or spawn")
        if self.start == "fork" and "fork" not in multiprocessing.get_all_start_methods():
            raise BenchError("this platform cannot fork worker processes; use start='spawn' or 'auto'")
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
                _refuse_threaded_workers(client, self.scheduler)
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
        elif self.start == "fork" or (self.start == "auto" and fork_is_safe()):
            yield from _forked_map(self.workers, fn, jobs)
        else:
            parent = os.getpid()
            watched = (delayed(_call_watched)(parent, fn, *job) for job in jobs)
            yield from Parallel(n_jobs=self.workers, backend="loky", return_as="generator")(watched)


def _refuse_threaded_workers(client: Any, address: str) -> None:
    """Refuse a cluster whose workers run several tasks at once in one process: tasks seed initialisation and
    dropout through torch's process-wide RNG, so concurrent threads would mix models' random streams (measured:
    max |dw| 0.68 on digits with two threads per worker), and torch's thread count is process-wide too."""
    workers = client.scheduler_info().get("workers", {})
    threaded = {name: info.get("nthreads") for name, info in workers.items() if (info.get("nthreads") or 1) > 1}
    if threaded:
        shown = ", ".join(f"{name} ({n} threads)" for name, n in list(threaded.items())[:3])
        raise BenchError(f"the Dask workers at {address} run several threads each: {shown}; results would depend "
                         "on how tasks interleave. Start the workers with one thread each: "
                         f"`dask worker {address} --nthreads 1 --nworkers K`")

