"""EasyDUB's file naming for per-model arrays, shared by ``margins export`` and the EasyDUB reader.

One ``.npy`` per model and split, in a tree keyed by what a file holds (``margins``, ``logits``, and our
``losses``/``confidences``), the dataset, pretrain (originals) or oracle, the forget set and the architecture::

    <kind>/<dataset>/pretrain/{retain,val}/<arch>/id_<k>_epoch_<e>.npy
    <kind>/<dataset>/pretrain/forget_<f>/<arch>/id_<k>_epoch_<e>.npy
    <kind>/<dataset>/oracle/forget_<f>/{retain,forget,val}/<arch>/id_<k>_epoch_<e>.npy
    models/<dataset>/pretrain/<arch>/id_<k>_epoch_<e>.pt
    models/<dataset>/oracle/forget_<f>/<arch>/id_<k>_epoch_<e>.pt
    forget_sets/<dataset>/forget_set_<f>.npy

``e`` is the checkpoint's epoch counted from 0 (EasyDUB's ``epoch_23`` is the last of 24 epochs).
"""
from __future__ import annotations

from dataclasses import dataclass

KINDS = ("pretrain", "oracle")
SPLITS = ("forget", "retain", "val")


@dataclass(frozen=True)
class FileNames:
    """Relative paths (POSIX strings) of every file of one dataset/architecture/epoch in EasyDUB's layout."""

    dataset: str
    arch: str
    epoch: int

    def _leaf(self, k: int, suffix: str) -> str:
        return f"{self.arch}/id_{int(k)}_epoch_{self.epoch}.{suffix}"

    def forget_set(self, f: int) -> str:
        return f"forget_sets/{self.dataset}/forget_set_{int(f)}.npy"

    def array(self, top: str, kind: str, split: str, k: int, f: int) -> str:
        """``top`` (margins, logits, losses, confidences) of model ``k`` of ``kind`` on ``split``."""
        if kind not in KINDS or split not in SPLITS:
            raise ValueError(f"kind must be one of {KINDS} and split one of {SPLITS}, got {kind!r}, {split!r}")
        if kind == "pretrain":
            middle = f"forget_{int(f)}" if split == "forget" else split
            return f"{top}/{self.dataset}/pretrain/{middle}/{self._leaf(k, 'npy')}"
        return f"{top}/{self.dataset}/oracle/forget_{int(f)}/{split}/{self._leaf(k, 'npy')}"

    def margins(self, kind: str, split: str, k: int, f: int) -> str:
        return self.array("margins", kind, split, k, f)

    def logits(self, kind: str, split: str, k: int, f: int) -> str:
        return self.array("logits", kind, split, k, f)

    def model(self, kind: str, k: int, f: int | None = None) -> str:
        if kind == "pretrain":
            return f"models/{self.dataset}/pretrain/{self._leaf(k, 'pt')}"
        return f"models/{self.dataset}/oracle/forget_{int(f)}/{self._leaf(k, 'pt')}"
