"""A content-addressed cache of trained torch models.

Training ensembles (originals, retrained oracles, unlearned models) is the expensive part of a
benchmark run, so each model is cached on disk under a hash of everything that determines it.
An entry is only ever handed back after it has been checked against its manifest: a corrupt or
mismatched entry (bad checksum, a manifest or meta of the wrong shape, a folder where a file belongs) is
logged, deleted and reported as absent, so the caller rebuilds it instead of
silently scoring a wrong model.

Layout: ``root/<key[:2]>/<key>.safetensors`` with the manifest ``<key>.json`` beside it. The
tensors are written first and the manifest last, so a manifest's presence means the save finished. A save
holds ``root/<key[:2]>/.lock`` (an advisory file lock) while it replaces the two files; a reader that sees a
mismatch re-reads under that lock before it calls the entry corrupt.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil

try:
    import fcntl
except ImportError:  # not POSIX: no advisory locks; readers then only retry
    fcntl = None  # type: ignore[assignment]
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from bench.atomic import write_atomic, write_json_atomic

FORMAT = 1
KEY_CHARS = 24
_MANIFEST_FIELDS = ("format", "key", "spec", "sha256", "tensors", "meta")
_KEY_PATTERN = re.compile(r"[0-9a-f]{2,64}")
_READ_ATTEMPTS = 3
MetaSchema = dict[str, type | tuple[type, ...]]


def _canonical(obj: Any) -> str:
    """The one JSON spelling of ``obj``: key order, tuples vs lists and odd types stop mattering."""
    return json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))


def _json_round_trip(obj: Any) -> Any:
    """What ``obj`` becomes after being written to and read back from a manifest."""
    return json.loads(_canonical(obj))


def cache_key(spec: dict) -> str:
    """Hash of everything that determines a model, so equal specs share one cache entry."""
    return hashlib.sha256(_canonical(spec).encode()).hexdigest()[:KEY_CHARS]


def default_cache_root() -> Path:
    """``$BENCH_CACHE`` if set (CI, shared scratch disks), else the per-user cache folder."""
    override = os.environ.get("BENCH_CACHE")
    if override:
        return Path(override).expanduser()
    return Path.home() / ".cache" / "unlearning-bench"


@dataclass
class CacheEntry:
    """A verified cached model: its tensors and the extras saved alongside them."""

    state_dict: dict[str, torch.Tensor]
    meta: dict = field(default_factory=dict)


class CorruptEntry(Exception):
    """Raised inside verification; the message is the reason shown in the log line."""


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _layout(tensors: dict[str, torch.Tensor]) -> dict[str, dict[str, Any]]:
    """Names, shapes and dtypes: what the manifest promises the tensor file contains."""
    return {name: {"shape": list(t.shape), "dtype": _dtype_name(t.dtype)} for name, t in tensors.items()}


def _detached_cpu_copy(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Fresh contiguous CPU tensors: safetensors rejects views, strides and shared storage."""
    copies = {}
    for name, tensor in state_dict.items():
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"cache: state_dict[{name!r}] is a {type(tensor).__name__}, not a tensor")
        copies[name] = tensor.detach().to("cpu").clone(memory_format=torch.contiguous_format)
    return copies


class ModelStore:
    """Saves and verifies cached models under ``root``; never returns an entry it could not check."""

    def __init__(self, root: str | Path, log: Callable[[str], None] = lambda m: None) -> None:
        self.root = Path(root)
        self.log = log
        self.failed_saves = 0

    def path_for(self, key: str) -> Path:
        """Where the tensors of ``key`` live; sharded by prefix so no folder grows huge."""
        if not _KEY_PATTERN.fullmatch(key):
            raise ValueError(f"cache: {key!r} is not a cache key (expected lowercase hex)")
        return self.root / key[:2] / f"{key}.safetensors"

    def manifest_path_for(self, key: str) -> Path:
        """The manifest sits beside the tensors, same stem, ``.json``."""
        return self.path_for(key).with_suffix(".json")

    def save(self, spec: dict, state_dict: dict[str, torch.Tensor], meta: dict | None = None) -> str:
        """Store a model under the hash of ``spec``; tensors first, manifest last, both atomic."""
        key = cache_key(spec)
        tensors = _detached_cpu_copy(state_dict)
        data = save_tensors(tensors)
        manifest = {
            "format": FORMAT,
            "key": key,
            "spec": _json_round_trip(spec),
            "sha256": hashlib.sha256(data).hexdigest(),
            "tensors": _layout(tensors),
            "meta": _json_round_trip(dict(meta or {})),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        try:
            with self._lock(key):
                write_atomic(self.path_for(key), data)
                write_json_atomic(self.manifest_path_for(key), manifest)
        except OSError as err:  # full disk, read-only, file-size limit: the run goes on, only uncached
            self.failed_saves += 1
            if self.failed_saves == 1:
                self.log(f"cache: could not save to {self.root} ({err.strerror or err}); the run continues and "
                         "loses nothing, but this model (and later ones that fail likewise) will be retrained "
                         "next time; free space or point --cache-dir elsewhere")
            self.path_for(key).unlink(missing_ok=True)
            self.manifest_path_for(key).unlink(missing_ok=True)
        return key

    def load(self, spec: dict, device: str | torch.device = "cpu", meta: MetaSchema | None = None) -> CacheEntry | None:
        """The cached model for ``spec`` after full verification, or None if absent or discarded.

        ``meta`` names the extras the caller will read and their types: an entry whose meta lacks one or
        holds another type is corrupt too. An entry that fails is read again under the shard's exclusive
        lock, which a writer holds while it replaces an entry: only an entry that still fails then is
        corrupt, so a reader never deletes an entry that a concurrent writer is halfway through replacing.
        """
        key = cache_key(spec)
        tensor_path, manifest_path = self.path_for(key), self.manifest_path_for(key)
        if not tensor_path.exists() and not manifest_path.exists():
            return None
        try:
            return self._load_verified(spec, key, device, meta)
        except CorruptEntry:
            pass
        with self._lock(key):
            try:
                return self._load_verified(spec, key, device, meta)
            except CorruptEntry as problem:
                self.log(f"cache: entry {key} is corrupt ({problem}); discarding and rebuilding")
                self.discard(spec)
                return None

    def _load_verified(self, spec: dict, key: str, device: str | torch.device, meta: MetaSchema | None) -> CacheEntry:
        manifest, data = self._read_consistent(self.path_for(key), self.manifest_path_for(key))
        tensors = _verify(spec, key, manifest, data)
        _check_meta(manifest["meta"], meta or {})
        return CacheEntry(state_dict={name: t.to(device) for name, t in tensors.items()}, meta=manifest["meta"])

    @contextlib.contextmanager
    def _lock(self, key: str) -> Iterator[None]:
        """Exclusive advisory lock of the key's shard folder (a no-op where locks are unavailable)."""
        try:
            folder = self.root / key[:2]
            folder.mkdir(parents=True, exist_ok=True)
            handle = open(folder / ".lock", "a+b")  # noqa: SIM115 - held for the with-block below
        except OSError:  # read-only cache: nobody can be writing through this store
            yield
            return
        with handle:
            if fcntl is not None:
                fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    def contains(self, spec: dict) -> bool:
        """Cheap existence check (no verification): both files are present."""
        key = cache_key(spec)
        return self.path_for(key).is_file() and self.manifest_path_for(key).is_file()

    def discard(self, spec: dict) -> None:
        """Delete the entry for ``spec``; missing files are fine."""
        key = cache_key(spec)
        for path in (self.path_for(key), self.manifest_path_for(key)):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)

    def _read_consistent(self, tensor_path: Path, manifest_path: Path) -> tuple[dict, bytes]:
        """Read manifest and tensors as one pair.

        A concurrent writer of the same key replaces the tensors before the manifest, so a reader
        could pair new tensors with an old manifest and see a false checksum mismatch. Re-reading
        the manifest after the tensors and retrying if it changed avoids discarding a good entry.
        """
        for _ in range(_READ_ATTEMPTS):
            manifest_bytes = _read_or_raise(manifest_path, "missing manifest")
            data = _read_or_raise(tensor_path, "missing tensor file")
            if _read_or_none(manifest_path) == manifest_bytes:
                break
        return _parse_manifest(manifest_bytes), data


def _read_or_raise(path: Path, reason: str) -> bytes:
    content = _read_or_none(path)
    if content is None:
        raise CorruptEntry(reason)
    return content


def _read_or_none(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as err:  # a directory where a file belongs, unreadable permissions, I/O errors
        raise CorruptEntry(f"cannot read {path.name}: {err.strerror or err}") from None


def _check_meta(meta: dict, schema: MetaSchema) -> None:
    """Every extra the caller reads is present with the expected type (bool is not an int here)."""
    for name, kind in schema.items():
        value = meta.get(name)
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if name not in meta or isinstance(value, bool) or not isinstance(value, kinds):
            expected = " or ".join(k.__name__ for k in kinds)
            got = "missing" if name not in meta else type(value).__name__
            raise CorruptEntry(f"meta '{name}' should be {expected}, is {got}")


def _parse_manifest(raw: bytes) -> dict:
    """The manifest as a dict with every field we rely on, or CorruptEntry."""
    try:
        manifest = json.loads(raw)
    except ValueError as err:
        raise CorruptEntry("unreadable manifest") from err
    if not isinstance(manifest, dict) or any(name not in manifest for name in _MANIFEST_FIELDS):
        raise CorruptEntry("unreadable manifest")
    if (
        manifest["format"] != FORMAT
        or not isinstance(manifest["sha256"], str)
        or not isinstance(manifest["tensors"], dict)
        or not isinstance(manifest["meta"], dict)
    ):
        raise CorruptEntry("unreadable manifest")
    return manifest


def _verify(spec: dict, key: str, manifest: dict, data: bytes) -> dict[str, torch.Tensor]:
    """Check the entry answers ``spec`` and its bytes are intact; return the CPU tensors."""
    if manifest["key"] != key or _canonical(manifest["spec"]) != _canonical(spec):
        raise CorruptEntry("spec mismatch")
    if hashlib.sha256(data).hexdigest() != manifest["sha256"]:
        raise CorruptEntry("checksum mismatch")
    try:
        tensors = load_tensors(data)
    except Exception as err:  # safetensors raises its own error types for malformed headers
        raise CorruptEntry("unreadable tensors") from err
    if _layout(tensors) != manifest["tensors"]:
        raise CorruptEntry("tensor layout mismatch")
    return tensors
