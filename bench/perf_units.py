"""``bench perf`` measurements of runs as work units: memory vs N, workers, cached re-scoring, shard merge."""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from bench.errors import BenchError
from bench.executor import Executor
from oracles.cache import ModelStore

Log = Callable[[str], None]
Result = dict[str, Any]

RSS_RATIO_TARGET = 1.3  # peak RSS at N = 128 over N = 8
WORKERS_TARGET = 1.6    # --workers 2 over --workers 1 for unlearning 32 digits CNNs
RESCORE_TARGET = 50.0   # cold over cached re-score, digits N = 64, in-process
RSS_WIDTH = 600         # digits MLP of about 405k parameters: 1.6 MB a model


def _rss_of_run(n: int, quick: bool, cache: Path) -> float:
    """Peak resident memory (MiB) of one whole in-process ``bench run`` at ``n`` models, in a fresh process."""
    args = ["run", "--method", "gdga", "--method-arg", "steps=5", "--task", "digits", "--task-arg",
            f"width={RSS_WIDTH}", "--task-arg", "epochs=1", "--n-models", str(n), "--cache-dir", str(cache),
            "--out", str(cache / "out")]
    code = ("import resource, sys; from bench.cli import main; rc = main(sys.argv[1:]); "
            "print('MAXRSS', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise BenchError(f"perf: units-memory run at N={n} failed:\n{proc.stderr[-2000:]}")
    [line] = [x for x in proc.stdout.splitlines() if x.startswith("MAXRSS")]
    return int(line.split()[1]) / 1024  # Linux reports KiB


def measure_units_memory(quick: bool, log: Log) -> Result:
    """Peak RSS of a whole run at N = 8, then at N = 128 on the same cache (it reuses the 24 models of the first)."""
    small, large = 8, 32 if quick else 128
    with tempfile.TemporaryDirectory(prefix="bench-perf-rss-") as tmp:
        log(f"perf: units-memory: N={small}")
        rss_small = _rss_of_run(small, quick, Path(tmp))
        log(f"perf: units-memory: N={large} (trains {3 * (large - small)} more models)")
        rss_large = _rss_of_run(large, quick, Path(tmp))
    return {"small": small, "large": large, "rss_small": rss_small, "rss_large": rss_large,
            "ratio": rss_large / rss_small, "model_mb": (64 * RSS_WIDTH + RSS_WIDTH * RSS_WIDTH + 10 * RSS_WIDTH
                                                         + 2 * RSS_WIDTH + 10) * 4 / 1e6}


def format_units_memory(r: Result, verdict: Callable[[bool, bool], str]) -> list[str]:
    ok = r["ratio"] < RSS_RATIO_TARGET
    return [f"gdga on digits MLPs of {r['model_mb']:.2f} MB each (width {RSS_WIDTH}, 1 epoch), whole CLI process",
            f"  peak RSS: N={r['small']} {r['rss_small']:.0f} MiB, N={r['large']} {r['rss_large']:.0f} MiB; "
            f"ratio {r['ratio']:.2f}   target: under {RSS_RATIO_TARGET}   {verdict(ok, r['quick'])}",
            f"  holding every ensemble would add about {4 * r['large'] * r['model_mb']:.0f} MB at N={r['large']}"]


def _drop_units(root: Path, kinds: tuple[str, ...] = ("unit", "unlearned")) -> int:
    """Delete unit and unlearned entries (by default; ``kinds`` names others) and keep the trained models."""
    dropped = 0
    for manifest in root.rglob("*.json"):
        try:
            kind = json.loads(manifest.read_text())["spec"].get("kind")
        except (ValueError, KeyError, FileNotFoundError):
            continue
        if kind in kinds:
            manifest.with_suffix(".safetensors").unlink(missing_ok=True)
            manifest.unlink()
            dropped += 1
    return dropped


def load_average() -> float | None:
    """The 1-minute load average: other work on the machine, shown next to every timing."""
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return None


@contextlib.contextmanager
def cli_threads() -> Iterator[None]:
    """One torch thread in this process on CPU, as ``bench run`` sets it (``--threads``), so in-process timings
    are what a user's command does; restored afterwards."""
    before = torch.get_num_threads()
    if not torch.cuda.is_available():
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _fresh_worker_pool() -> None:
    """Stop joblib's reusable loky workers, so a timed run pays for starting its own, as a new command does."""
    from joblib.externals.loky import get_reusable_executor
    get_reusable_executor().shutdown(wait=True)


def _cpu_seconds() -> float:
    """CPU seconds used by this process and its finished (reaped) children."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _unit_digests(root: Path) -> dict[str, str]:
    """sha256 of every unit entry (their arrays), by file name: equal digests mean identical arrays."""
    digests = {}
    for manifest in root.rglob("*.json"):
        entry = json.loads(manifest.read_text())
        if entry.get("spec", {}).get("kind") == "unit":
            digests[manifest.name] = entry["sha256"]
    return digests


def measure_units_workers(quick: bool, log: Log) -> Result:
    """Time the units phase (start workers; per unit: load its models, their statistics, unlearn, score, store)
    at 1 and 2 workers, and at 2 spawned (loky) workers, which import torch and the harness before their first
    unit. Trained models stay cached; everything a unit computes is dropped before each case."""
    from bench.executor import fork_is_safe
    from bench.registry import METHODS, TASKS
    from bench.runner import RunSpec, _train_needed, compute_units, make_plan, resolve_device
    Digits = TASKS.get("digits")
    n = 8 if quick else 32
    task = Digits(arch="cnn", width=16, epochs=2 if quick else 10)
    method = METHODS.get("gdga")(steps=20 if quick else 100)
    cases = {"one": Executor(workers=1), "two": Executor(workers=2)}
    if fork_is_safe():
        cases["two_spawned"] = Executor(workers=2, start="spawn")
    times: dict[str, dict] = {}
    digests = {}
    with tempfile.TemporaryDirectory(prefix="bench-perf-workers-") as tmp, cli_threads():
        store = ModelStore(tmp)
        plan, _ = make_plan(RunSpec(method=method, task=task, n_models=n), store, resolve_device("cpu"))
        units = list(range(n))
        log(f"perf: units-workers: training the {3 * n} digits CNNs the units need, once")
        _train_needed(plan, units, store, Executor(workers=2), False, log)
        for name, executor in cases.items():  # each case computes the same: statistics, unlearning, scores
            _drop_units(Path(tmp), ("unit", "unlearned", "statistics"))
            _fresh_worker_pool()
            log(f"perf: units-workers: unlearning {n} CNNs with --workers {executor.workers} ({name})")
            load, cpu = load_average(), _cpu_seconds()
            start = time.perf_counter()
            counts = compute_units(plan, units, store, executor, observe=None, progress=False,
                                   log=lambda _m: None, temporary=False)
            seconds = time.perf_counter() - start
            _fresh_worker_pool()  # reap spawned workers, so their CPU time is counted
            times[name] = {"seconds": seconds, "computed": counts["computed"], "load": [load, load_average()],
                           "cpu": _cpu_seconds() - cpu}
            digests[name] = _unit_digests(Path(tmp))
    return {"n": n, "steps": method.steps, "epochs": task.epochs, "times": times,
            "one": times["one"]["seconds"], "two": times["two"]["seconds"],
            "speedup": times["one"]["seconds"] / times["two"]["seconds"],
            "same": all(d == digests["one"] for d in digests.values()) and len(digests["one"]) == n}


def format_units_workers(r: Result, verdict: Callable[[bool, bool], str]) -> list[str]:
    ok = r["speedup"] >= WORKERS_TARGET
    times = r["times"]
    lines = [f"units phase of gdga ({r['steps']} steps) on {r['n']} digits CNNs (width 16, {r['epochs']} epochs; "
             f"trained models cached, units recomputed: {[t['computed'] for t in times.values()]}), "
             "one torch thread per process",
             f"  --workers 1 {r['one']:.2f} s, --workers 2 {r['two']:.2f} s (starting its workers included): "
             f"{r['speedup']:.2f}x   target: at least {WORKERS_TARGET}x   {verdict(ok, r['quick'])}"]
    if "two_spawned" in times:
        spawned = times["two_spawned"]["seconds"]
        lines.append(f"  --workers 2 spawned instead of forked (each worker imports torch and the harness first): "
                     f"{spawned:.2f} s, {r['one'] / spawned:.2f}x")
    lines += ["  CPU seconds used (cores busy on average): " + ", ".join(
                  f"{name} {t['cpu']:.1f} ({t['cpu'] / t['seconds']:.2f})" for name, t in times.items()),
              "  (with the machine shared, the kernel's per-session CPU share can cap --workers 2 at the cores "
              "--workers 1 got)",
              "  1-minute load average before/after: " + ", ".join(
                  f"{name} {t['load'][0]}/{t['load'][1]}" for name, t in times.items()),
              f"  unit arrays identical in every case: {'yes' if r['same'] else 'no'}"]
    return lines


def measure_rescore(quick: bool, log: Log) -> Result:
    """A cold digits run at the task's defaults, then the same run three times with every unit cached."""
    from bench.registry import METHODS, TASKS
    from bench.runner import RunSpec, run
    Digits = TASKS.get("digits")
    import statistics
    n = 8 if quick else 64
    spec = RunSpec(method=METHODS.get("gdga")(), task=Digits(epochs=3) if quick else Digits(), n_models=n)
    with tempfile.TemporaryDirectory(prefix="bench-perf-rescore-") as tmp, cli_threads():
        store = ModelStore(tmp)
        log(f"perf: rescore: cold run, digits N={n}")
        load = [load_average()]
        start = time.perf_counter()
        cold = run(spec, store=store)
        cold_s = time.perf_counter() - start
        warm, remeasured, cached = [], 0, []
        for _ in range(3):
            load.append(load_average())
            start = time.perf_counter()
            again = run(spec, store=store)
            warm.append(time.perf_counter() - start)
            remeasured += bool(again["timings"].get("retrain_remeasured_for_load"))
            cached.append(again["units"]["cached"])
    warm_s = statistics.median(warm)
    same = (json.dumps([cold["metrics"], cold["per_example"]], sort_keys=True)
            == json.dumps([again["metrics"], again["per_example"]], sort_keys=True))
    return {"n": n, "epochs": spec.task.epochs, "cold_s": cold_s, "warm_s": warm_s, "warm": warm,
            "ratio": cold_s / warm_s, "same": same, "load": load, "remeasured": remeasured,
            "all_cached": all(c == n for c in cached)}


def format_rescore(r: Result, verdict: Callable[[bool, bool], str]) -> list[str]:
    ok = r["ratio"] >= RESCORE_TARGET
    lines = [f"gdga on digits (defaults: MLP, {r['epochs']} epochs), N={r['n']}, in this process, one torch thread: "
             "every unit cached -> arrays only, no model loaded",
             f"  cold {r['cold_s']:.2f} s, cached re-score {r['warm_s']:.3f} s (median of "
             f"{', '.join(f'{w:.3f}' for w in r['warm'])}): {r['ratio']:.0f}x   "
             f"target: at least {RESCORE_TARGET:.0f}x   {verdict(ok, r['quick'])}",
             f"  1-minute load average before the cold run and each re-score: "
             f"{', '.join(str(x) for x in r['load'])}",
             f"  every unit cached in each re-score: {'yes' if r['all_cached'] else 'no'}; "
             f"scores identical: {'yes' if r['same'] else 'no'}"]
    if r["remeasured"]:
        lines.append(f"  {r['remeasured']} re-score(s) remeasured the reference retrain because the load changed "
                     "a lot since it was timed: they include training one model")
    return lines


def measure_shards(quick: bool, log: Log) -> Result:
    from bench.registry import METHODS, TASKS
    from bench.runner import RunSpec, run, run_shard
    from bench.shards import Shard
    Digits = TASKS.get("digits")
    n, k = 6, 3
    task, method = Digits(width=16, epochs=2), METHODS.get("gdga")(steps=10)
    with tempfile.TemporaryDirectory(prefix="bench-perf-shards-") as tmp:
        log("perf: shards: one run, then 3 shards and a merge in another cache")
        single = run(RunSpec(method=method, task=task, n_models=n), store=ModelStore(Path(tmp) / "single"))
        shared = ModelStore(Path(tmp) / "shared")
        for index in range(k):
            run_shard(RunSpec(method=method, task=task, n_models=n, shard=Shard(index, k)), store=shared)
        merged = run(RunSpec(method=method, task=task, n_models=n, shard="merge"), store=shared)
    same = (json.dumps([single["metrics"], single["per_example"], single["steps_used"]], sort_keys=True)
            == json.dumps([merged["metrics"], merged["per_example"], merged["steps_used"]], sort_keys=True))
    return {"n": n, "k": k, "same": same}


def format_shards(r: Result, verdict: Callable[[bool, bool], str]) -> list[str]:
    return [f"digits N={r['n']}: --shard 0/{r['k']} .. {r['k'] - 1}/{r['k']} then --shard merge vs one run",
            f"  metrics, per-example arrays and steps identical: {'yes' if r['same'] else 'no'}   "
            f"{'PASS' if r['same'] else 'MISS'}"]
