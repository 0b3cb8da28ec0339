"""EasyDUB's models and margins as a run's external source (``UnitPlan.imported``): nothing of theirs is trained.

Unit i unlearns their pretrain model i (loaded from its checkpoint); it is scored against their oracle margins
0..N-1 of the chosen forget set, and their oracles N..2N-1 scored against 0..N-1 form the noise floor, the
same split of the 200 oracles as EasyDUB's own use of ids 0..99. Fewer than 2N oracle margin files is an error
that says the largest N the folder supports. Oracle-matching targets are their oracle checkpoints 2N+i when
present (else trained with their recipe). Loss and challenge confidence are derived from margins exactly
(``tasks.easydub.derived``); accuracy comes from their logits files when present.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from bench.statistics import ModelStats
from tasks.easydub.derived import confidence_from_margin, loss_from_margin
from tasks.easydub.reader import DatasetError, EasyDubReader
from tasks.easydub.resnet9 import load_checkpoint

if TYPE_CHECKING:
    from bench.units import UnitPlan

SPLITS = ("forget", "retain", "val")
ALIGNMENT_POINTS = 256  # per split, for the check of their precomputed pretrain margins against ours


def _ids_text(lo: int, hi: int) -> str:
    return f"{lo}..{hi}" if hi > lo else str(lo)


@dataclass
class EasyDubSource:
    """Opened by the task, checked against the plan (``check``), then read by units and the reduce step."""

    reader: EasyDubReader
    task: object  # the EasyDubTask (its make_model builds the architecture the checkpoints load into)
    n_models: int = 0
    positions: dict[str, np.ndarray] = field(default_factory=dict)  # file positions of the scored points
    labels: dict[str, np.ndarray] = field(default_factory=dict)
    lengths: dict[str, int] = field(default_factory=dict)
    logits: bool = False
    alignment: dict = field(default_factory=dict)

    # ---- the plan-time check -----------------------------------------------------------------------------
    def check(self, plan: "UnitPlan") -> "EasyDubSource":
        """Refuse a folder that cannot serve this run; record where every scored point sits in the files."""
        from bench.units import load_data
        reader, n = self.reader, plan.n_models
        data = load_data(plan.task, plan.forget_idx, torch.device("cpu"))
        n_train, n_val = len(data.train), len(data.val)
        order = reader.forget_ids(n_train)
        if not np.array_equal(np.sort(order), plan.forget_idx):
            raise DatasetError(f"the run's forget set ({len(plan.forget_idx)} ids) is not EasyDUB's forget set "
                               f"{reader.forget_set} ({len(order)} ids in {reader.path(reader.names.forget_set(reader.forget_set))}); "
                               "drop --forget-ids and choose the set with --task-arg forget_set=F")
        retain = data.retain_idx
        self.lengths = {"forget": len(order), "retain": len(retain), "val": n_val}
        self.n_models = n
        needed = 2 * n if n >= 2 else n
        have = reader.count_oracles(needed)
        if have < needed:
            first = reader.missing(reader.oracle_margin_files(have))
            raise DatasetError(
                f"--n-models {n} needs oracle margins {_ids_text(0, needed - 1)} of forget set {reader.forget_set} "
                f"(0..{n - 1} to score against{f', {n}..{needed - 1} for the noise floor' if n >= 2 else ''}); "
                f"{reader.root} has them for {f'oracles 0..{have - 1}' if have else 'no oracle'} only (first missing: "
                f"{first[0]}). Use --n-models {max(1, have // 2)} or fewer, or complete the download: {reader.hint()}")
        sources = sorted({plan.source(i) for i in range(n)})
        reader.require([reader.names.model("pretrain", k) for k in sources], "for the pretrain models (originals)")
        sorted_order = np.argsort(order, kind="stable")
        ids = plan.points.ids
        self.positions = {"forget": sorted_order[np.searchsorted(order[sorted_order], ids["forget"])],
                          "retain": np.searchsorted(retain, ids["retain"]),
                          "val": np.asarray(ids["val"], dtype=np.int64)}
        self.labels = {"forget": data.train.y[ids["forget"]].numpy(), "retain": data.train.y[ids["retain"]].numpy(),
                       "val": data.val.y[ids["val"]].numpy()}
        for k in (0, needed - 1):  # shapes and dtypes of the first and last oracle file of every split
            for split in SPLITS:
                reader.margins("oracle", split, k, self.lengths[split], self._what(split))
        self.logits = all(reader.has_logits("oracle", split, k) for split in SPLITS for k in (0, needed - 1))
        self.alignment = self._check_alignment(plan, data, n_train)
        return self

    def _what(self, split: str) -> str:
        return {"forget": f"forget set {self.reader.forget_set}", "retain": "its retain set",
                "val": "the test set"}[split]

    def _check_alignment(self, plan: "UnitPlan", data, n_train: int) -> dict:
        """Our margins of pretrain model 0 against their precomputed ones, on the first points of each split:
        a wrong normalisation, image order or architecture shows up here, before any unlearning."""
        reader = self.reader
        files = {"forget": ("forget", self.lengths["forget"]), "retain": ("retain", n_train), "val": ("val", len(data.val))}
        if reader.missing([reader.names.margins("pretrain", s, 0, reader.forget_set) for s in SPLITS]):
            return {"checked": False, "reason": "no pretrain margin files for model 0"}
        device = torch.device(plan.device)
        model = self.model("original", 0, device)[0]
        order = reader.forget_ids(n_train)
        diffs = {}
        for split, (name, length) in files.items():
            theirs = reader.margins("pretrain", name, 0, length, "the training set" if split == "retain" else self._what(split))
            if split == "forget":
                ids, at = order[:ALIGNMENT_POINTS], np.arange(min(ALIGNMENT_POINTS, len(order)))
                x, y = data.train.x[ids], data.train.y[ids]
            elif split == "retain":
                ids = data.retain_idx[:ALIGNMENT_POINTS]
                at, x, y = ids, data.train.x[ids], data.train.y[ids]
            else:
                at = np.arange(min(ALIGNMENT_POINTS, len(data.val)))
                x, y = data.val.x[at], data.val.y[at]
            with torch.no_grad():
                ours = plan.task.margin(model, x.to(device), y.to(device)).float().cpu().numpy()
            diffs[split] = np.abs(ours - theirs[at].astype(np.float64))
        worst = max(float(d.max()) for d in diffs.values())
        median = float(np.median(np.concatenate(list(diffs.values()))))
        return {"checked": True, "points_per_split": ALIGNMENT_POINTS, "max_abs_diff": worst,
                "median_abs_diff": median, "agrees": bool(median < 0.05)}

    # ---- what units and the reduce step read -------------------------------------------------------------
    def supplies(self, role: str, i: int) -> bool:
        """Whether model ``role`` of unit ``i`` comes from a checkpoint here (so nothing trains it)."""
        if role == "original":
            return True
        return role == "target" and self._target_file(i).is_file()

    def _target_file(self, i: int):
        return self.reader.model_file("oracle", 2 * self.n_models + i)

    def model(self, role: str, i: int, device: torch.device) -> tuple[nn.Module, dict] | None:
        """Their checkpoint for ``role`` (original: pretrain model i; target: oracle 2N+i), or None."""
        if role == "original":
            path = self.reader.model_file("pretrain", i)
        elif role == "target" and self._target_file(i).is_file():
            path = self._target_file(i)
        else:
            return None
        model = load_checkpoint(self.task.make_model(0), path)
        return model.to(device).eval(), {"train_seconds": float("nan"), "checkpoint": str(path)}

    def stats(self, role: str, i: int) -> ModelStats:
        """Oracle i (or, for the floor, oracle N+i) from its margin files, at the plan's scored points."""
        if role not in ("oracle", "floor"):
            raise ValueError(f"EasyDUB supplies statistics of oracles and the noise floor, not {role!r}")
        k = i if role == "oracle" else self.n_models + i
        arrays: dict[str, dict[str, np.ndarray]] = {}
        utility: dict[str, dict[str, float]] = {}
        for split in SPLITS:
            pos = self.positions[split]
            margin = self.reader.margins("oracle", split, k, self.lengths[split], self._what(split))[pos]
            loss = loss_from_margin(margin)
            arrays[split] = {"margin": margin, "loss": loss}
            if split == "forget":
                arrays[split]["confidence"] = confidence_from_margin(margin)
            utility[split] = {"loss": float(loss.mean())}
            if self.logits:
                logits = self.reader.logits("oracle", split, k, self.lengths[split], self._what(split))[pos]
                utility[split] = {"accuracy": float((logits.argmax(1) == self.labels[split]).mean()), **utility[split]}
        return ModelStats(arrays, utility, {"train_seconds": None, "easydub_oracle_id": k})

    def describe(self) -> dict:
        n, reader = self.n_models, self.reader
        return {
            "dir": str(reader.root), "dataset": f"EasyDUB {reader.layout.dataset}", "forget_set": reader.forget_set,
            "n_models": n,
            "originals": f"their pretrain checkpoints {_ids_text(0, n - 1)}",
            "oracles": f"their oracle margins {_ids_text(0, n - 1)}",
            "noise_floor": f"their oracle margins {_ids_text(n, 2 * n - 1)}" if n >= 2 else None,
            "statistics": "loss = softplus(-margin) and the challenge confidence log(sigmoid(m)+1e-45) - "
                          "log(sigmoid(-m)+1e-45) are exact functions of their margins (float32 rounding aside)",
            "accuracy": ("from their logits files" if self.logits else
                         "unavailable (no logits files): oracle accuracy and the final score are null"),
            "pretrain_margin_check": self.alignment,
        }
