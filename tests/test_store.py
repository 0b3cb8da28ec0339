"""The model cache must round-trip exactly and never hand back a corrupt or mismatched entry."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save as save_tensors
from torch import nn

from oracles.cache import CacheEntry, ModelStore, cache_key, default_cache_root

SPEC = {
    "task": "digits",
    "version": "1",
    "params": {"lr": 0.1, "epochs": 3},
    "excluded_ids": [4, 8, 15],
    "seed": 3,
    "kind": "trained",
}


def _state_dict() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 2))
    state = dict(model.state_dict())
    state["transposed"] = torch.arange(12, dtype=torch.float64).reshape(3, 4).t()
    state["counts"] = torch.tensor([1, 2, 3], dtype=torch.int64)
    return state


@pytest.fixture
def logs() -> list[str]:
    return []


@pytest.fixture
def store(tmp_path: Path, logs: list[str]) -> ModelStore:
    return ModelStore(tmp_path / "cache", log=logs.append)


def _paths(store: ModelStore, spec: dict = SPEC) -> tuple[Path, Path]:
    key = cache_key(spec)
    return store.path_for(key), store.path_for(key).with_suffix(".json")


def _rewrite_manifest(store: ModelStore, edit) -> None:
    manifest_path = _paths(store)[1]
    manifest = json.loads(manifest_path.read_text())
    edit(manifest)
    manifest_path.write_text(json.dumps(manifest))


def _assert_discarded(store: ModelStore, logs: list[str], reason: str) -> None:
    assert store.load(SPEC) is None
    assert len(logs) == 1 and reason in logs[0] and cache_key(SPEC) in logs[0], logs
    assert not any(path.exists() for path in _paths(store))
    store.save(SPEC, _state_dict())
    assert store.load(SPEC) is not None


def test_save_then_load_round_trips_exactly(store: ModelStore, logs: list[str]) -> None:
    state = _state_dict()
    assert not state["transposed"].is_contiguous()
    key = store.save(SPEC, state, meta={"train_seconds": 0.8, "hostname": "box"})
    assert key == cache_key(SPEC)
    assert store.contains(SPEC)

    entry = store.load(SPEC, device=torch.device("cpu"))
    assert isinstance(entry, CacheEntry)
    assert entry.state_dict.keys() == state.keys()
    for name, tensor in state.items():
        assert entry.state_dict[name].dtype == tensor.dtype
        assert torch.equal(entry.state_dict[name], tensor), name
    assert entry.meta == {"train_seconds": 0.8, "hostname": "box"}
    assert logs == []


def test_loaded_state_dict_fits_a_fresh_model(store: ModelStore) -> None:
    model = nn.Linear(3, 2)
    store.save(SPEC, model.state_dict())
    fresh = nn.Linear(3, 2)
    fresh.load_state_dict(store.load(SPEC).state_dict)
    x = torch.randn(4, 3)
    assert torch.equal(fresh(x), model(x))


def test_save_does_not_alias_the_callers_tensors(store: ModelStore) -> None:
    state = {"w": torch.zeros(3)}
    store.save(SPEC, state)
    state["w"] += 1
    assert torch.equal(store.load(SPEC).state_dict["w"], torch.zeros(3))


def test_shared_storage_tensors_can_be_saved(store: ModelStore) -> None:
    base = torch.arange(6.0)
    store.save(SPEC, {"a": base, "b": base[2:], "tied": base})
    loaded = store.load(SPEC).state_dict
    assert torch.equal(loaded["b"], base[2:]) and torch.equal(loaded["tied"], base)


def test_cache_key_ignores_dict_ordering() -> None:
    reordered = dict(reversed(list(SPEC.items())))
    reordered["params"] = {"epochs": 3, "lr": 0.1}
    assert cache_key(reordered) == cache_key(SPEC)
    assert len(cache_key(SPEC)) >= 24 and all(c in "0123456789abcdef" for c in cache_key(SPEC))


@pytest.mark.parametrize(
    "change",
    [
        {"seed": 4},
        {"params": {"lr": 0.2, "epochs": 3}},
        {"excluded_ids": [4, 8, 16]},
        {"excluded_ids": [4, 8]},
        {"kind": "oracle"},
        {"version": "2"},
    ],
)
def test_cache_key_differs_when_any_field_differs(change: dict) -> None:
    assert cache_key({**SPEC, **change}) != cache_key(SPEC)


def test_load_of_absent_spec_is_none(store: ModelStore, logs: list[str]) -> None:
    assert store.load(SPEC) is None
    assert not store.contains(SPEC)
    assert logs == []


def test_spec_with_tuples_matches_its_list_form(store: ModelStore) -> None:
    store.save({**SPEC, "excluded_ids": (4, 8, 15)}, {"w": torch.ones(2)})
    assert store.load(SPEC) is not None


def test_flipped_byte_is_a_checksum_mismatch(store: ModelStore, logs: list[str]) -> None:
    store.save(SPEC, _state_dict())
    tensor_path = _paths(store)[0]
    data = bytearray(tensor_path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    tensor_path.write_bytes(bytes(data))
    _assert_discarded(store, logs, "checksum mismatch")


def test_truncated_file_is_detected(store: ModelStore, logs: list[str]) -> None:
    store.save(SPEC, _state_dict())
    tensor_path = _paths(store)[0]
    tensor_path.write_bytes(tensor_path.read_bytes()[:-7])
    _assert_discarded(store, logs, "checksum mismatch")


def test_missing_manifest_removes_the_orphan_tensor_file(store: ModelStore, logs: list[str]) -> None:
    store.save(SPEC, _state_dict())
    tensor_path, manifest_path = _paths(store)
    manifest_path.unlink()
    assert not store.contains(SPEC)
    assert store.load(SPEC) is None
    assert not tensor_path.exists()
    assert len(logs) == 1 and "missing manifest" in logs[0]


def test_missing_tensor_file_removes_the_manifest(store: ModelStore, logs: list[str]) -> None:
    store.save(SPEC, _state_dict())
    tensor_path, manifest_path = _paths(store)
    tensor_path.unlink()
    _assert_discarded(store, logs, "missing tensor file")


def test_edited_spec_in_manifest_is_a_spec_mismatch(store: ModelStore, logs: list[str]) -> None:
    store.save(SPEC, _state_dict())
    _rewrite_manifest(store, lambda m: m["spec"].update(seed=99))
    _assert_discarded(store, logs, "spec mismatch")


def test_wrong_key_in_manifest_is_a_spec_mismatch(store: ModelStore, logs: list[str]) -> None:
    store.save(SPEC, _state_dict())
    _rewrite_manifest(store, lambda m: m.update(key=cache_key({**SPEC, "seed": 99})))
    _assert_discarded(store, logs, "spec mismatch")


@pytest.mark.parametrize("garbage", [b"{not json", b"[1, 2]", b'{"format": 1}', b"\xff\xfe\x00"])
def test_garbage_manifest_is_unreadable(store: ModelStore, logs: list[str], garbage: bytes) -> None:
    store.save(SPEC, _state_dict())
    _paths(store)[1].write_bytes(garbage)
    _assert_discarded(store, logs, "unreadable manifest")


def test_garbage_tensors_with_matching_checksum_are_unreadable(store: ModelStore, logs: list[str]) -> None:
    store.save(SPEC, _state_dict())
    junk = b"this is not a safetensors file"
    _paths(store)[0].write_bytes(junk)
    _rewrite_manifest(store, lambda m: m.update(sha256=hashlib.sha256(junk).hexdigest()))
    _assert_discarded(store, logs, "unreadable tensors")


def test_tensors_unlike_the_manifest_are_a_layout_mismatch(store: ModelStore, logs: list[str]) -> None:
    store.save(SPEC, {"w": torch.ones(2, 3)})
    other = save_tensors({"w": torch.ones(3, 2)})
    _paths(store)[0].write_bytes(other)
    _rewrite_manifest(store, lambda m: m.update(sha256=hashlib.sha256(other).hexdigest()))
    _assert_discarded(store, logs, "tensor layout mismatch")


def test_discard_removes_both_files(store: ModelStore) -> None:
    store.save(SPEC, _state_dict())
    store.discard(SPEC)
    assert not any(path.exists() for path in _paths(store))
    store.discard(SPEC)  # discarding an absent entry is fine


def test_saves_leave_no_temp_files(store: ModelStore) -> None:
    for seed in (1, 2, 3):
        store.save({**SPEC, "seed": seed}, _state_dict(), meta={"seed": seed})
    store.save(SPEC, _state_dict())  # SPEC has seed 3: overwrites an existing entry
    files = [p for p in store.root.rglob("*") if p.is_file() and p.name != ".lock"]  # one lock per shard
    assert not [p for p in files if p.name.endswith(".tmp")]
    assert len(files) == 6


def test_layout_on_disk(store: ModelStore) -> None:
    key = store.save(SPEC, {"w": torch.ones(1)})
    assert store.path_for(key) == store.root / key[:2] / f"{key}.safetensors"
    manifest = json.loads((store.root / key[:2] / f"{key}.json").read_text())
    assert manifest["key"] == key and manifest["spec"] == SPEC and manifest["format"] == 1
    assert manifest["tensors"] == {"w": {"shape": [1], "dtype": "float32"}}


def test_path_for_rejects_non_keys(store: ModelStore) -> None:
    with pytest.raises(ValueError):
        store.path_for("../../etc/passwd")


def test_default_cache_root_honours_bench_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "elsewhere"))
    assert default_cache_root() == tmp_path / "elsewhere"
    monkeypatch.delenv("BENCH_CACHE")
    assert default_cache_root() == Path.home() / ".cache" / "unlearning-bench"
