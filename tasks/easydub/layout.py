"""EasyDUB-style datasets, one table entry each: file naming, sizes, input normalisation, what to download.

A second dataset in the same layout (Living-17, say) is one more ``Layout`` in ``LAYOUTS`` plus an image
reader for its ``data`` folder; the reader, the margin source and the reproduction take the entry as given.
"""
from __future__ import annotations

from dataclasses import dataclass

from bench.margins_layout import FileNames

HF_REPO = "easydub/EasyDUB-dataset"


@dataclass(frozen=True)
class Layout:
    """One EasyDUB-style dataset: where its files are and what the full release holds."""

    names: FileNames
    n_train: int          # full release: pretrain retain margins cover every training image
    n_val: int            # the test set, scored as "val"
    num_classes: int
    mean: tuple[float, float, float]   # input normalisation their models were trained with
    std: tuple[float, float, float]
    forget_sets: tuple[int, ...]
    n_pretrain: int       # pretrain models in the full release
    n_oracles: int        # oracle models (and margin files) per forget set in the full release
    data_folder: str = "data"   # torchvision's layout of the images, below the dataset root
    hf_repo: str = HF_REPO

    @property
    def dataset(self) -> str:
        return self.names.dataset

    def download_patterns(self, forget_set: int) -> list[str]:
        """What a run on one forget set reads: forget sets, pretrain margins and models, that set's oracle
        margins and logits (not the 2,000 oracle checkpoints, 9 MB each, which only oracle-matching targets use)."""
        ds = self.dataset
        return [f"forget_sets/{ds}/*", f"margins/{ds}/pretrain/**", f"margins/{ds}/oracle/forget_{forget_set}/**",
                f"logits/{ds}/oracle/forget_{forget_set}/**", f"models/{ds}/pretrain/**", "README.md"]

    def download_hint(self, root: str) -> str:
        return (f"get the dataset with: huggingface-cli download --repo-type dataset {self.hf_repo} --local-dir {root} "
                f"(that fetches all 2,200 checkpoints; add --include \"forget_sets/*\" \"margins/*\" \"logits/*\" "
                f"\"models/{self.dataset}/pretrain/*\" for only what runs read), or add --task-arg download=true "
                "(needs the huggingface_hub package and internet)")


CIFAR10 = Layout(
    names=FileNames(dataset="cifar10", arch="resnet9", epoch=23),
    n_train=50_000, n_val=10_000, num_classes=10,
    mean=(0.4914, 0.4822, 0.4465), std=(0.2023, 0.1994, 0.2010),
    forget_sets=tuple(range(1, 11)), n_pretrain=200, n_oracles=200,
)

LAYOUTS: dict[str, Layout] = {"cifar10": CIFAR10}
