"""Real processes: SIGKILL and resume, concurrent runs on one cache, orphaned workers, Ctrl-C."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.registry import METHODS
from bench.runner import RunSpec, run
from oracles.cache import ModelStore
from tasks.digits import Digits

ARGS = ["--task", "digits", "--task-arg", "width=8", "--task-arg", "epochs=1", "--forget-size", "6",
        "--method", "gdga", "--n-models", "6"]
ROOT = Path(__file__).resolve().parent.parent


def _bench(cache: Path, out: Path, *extra: str, steps: int = 300) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "bench", "run", *ARGS, "--method-arg", f"steps={steps}", "--cache-dir", str(cache),
                             "--out", str(out), *extra], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _units_stored(cache: Path) -> int:
    count = 0
    for path in cache.rglob("*.json"):
        try:
            count += '"kind": "unit"' in path.read_text()
        except (FileNotFoundError, UnicodeDecodeError):
            pass
    return count


def _wait_for(condition, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.1)


def _record(out: Path) -> dict:
    [path] = out.rglob("*.json")
    return json.loads(path.read_text())


def _scores(record: dict) -> str:
    return json.dumps([record["metrics"], record["per_example"], record["steps_used"]], sort_keys=True)


def _uninterrupted(tmp_path: Path) -> dict:
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the subprocesses (OMP_NUM_THREADS=1)
    try:
        return run(RunSpec(method=METHODS.get("gdga")(steps=300), task=Digits(width=8, epochs=1, forget_size=6),
                           n_models=6), store=ModelStore(tmp_path / "reference"))
    finally:
        torch.set_num_threads(threads)


def test_sigkill_during_unlearning_then_resume_gives_the_uninterrupted_record(tmp_path):
    cache, out = tmp_path / "cache", tmp_path / "out"
    proc = _bench(cache, out)
    _wait_for(lambda: _units_stored(cache) >= 1 or proc.poll() is not None)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists() or not list(out.rglob("*.json"))
    rerun = _bench(cache, out)
    _, err = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, err
    stored = [line for line in err.splitlines() if line.startswith("resumed:")]
    assert stored and stored[0].endswith("of 6 units cached"), err
    assert 1 <= int(stored[0].split()[1]) < 6
    assert not list(cache.rglob("*.tmp"))  # whatever the kill left half-written was cleaned up
    assert _scores(_record(out)) == _scores(_uninterrupted(tmp_path))


def test_concurrent_identical_and_different_runs_share_one_cache_and_train_each_model_once(tmp_path):
    cache = tmp_path / "cache"
    procs = [_bench(cache, tmp_path / f"out{k}", steps=30) for k in range(2)]
    procs.append(_bench(cache, tmp_path / "out-noop", "--method", "noop"))  # a different method, same models
    errs = [p.communicate(timeout=600)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errs
    records = [_record(tmp_path / f"out{k}") for k in range(2)]
    noop = _record(tmp_path / "out-noop")
    assert noop["method"]["name"] == "noop" and records[0]["method"]["name"] == "gdga"
    assert _scores(records[0]) == _scores(records[1])
    for role in ("originals", "oracles", "floor"):
        assert sum(6 - r["cache"][role] for r in [*records, noop]) == 6, (role, [r["cache"] for r in records])
    assert sum(r["units"]["computed"] for r in records) == 6 and noop["units"]["computed"] == 6
    store = ModelStore(cache)
    for manifest in cache.rglob("*.json"):  # every entry verifies
        spec = json.loads(manifest.read_text())["spec"]
        assert store.load(spec) is not None


def _children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, IndexError, ProcessLookupError):
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")
def test_workers_exit_when_their_run_is_sigkilled(tmp_path):
    proc = _bench(tmp_path / "cache", tmp_path / "out", "--workers", "2")
    _wait_for(lambda: len(_children(proc.pid)) >= 2 or proc.poll() is not None)
    time.sleep(1.0)
    kids = _children(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 60
    while any(_alive(k) for k in kids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [k for k in kids if _alive(k)]


def test_ctrl_c_prints_one_line_saying_what_was_kept(tmp_path):
    cache = tmp_path / "cache"
    proc = _bench(cache, tmp_path / "out")
    _wait_for(lambda: _units_stored(cache) >= 1 or proc.poll() is not None)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    [line] = [line for line in err.splitlines() if line.startswith("interrupted:")]
    assert "rerun the same command to resume" in line and str(cache) in line
