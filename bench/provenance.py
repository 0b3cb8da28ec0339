"""Where a result came from: code version, packages, machine and date."""
from __future__ import annotations

import datetime as dt
import importlib.metadata
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

import torch

_PACKAGES = ("unlearning-bench", "torch", "torchvision", "transformers", "tokenizers", "numpy", "scipy",
             "scikit-learn", "pandas", "joblib")


def _git(*args: str) -> str | None:
    repo = Path(__file__).resolve().parent.parent
    try:
        # GIT_OPTIONAL_LOCKS=0: reading the status must not take (or, if killed, leave) the repository's index.lock
        out = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=5, check=True,
                             env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"})
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def package_versions() -> dict[str, str]:
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def hardware(device: torch.device) -> dict[str, object]:
    info: dict[str, object] = {"machine": platform.machine(), "processor": platform.processor() or "unknown",
                               "cpu_threads": torch.get_num_threads(), "device": str(device)}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def command_line() -> str:
    """The command as the user typed it: ``python -m bench ...`` rather than the path of ``bench/__main__.py``."""
    argv = list(sys.argv)
    if argv and Path(argv[0]).name == "__main__.py" and Path(argv[0]).parent.name == "bench":
        argv[:1] = [Path(sys.executable).name, "-m", "bench"]
    return shlex.join(argv)


def provenance(device: torch.device) -> dict[str, object]:
    """Everything needed to tell two results apart that the parameters do not already say."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "git_commit": _git("rev-parse", "HEAD") or "unknown",
        "git_dirty": bool(status) if status is not None else None,
        "packages": package_versions(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "hardware": hardware(device),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": command_line(),
    }
