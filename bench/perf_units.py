"""``bench perf`` measurements of runs as work units: memory vs N, workers, cached re-scoring, shard merge."""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from bench.errors import BenchError
from bench.executor import Executor
from oracles.store import ModelStore

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
    small, large = 8, 32 if quick else 128
    with tempfile.TemporaryDirectory(prefix="bench-perf-rss-") as tmp:
        log(f"perf: units-memory: N={small}")
        rss_small = _rss_of_run(small, quick, Path(tmp) / "a")
        log(f"perf: units-memory: N={large} (trains {3 * large} models)")
        rss_large = _rss_of_run(large, quick, Path(tmp) / "b")
    return {"small": small, "large": large, "rss_small": rss_small, "rss_large": rss_large,
            "ratio": rss_large / rss_small, "model_mb": (64 * RSS_WIDTH + RSS_WIDTH * RSS_WIDTH + 10 * RSS_WIDTH
                                                         + 2 * RSS_WIDTH + 10) * 4 / 1e6}


def format_units_memory(r: Result, verdict: Callable[[bool, bool], str]) -> list[str]:
    ok = r["ratio"] < RSS_RATIO_TARGET
    return [f"gdga on digits MLPs of {r['model_mb']:.2f} MB each (width {RSS_WIDTH}, 1 epoch), whole CLI process",
            f"  peak RSS: N={r['small']} {r['rss_small']:.0f} MiB, N={r['large']} {r['rss_large']:.0f} MiB; "
            f"ratio {r['ratio']:.2f}   target: under {RSS_RATIO_TARGET}   {verdict(ok, r['quick'])}",
            f"  holding every ensemble would add about {4 * r['large'] * r['model_mb']:.0f} MB at N={r['large']}"]


def _drop_units(root: Path) -> int:
    """Delete unit and unlearned entries (keeping trained models and their statistics)."""
    dropped = 0
    for manifest in root.rglob("*.json"):
        try:
            kind = json.loads(manifest.read_text())["spec"].get("kind")
        except (ValueError, KeyError, FileNotFoundError):
            continue
        if kind in ("unit", "unlearned"):
            manifest.with_suffix(".safetensors").unlink(missing_ok=True)
            manifest.unlink()
            dropped += 1
    return dropped


def measure_units_workers(quick: bool, log: Log) -> Result:
    from bench.registry import METHODS
    from bench.runner import RunSpec, run
    from tasks.digits import Digits
    n = 8 if quick else 32
    task = Digits(arch="cnn", width=16, epochs=2 if quick else 10)
    method = METHODS.get("gdga")(steps=20 if quick else 100)
    times = {}
    with tempfile.TemporaryDirectory(prefix="bench-perf-workers-") as tmp:
        store = ModelStore(tmp)
        log(f"perf: units-workers: training {3 * n} digits CNNs once")
        run(RunSpec(method=method, task=task, n_models=n, executor=Executor(workers=2)), store=store)
        for workers in (1, 2):
            _drop_units(Path(tmp))
            log(f"perf: units-workers: unlearning {n} CNNs with --workers {workers}")
            start = time.perf_counter()
            record = run(RunSpec(method=method, task=task, n_models=n, executor=Executor(workers=workers)),
                         store=store)
            times[workers] = (time.perf_counter() - start, record["units"]["computed"])
    return {"n": n, "one": times[1][0], "two": times[2][0], "speedup": times[1][0] / times[2][0],
            "computed": [times[1][1], times[2][1]]}


def format_units_workers(r: Result, verdict: Callable[[bool, bool], str]) -> list[str]:
    ok = r["speedup"] >= WORKERS_TARGET
    return [f"gdga unlearning {r['n']} digits CNNs (models cached; units recomputed: {r['computed']}), whole run",
            f"  --workers 1 {r['one']:.2f} s, --workers 2 {r['two']:.2f} s (includes starting the workers): "
            f"{r['speedup']:.2f}x   target: at least {WORKERS_TARGET}x   {verdict(ok, r['quick'])}"]


def measure_rescore(quick: bool, log: Log) -> Result:
    from bench.registry import METHODS
    from bench.runner import RunSpec, run
    from tasks.digits import Digits
    import statistics
    n = 8 if quick else 64
    spec = RunSpec(method=METHODS.get("gdga")(), task=Digits(epochs=3 if quick else 30), n_models=n)
    with tempfile.TemporaryDirectory(prefix="bench-perf-rescore-") as tmp:
        store = ModelStore(tmp)
        log(f"perf: rescore: cold run, digits N={n}")
        start = time.perf_counter()
        cold = run(spec, store=store)
        cold_s = time.perf_counter() - start
        warm = []
        for _ in range(3):
            start = time.perf_counter()
            again = run(spec, store=store)
            warm.append(time.perf_counter() - start)
    warm_s = statistics.median(warm)
    same = json.dumps([cold["metrics"], cold["per_example"]]) == json.dumps([again["metrics"], again["per_example"]])
    return {"n": n, "cold_s": cold_s, "warm_s": warm_s, "ratio": cold_s / warm_s, "same": same}


def format_rescore(r: Result, verdict: Callable[[bool, bool], str]) -> list[str]:
    ok = r["ratio"] >= RESCORE_TARGET
    return [f"gdga on digits, N={r['n']}, in this process: every unit cached -> arrays only, no model loaded",
            f"  cold {r['cold_s']:.2f} s, cached re-score {r['warm_s']:.3f} s (median of 3): {r['ratio']:.0f}x   "
            f"target: at least {RESCORE_TARGET:.0f}x   {verdict(ok, r['quick'])}",
            f"  scores identical: {'yes' if r['same'] else 'no'}"]


def measure_shards(quick: bool, log: Log) -> Result:
    from bench.registry import METHODS
    from bench.runner import RunSpec, run, run_shard
    from bench.shards import Shard
    from tasks.digits import Digits
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
