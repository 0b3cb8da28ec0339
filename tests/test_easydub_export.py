"""Margins we export use EasyDUB's per-model layout: read back by the EasyDUB reader; version 1 still read."""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import shutil

import numpy as np
import pytest

from bench.errors import BenchError
from bench.executor import Executor
from bench.margins_io import ImportedMargins, export_margins, export_names
from bench.registry import METHODS
from bench.runner import RunSpec, run
from oracles.cache import ModelStore
from tasks.vision.cifar10 import Cifar10
from tasks.easydub.layout import CIFAR10
from tasks.easydub.reader import EasyDubReader
from test_vision import write_cifar

N = 2


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """cifar10 on a 100-image CIFAR-format folder, width 4, one epoch: N originals, oracles, floor models."""
    base = tmp_path_factory.mktemp("cifar-export")
    write_cifar(base / "data")
    task = Cifar10(data_root=str(base / "data"), verify=False, width=4, epochs=1, forget_size=5, batch_size=64)
    store = ModelStore(base / "cache")
    export_margins(task, n_models=N, out=base / "export", store=store, executor=Executor(), forget_set_number=3)
    return task, store, base / "export"


def test_export_reads_back_with_the_easydub_reader(exported):
    task, _, folder = exported
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["version"] == 2 and manifest["layout"]["pretrain_retain"] == "train"
    names = export_names(task)
    assert (names.dataset, names.arch, names.epoch) == ("cifar10", "resnet9", 0)
    layout = dataclasses.replace(CIFAR10, names=names)
    reader = EasyDubReader(folder, layout, 3)
    forget = reader.forget_ids(100)
    assert forget.tolist() == manifest["forget_ids"]
    retain = np.asarray(manifest["points"]["retain"])
    assert len(retain) == 95
    imported = ImportedMargins.open(folder)
    for i in range(N):
        original = imported.stats("original", i)
        full = reader.margins("pretrain", "retain", i, 100, "the training set")  # every training point, as theirs
        np.testing.assert_array_equal(full[retain], original.arrays["retain"]["margin"])
        np.testing.assert_array_equal(full[forget], original.arrays["forget"]["margin"])
        np.testing.assert_array_equal(reader.margins("pretrain", "forget", i, 5), original.arrays["forget"]["margin"])
        for role, k in (("oracle", i), ("floor", N + i)):
            stats = imported.stats(role, i)
            for split, size in (("forget", 5), ("retain", 95), ("val", 20)):
                np.testing.assert_array_equal(reader.margins("oracle", split, k, size), stats.arrays[split]["margin"])
    # the files are EasyDUB's names exactly
    assert (folder / "margins/cifar10/oracle/forget_3/retain/resnet9/id_3_epoch_0.npy").is_file()
    assert (folder / "forget_sets/cifar10/forget_set_3.npy").is_file()


def test_a_sampled_export_holds_the_scored_points_only(exported, tmp_path):
    task, store, _ = exported
    folder = export_margins(task, n_models=N, out=tmp_path / "sampled", store=store, executor=Executor(),
                            max_scored_points=30).parent
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["layout"]["pretrain_retain"] == "scored" and len(manifest["points"]["retain"]) == 30
    reader = EasyDubReader(folder, dataclasses.replace(CIFAR10, names=export_names(task)), 1)
    original = ImportedMargins.open(folder).stats("original", 1)
    np.testing.assert_array_equal(reader.margins("pretrain", "retain", 1, 30), original.arrays["retain"]["margin"])


def test_export_scores_equal_a_run_that_trained_the_oracles(exported, tmp_path):
    task, store, folder = exported
    method = METHODS.get("noop")()
    reference = run(RunSpec(method=method, task=task, n_models=N), store=store)
    imported = run(RunSpec(method=method, task=task, n_models=N, oracle_margins=str(folder)),
                   store=ModelStore(tmp_path / "fresh"))
    assert json.dumps(imported["metrics"], sort_keys=True) == json.dumps(reference["metrics"], sort_keys=True)


def _as_version_1(folder, target):
    """The same export rewritten in the version-1 layout (<role>/<index:05d>/<split>.<stat>.npy)."""
    manifest = json.loads((folder / "manifest.json").read_text())
    for role, entries in manifest["models"].items():
        for entry in entries:
            files = {}
            for name, info in entry["files"].items():
                array = np.load(folder / info["path"])
                if info.get("ids") == "train":
                    array = array[np.asarray(manifest["points"][name.split(".")[0]])]
                buffer = io.BytesIO()
                np.save(buffer, array)
                rel = f"{role}/{entry['index']:05d}/{name}.npy"
                (target / rel).parent.mkdir(parents=True, exist_ok=True)
                (target / rel).write_bytes(buffer.getvalue())
                files[name] = {"path": rel, "sha256": hashlib.sha256(buffer.getvalue()).hexdigest()}
            entry["files"] = files
    manifest["version"] = 1
    manifest.pop("layout")
    (target / "manifest.json").write_text(json.dumps(manifest))


def test_version_1_exports_are_still_read_and_unknown_versions_refused(exported, tmp_path):
    task, store, folder = exported
    old = tmp_path / "v1"
    _as_version_1(folder, old)
    method = METHODS.get("noop")()
    new = run(RunSpec(method=method, task=task, n_models=N, oracle_margins=str(folder)), store=store)
    legacy = run(RunSpec(method=method, task=task, n_models=N, oracle_margins=str(old)), store=store)
    assert json.dumps(legacy["metrics"], sort_keys=True) == json.dumps(new["metrics"], sort_keys=True)
    future = tmp_path / "v9"
    shutil.copytree(old, future)
    manifest = json.loads((future / "manifest.json").read_text())
    manifest["version"] = 9
    (future / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BenchError, match=r"'version' is 9; this bench reads versions 1, 2: export again"):
        ImportedMargins.open(future)


def test_an_easydub_folder_given_as_oracle_margins_is_pointed_to_the_task(tmp_path):
    (tmp_path / "margins").mkdir()
    with pytest.raises(BenchError, match=r"runs as --task easydub-cifar10 --task-arg root=DIR"):
        ImportedMargins.open(tmp_path)
