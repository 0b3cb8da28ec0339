"""Exported per-model statistics of originals, oracles and noise-floor models, so others score without retraining.

Layout (``FORMAT``, version ``VERSION`` = 2) of an export folder: EasyDUB's per-model ``.npy`` tree
(``bench.margins_layout``), so their scripts and our EasyDUB reader read it, plus our manifest::

    manifest.json                       task spec, forget ids, scored point ids, seeds, per-model utility,
                                        and the sha256 of every array file
    forget_sets/<task>/forget_set_<f>.npy                                  the forget ids (sorted)
    margins/<task>/pretrain/{retain,val}/<arch>/id_<k>_epoch_<e>.npy       originals k = 0..N-1
    margins/<task>/pretrain/forget_<f>/<arch>/id_<k>_epoch_<e>.npy
    margins/<task>/oracle/forget_<f>/{retain,forget,val}/<arch>/id_<k>_epoch_<e>.npy
                                        oracles k = 0..N-1 and the noise floor k = N..2N-1 (EasyDUB's split)
    losses/...  and  confidences/...    the same tree for the other statistics (confidence: forget only)

``<arch>`` is the task's ``arch`` parameter or architecture label, ``<e>`` its last epoch counted from 0
(EasyDUB's scripts read ``resnet9`` and ``epoch_23``: a 24-epoch run), ``<f>`` ``--forget-set-number``
(default 1). As in EasyDUB, pretrain retain files hold every training point when every point is scored
(the manifest marks them ``"ids": "train"``); otherwise every file holds the manifest's points of its split,
in order. Margins and losses are float32, confidences float64. Version 1 exports
(``<role>/<index:05d>/<split>.<stat>.npy``) are still read. Importing checks the task spec (name, version,
parameters that change a model, recipe), forget ids and point ids against the run and names the first field
that differs; every file's checksum is verified when it is read.
"""
from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bench.errors import BenchError
from bench.margins_layout import FileNames
from bench.statistics import ModelStats, load_stats
from bench.atomic import write_atomic, write_json_atomic

if TYPE_CHECKING:
    from bench.units import UnitPlan
    from oracles.cache import ModelStore

FORMAT = "unlearning-bench-margins"
VERSION = 2
READABLE_VERSIONS = (1, 2)
ROLES = ("original", "oracle", "floor")
STAT_FOLDERS = {"margin": "margins", "loss": "losses", "confidence": "confidences"}


def _task_spec(plan: "UnitPlan") -> dict:
    task = plan.task
    return json.loads(json.dumps({"name": task.name, "version": task.version, "params": task.model_params(),
                                  "recipe": task.training_recipe()}, default=str))


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def export_names(task) -> FileNames:
    """EasyDUB file naming for ``task``: its name, its ``arch`` (or ``arch_label``), its last epoch from 0."""
    params = task.get_params()
    arch = str(params.get("arch") or getattr(task, "arch_label", "model"))
    epochs = params.get("epochs")
    epoch = int(epochs) - 1 if isinstance(epochs, int) and not isinstance(epochs, bool) and epochs > 0 else 0
    return FileNames(dataset=task.name, arch=arch, epoch=epoch)


def _file_id(plan: "UnitPlan", role: str, i: int) -> tuple[str, int]:
    """EasyDUB kind and model id of ``role`` i: originals are pretrain i, the floor is oracle N+i."""
    if role == "original":
        return "pretrain", i
    return "oracle", i if role == "oracle" else plan.n_models + i


def write_export(plan: "UnitPlan", store: "ModelStore", out: str | Path, *, n_train: int,
                 forget_set: int = 1) -> Path:
    """Write the stored statistics of every original, oracle and floor model of ``plan`` under ``out``."""
    root, names = Path(out), export_names(plan.task)
    forget, retain = np.asarray(plan.forget_idx, dtype=np.int64), np.asarray(plan.points.ids["retain"])
    whole_train = len(forget) + len(retain) == n_train  # every retain point scored: EasyDUB's full-train files
    write_atomic(root / names.forget_set(forget_set), _npy_bytes(forget))
    models: dict[str, list[dict]] = {}
    for role in ROLES:
        if role == "floor" and plan.n_models < 2:
            continue
        models[role] = []
        for i in range(plan.n_models):
            stats = load_stats(store, plan.role_stats_spec(role, i))
            if stats is None:
                raise BenchError(f"margins export: statistics of {role} {i} are missing from the cache {store.root}")
            kind, k = _file_id(plan, role, i)
            files = {}
            for split, per_stat in stats.arrays.items():
                for stat, array in per_stat.items():
                    entry = {}
                    if kind == "pretrain" and split == "retain" and whole_train:
                        full = np.zeros(n_train, dtype=array.dtype)
                        full[retain] = array
                        full[forget] = stats.arrays["forget"][stat]
                        array, entry = full, {"ids": "train"}
                    rel = names.array(STAT_FOLDERS[stat], kind, split, k, forget_set)
                    data = _npy_bytes(array)
                    write_atomic(root / rel, data)
                    files[f"{split}.{stat}"] = {"path": rel, "sha256": hashlib.sha256(data).hexdigest(), **entry}
            models[role].append({"index": i, "kind": kind, "file_id": k, "seed": plan.model_spec(role, i)["seed"],
                                 "utility": stats.utility, "train_seconds": stats.meta.get("train_seconds"),
                                 "files": files})
    manifest = {"format": FORMAT, "version": VERSION, "task": _task_spec(plan),
                "layout": {"style": "easydub", "dataset": names.dataset, "arch": names.arch, "epoch": names.epoch,
                           "forget_set": forget_set, "pretrain_retain": "train" if whole_train else "scored",
                           "floor_ids": f"{plan.n_models}..{2 * plan.n_models - 1}" if "floor" in models else None},
                "forget_ids": [int(x) for x in plan.forget_idx],
                "points": {split: [int(x) for x in ids] for split, ids in plan.points.ids.items()},
                "max_scored_points": plan.points.max_points, "n_models": plan.n_models,
                "base_seed": plan.base_seed, "models": models}
    return write_json_atomic(root / "manifest.json", manifest)


class ImportedMargins:
    """An export folder opened for scoring: checked against the run, each file verified on read."""

    def __init__(self, root: Path, manifest: dict, manifest_sha: str) -> None:
        self.root, self.manifest, self.manifest_sha = root, manifest, manifest_sha

    @classmethod
    def open(cls, folder: str | Path) -> "ImportedMargins":
        root = Path(folder).expanduser()
        path = root / "manifest.json"
        if not path.is_file():
            easydub = (" (an EasyDUB dataset folder runs as --task easydub-cifar10 --task-arg root=DIR)"
                       if (root / "margins").is_dir() else "")
            raise BenchError(f"--oracle-margins {folder}: no manifest.json there; create one with "
                             f"python -m bench margins export ... --out DIR{easydub}")
        raw = path.read_bytes()
        try:
            manifest = json.loads(raw)
        except ValueError:
            raise BenchError(f"--oracle-margins {folder}: manifest.json is not valid JSON") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise BenchError(f"--oracle-margins {folder}: manifest field 'format' is {manifest.get('format')!r}, "
                             f"expected {FORMAT!r}")
        if manifest.get("version") not in READABLE_VERSIONS:
            raise BenchError(f"--oracle-margins {folder}: manifest field 'version' is {manifest.get('version')!r}; "
                             f"this bench reads versions {', '.join(map(str, READABLE_VERSIONS))}: export again "
                             "with this version (python -m bench margins export ...)")
        return cls(root, manifest, hashlib.sha256(raw).hexdigest())

    def _mismatch(self, field: str, theirs: object, ours: object) -> BenchError:
        def short(value: object) -> str:
            text = json.dumps(value, default=str)
            return text if len(text) < 120 else text[:117] + "..."
        return BenchError(f"--oracle-margins {self.root}: field '{field}' does not match this run "
                          f"(export: {short(theirs)}; run: {short(ours)}); export margins for this exact "
                          "configuration or run without --oracle-margins")

    def check(self, plan: "UnitPlan") -> "ImportedMargins":
        """Refuse an export for another task spec, forget set, point set or too few models."""
        ours, theirs = _task_spec(plan), self.manifest.get("task", {})
        for key in ("name", "version", "params", "recipe"):
            if isinstance(ours[key], dict) and isinstance(theirs.get(key), dict):
                for name in sorted(set(ours[key]) | set(theirs[key])):
                    if ours[key].get(name) != theirs[key].get(name):
                        raise self._mismatch(f"task.{key}.{name}", theirs[key].get(name), ours[key].get(name))
            elif ours[key] != theirs.get(key):
                raise self._mismatch(f"task.{key}", theirs.get(key), ours[key])
        if self.manifest.get("forget_ids") != [int(x) for x in plan.forget_idx]:
            raise self._mismatch("forget_ids", self.manifest.get("forget_ids"), [int(x) for x in plan.forget_idx])
        for split, ids in plan.points.ids.items():
            if self.manifest.get("points", {}).get(split) != [int(x) for x in ids]:
                raise self._mismatch(f"points.{split}", self.manifest.get("points", {}).get(split),
                                     [int(x) for x in ids])
        needed = {"oracle": plan.n_models, "floor": plan.n_models if plan.n_models >= 2 else 0}
        for role, count in needed.items():
            have = len(self.manifest.get("models", {}).get(role, []))
            if have < count:
                raise self._mismatch(f"models.{role}", f"{have} models", f"{count} models (--n-models)")
        return self

    def stats(self, role: str, i: int) -> ModelStats:
        """Model ``i`` of ``role`` read from its files, each checked against the manifest's sha256."""
        entry = self.manifest["models"][role][i]
        arrays: dict[str, dict[str, np.ndarray]] = {}
        for name, info in entry["files"].items():
            path = self.root / info["path"]
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                raise BenchError(f"--oracle-margins: {path} is listed in the manifest but missing") from None
            if hashlib.sha256(data).hexdigest() != info["sha256"]:
                raise BenchError(f"--oracle-margins: {path} does not match its sha256 in the manifest (corrupt or "
                                 "edited); export again")
            split, stat = name.split(".", 1)
            array = np.load(io.BytesIO(data), allow_pickle=False)
            if info.get("ids") == "train":  # EasyDUB's pretrain retain files: one value per training point
                array = array[np.asarray(self.manifest["points"][split], dtype=np.int64)]
            arrays.setdefault(split, {})[stat] = array
        return ModelStats(arrays, entry["utility"], {"train_seconds": entry.get("train_seconds")})

    def supplies(self, role: str, i: int) -> bool:
        """Exports hold statistics only: every model a run loads is trained (or cached) as usual."""
        return False

    def model(self, role: str, i: int, device) -> None:
        return None

    def describe(self) -> dict:
        return {"dir": str(self.root), "manifest_sha256": self.manifest_sha, "n_models": self.manifest["n_models"]}


def export_margins(task, *, n_models: int, out: str | Path, store: "ModelStore", executor, seed: int = 0,
                   forget_ids: list[int] | None = None, max_scored_points: int | None = None, device: str = "auto",
                   progress: bool = False, log=lambda _m: None, forget_set_number: int = 1) -> Path:
    """Train (or load) N originals, oracles and floor models, compute their statistics as units do, export."""
    from bench.runner import RunSpec, make_plan, resolve_device, warm_up
    from bench.statistics import DEFAULT_MAX_SCORED_POINTS
    from bench.atomic import remove_stale_tmp
    from bench.units import UnitPlan, role_stats_job
    if n_models < 1:
        raise BenchError(f"--n-models must be at least 1, got {n_models}")
    dev = resolve_device(device)
    warm_up()
    remove_stale_tmp(store.root)
    spec = RunSpec(method=None, task=task, seed=seed, n_models=n_models, forget_ids=forget_ids, device=str(dev),
                   max_scored_points=max_scored_points or DEFAULT_MAX_SCORED_POINTS)
    plan, data = make_plan(spec, store, dev)
    if plan.imported is not None:
        raise BenchError(f"task '{task.name}' reads its models and margins from files already; share those files")
    jobs = [(role, i) for role in ROLES if role != "floor" or n_models >= 2 for i in range(n_models)
            if not store.contains(plan.role_stats_spec(role, i))]
    if jobs:
        need: dict[str, set[int]] = {role: {i for r, i in jobs if r == role} for role in ROLES}
        from bench.runner import ROLE_LABELS
        from oracles.ensemble import ensure_models
        for role, indices in need.items():
            if indices:
                excluded = np.array([], dtype=np.int64) if role == "original" else plan.forget_idx
                ensure_models(task, excluded, [plan.seeds[role][i] for i in sorted(indices)], device=dev,
                              store=store, executor=executor, label=ROLE_LABELS[role], progress=progress, log=log)
        worker = UnitPlan(**{**plan.__dict__, "parallel": executor.parallel})
        for _ in executor.map(role_stats_job, [(worker, role, i) for role, i in jobs]):
            pass
    log(f"margins export: {len(jobs)} model statistics computed, "
        f"{n_models * (3 if n_models >= 2 else 2) - len(jobs)} cached")
    return write_export(plan, store, out, n_train=len(data.train), forget_set=forget_set_number)
