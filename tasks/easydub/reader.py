"""Reading an EasyDUB-layout folder without trusting it: every file found, shaped and typed as the layout says.

Missing files are reported together (the first few, and how many), with how to get the dataset. Arrays are
loaded with ``allow_pickle=False`` and checked on load: margins 1-D floating point with one value per point of
their split, logits [points, classes], forget sets 1-D distinct integers inside the training set. Every
message names the file. Index alignment: pretrain retain margins cover every training point (or, in our own
exports with sampled points, the scored retain points), oracle retain margins the retain points in sorted
order, forget margins the forget set in the file's order, val margins the test set.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from bench.errors import BenchError
from tasks.easydub.layout import Layout

SHOWN_MISSING = 5


class DatasetError(BenchError):
    """An EasyDUB folder that is missing, incomplete or holds a file of the wrong shape or type."""


def _count(n: int) -> str:
    return f"{n:,}"


@dataclass(frozen=True)
class EasyDubReader:
    """One dataset root, one layout entry, one forget set."""

    root: Path
    layout: Layout
    forget_set: int

    @property
    def names(self):
        return self.layout.names

    def path(self, rel: str) -> Path:
        return self.root / rel

    def hint(self) -> str:
        return self.layout.download_hint(str(self.root))

    def require_root(self) -> None:
        if not self.root.is_dir():
            raise DatasetError(f"EasyDUB dataset folder {self.root} does not exist (--task-arg root=...); "
                               f"{self.hint()}")

    def missing(self, rels: list[str]) -> list[str]:
        return [rel for rel in rels if not self.path(rel).is_file()]

    def require(self, rels: list[str], purpose: str) -> None:
        """Refuse an incomplete folder, listing the first missing files."""
        self.require_root()
        absent = self.missing(rels)
        if absent:
            shown = ", ".join(absent[:SHOWN_MISSING]) + (", ..." if len(absent) > SHOWN_MISSING else "")
            raise DatasetError(f"EasyDUB dataset under {self.root} is incomplete: {_count(len(absent))} of "
                               f"{_count(len(rels))} files {purpose} are missing ({shown}); {self.hint()}")

    def _load(self, rel: str) -> np.ndarray:
        path = self.path(rel)
        if not path.is_file():
            self.require([rel], "needed here")
        try:
            return np.load(path, allow_pickle=False)
        except ValueError as err:
            reason = "it holds Python objects (a pickle), not numbers" if "allow_pickle" in str(err) else str(err)
            raise DatasetError(f"{path} is not a plain .npy array: {reason}; download it again") from None
        except (OSError, EOFError) as err:
            raise DatasetError(f"{path} cannot be read as .npy ({err}); download it again") from None

    def forget_ids(self, n_train: int) -> np.ndarray:
        """The forget set's training indices, in the file's order (forget margins follow that order)."""
        rel = self.names.forget_set(self.forget_set)
        if not self.path(rel).is_file():
            self.require_root()
            have = sorted(p.name for p in self.path(rel).parent.glob("forget_set_*.npy"))
            raise DatasetError(f"forget set {self.forget_set} not found: {self.path(rel)} is missing"
                               + (f" (this folder has {', '.join(have)}: choose one with --task-arg forget_set=F)"
                                  if have else f"; {self.hint()}"))
        ids = self._load(rel)
        path = self.path(rel)
        if ids.ndim != 1 or ids.size == 0:
            raise DatasetError(f"{path} should be a non-empty 1-D array of training indices, has shape {ids.shape}")
        if not np.issubdtype(ids.dtype, np.integer):
            raise DatasetError(f"{path} should hold integer training indices, has dtype {ids.dtype}; download it again")
        ids = ids.astype(np.int64)
        bad = ids[(ids < 0) | (ids >= n_train)]
        if bad.size:
            raise DatasetError(f"{path} has indices outside the {_count(n_train)} training images (e.g. {int(bad[0])}): "
                               "a forget set of another dataset, or the wrong data folder")
        if np.unique(ids).size != ids.size:
            raise DatasetError(f"{path} repeats training indices; download it again")
        if ids.size >= n_train:
            raise DatasetError(f"{path} covers every training image; the retain set would be empty")
        return ids

    def _check_rows(self, arr: np.ndarray, rel: str, length: int, what: str) -> None:
        if arr.shape[0] != length:
            raise DatasetError(f"{self.path(rel)} has {_count(arr.shape[0])} values but {what} has {_count(length)} "
                               "points: a file of another forget set or dataset, or misaligned indices")

    def margins(self, kind: str, split: str, k: int, length: int | None, what: str = "") -> np.ndarray:
        """Model ``k``'s margins on ``split``: 1-D floating point, ``length`` values (``what`` names the set;
        None: any length, for the first file that tells how large the dataset is)."""
        rel = self.names.margins(kind, split, k, self.forget_set)
        arr = self._load(rel)
        if arr.ndim != 1:
            raise DatasetError(f"{self.path(rel)} should be a 1-D array of margins (one per point), has shape "
                               f"{arr.shape}")
        if not np.issubdtype(arr.dtype, np.floating):
            raise DatasetError(f"{self.path(rel)} should hold floating-point margins, has dtype {arr.dtype}")
        if length is not None:
            self._check_rows(arr, rel, length, what)
        if np.isnan(arr).any():
            raise DatasetError(f"{self.path(rel)} contains NaN margins; download it again")
        return arr

    def has_logits(self, kind: str, split: str, k: int) -> bool:
        return self.path(self.names.logits(kind, split, k, self.forget_set)).is_file()

    def logits(self, kind: str, split: str, k: int, length: int, what: str) -> np.ndarray:
        rel = self.names.logits(kind, split, k, self.forget_set)
        arr = self._load(rel)
        if arr.ndim != 2 or arr.shape[1] != self.layout.num_classes:
            raise DatasetError(f"{self.path(rel)} should be logits of shape [points, {self.layout.num_classes}], "
                               f"has shape {arr.shape}")
        if not np.issubdtype(arr.dtype, np.floating):
            raise DatasetError(f"{self.path(rel)} should hold floating-point logits, has dtype {arr.dtype}")
        self._check_rows(arr, rel, length, what)
        return arr

    def oracle_margin_files(self, k: int) -> list[str]:
        return [self.names.margins("oracle", split, k, self.forget_set) for split in ("retain", "forget", "val")]

    def count_oracles(self, limit: int) -> int:
        """How many oracles 0, 1, 2, ... have margins for every split (stops at the first gap or ``limit``)."""
        k = 0
        while k < limit and not self.missing(self.oracle_margin_files(k)):
            k += 1
        return k

    def model_file(self, kind: str, k: int) -> Path:
        return self.path(self.names.model(kind, k, self.forget_set))


def download(reader: EasyDubReader, log: Callable[[str], None] = lambda _m: None) -> None:
    """Fetch what runs on ``reader.forget_set`` read from the Hugging Face hub (huggingface_hub is optional)."""
    layout = reader.layout
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise DatasetError("--task-arg download=true needs the huggingface_hub package: pip install huggingface_hub; "
                           f"or download by hand: {reader.hint()}") from None
    log(f"downloading {layout.hf_repo} (forget set {reader.forget_set}) to {reader.root} ...")
    try:
        snapshot_download(repo_id=layout.hf_repo, repo_type="dataset", local_dir=str(reader.root),
                          allow_patterns=layout.download_patterns(reader.forget_set))
    except Exception as err:  # offline, gated, disk full: one sentence with the manual route
        raise DatasetError(f"downloading {layout.hf_repo} to {reader.root} failed ({type(err).__name__}: {err}); "
                           f"{reader.hint()}") from None
