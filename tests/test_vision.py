"""CIFAR-10 and CelebA through torchvision's real loaders, from small files written in the exact formats."""
import json
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from bench.cli import main
from bench.errors import BenchError
from bench.registry import METHODS
from bench.runner import RunSpec, run
from tasks.vision.recipe import resnet9, resnet18
from tasks.vision.celeba import CELEBA_FILES, CelebAFaces
from tasks.vision.cifar10 import Cifar10

ATTRIBUTES = ["5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs", "Big_Lips",
              "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows", "Chubby",
              "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones", "Male",
              "Mouth_Slightly_Open", "Mustache", "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin",
              "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair",
              "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat", "Wearing_Lipstick", "Wearing_Necklace",
              "Wearing_Necktie", "Young"]


def write_cifar(root, per_batch=20, seed=0):
    """The python-pickle batches of cifar-10-python.tar.gz: 5 train batches, a test batch, batches.meta."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"]:
        labels = rng.integers(0, 10, per_batch)
        # class-dependent brightness so a small network can learn something
        data = (rng.integers(0, 60, (per_batch, 3072)) + labels[:, None] * 19).astype(np.uint8)
        batch = {"batch_label": name, "labels": labels.tolist(), "data": data,
                 "filenames": [f"img_{i}.png" for i in range(per_batch)]}
        with open(folder / name, "wb") as handle:
            pickle.dump(batch, handle)
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)], "num_cases_per_batch": per_batch,
                     "num_vis": 3072}, handle)
    return labels


def write_celeba(root, n=48, identities=12, seed=0):
    """img_align_celeba/ JPEGs and the five annotation files, space-separated as in the original release."""
    rng = np.random.default_rng(seed)
    folder = root / "celeba"
    (folder / "img_align_celeba").mkdir(parents=True)
    names = [f"{i + 1:06d}.jpg" for i in range(n)]
    identity = rng.integers(1, identities + 1, n)
    young = (identity % 3 == 0).astype(int)
    attrs = rng.choice([-1, 1], size=(n, len(ATTRIBUTES)))
    attrs[:, ATTRIBUTES.index("Young")] = np.where(young, 1, -1)
    partition = np.where(np.arange(n) < int(0.75 * n), 0, np.where(np.arange(n) < int(0.875 * n), 1, 2))
    for i, name in enumerate(names):
        pixel = rng.integers(0, 255, (218, 178, 3), dtype=np.uint8)
        Image.fromarray(pixel).save(folder / "img_align_celeba" / name)
    (folder / "list_attr_celeba.txt").write_text(
        f"{n}\n" + " ".join(ATTRIBUTES) + "\n"
        + "".join(f"{name} " + " ".join(f"{v:2d}" for v in row) + "\n" for name, row in zip(names, attrs)))
    (folder / "identity_CelebA.txt").write_text("".join(f"{name} {i}\n" for name, i in zip(names, identity)))
    (folder / "list_eval_partition.txt").write_text("".join(f"{name} {p}\n" for name, p in zip(names, partition)))
    (folder / "list_bbox_celeba.txt").write_text(
        f"{n}\nimage_id x_1 y_1 width height\n" + "".join(f"{name} 95 71 226 313\n" for name in names))
    (folder / "list_landmarks_align_celeba.txt").write_text(
        f"{n}\nlefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y rightmouth_x "
        "rightmouth_y\n" + "".join(f"{name} 69 109 106 113 77 142 73 152 108 154\n" for name in names))
    return identity, young, partition


def test_cifar_reads_the_pickle_batches(tmp_path):
    last_test_labels = write_cifar(tmp_path)
    task = Cifar10(data_root=str(tmp_path), verify=False)
    train, test = task.load()
    assert train.x.shape == (100, 3, 32, 32) and train.x.dtype == torch.uint8 and len(test) == 20
    assert test.y.tolist() == last_test_labels.tolist()
    assert len(Cifar10(data_root=str(tmp_path), verify=False, subset=30).load()[0]) == 30


def test_cifar_missing_or_unverified_files_name_the_fix(tmp_path):
    with pytest.raises(BenchError, match=r"(?s)cifar-10-batches-py.*data_batch_1.*download=true"):
        Cifar10(data_root=str(tmp_path)).load()
    write_cifar(tmp_path)
    with pytest.raises(BenchError, match="not found \\(or corrupted\\)"):  # checksums of the real files
        Cifar10(data_root=str(tmp_path)).load()


def test_cifar_skewed_selector(tmp_path):
    write_cifar(tmp_path, per_batch=40)
    task = Cifar10(data_root=str(tmp_path), verify=False, forget_size=20, selector="skewed")
    train, _ = task.load()
    ids = task.select_forget(train, np.random.default_rng(0))
    assert len(ids) == 20 and np.bincount(train.y.numpy()[ids]).max() >= 16


def test_celeba_reads_the_folder_layout_and_forgets_whole_identities(tmp_path):
    identity, young, partition = write_celeba(tmp_path)
    task = CelebAFaces(data_root=str(tmp_path), verify=False, image_size=32, identity_fraction=0.2)
    train, val = task.load()
    assert train.x.shape == (int((partition == 0).sum()), 3, 32, 32) and len(val) == int((partition == 1).sum())
    assert train.y.tolist() == young[partition == 0].tolist()  # the target attribute, mapped to 0/1
    forget = task.select_forget(train, np.random.default_rng(0))
    train_identity = identity[partition == 0]
    chosen = set(train_identity[forget])
    assert set(np.flatnonzero(np.isin(train_identity, list(chosen)))) == set(forget)  # every image of them
    weights = task.class_weights(torch.device("cpu"))
    counts = torch.bincount(train.y, minlength=2).float()
    assert torch.allclose(weights * counts, torch.full((2,), counts.sum() / 2))


def test_celeba_skew_prefers_young_identities(tmp_path):
    identity, young, partition = write_celeba(tmp_path, n=200, identities=60)
    task = CelebAFaces(data_root=str(tmp_path), verify=False, image_size=16, identity_fraction=0.2, skew=20.0)
    train, _ = task.load()
    picked_young = []
    for seed in range(20):
        forget = task.select_forget(train, np.random.default_rng(seed))
        picked_young.append(young[partition == 0][forget].mean())
    assert np.mean(picked_young) > 0.6  # about a third of identities are young
    with pytest.raises(BenchError, match="Did you mean 'Smiling'"):
        CelebAFaces(data_root=str(tmp_path), verify=False, target="Smiing").load()


def test_celeba_missing_files_name_the_fix(tmp_path):
    with pytest.raises(BenchError, match=r"(?s)img_align_celeba.*list_attr_celeba.txt.*download=true"):
        CelebAFaces(data_root=str(tmp_path)).load()
    assert "identity_CelebA.txt" in CELEBA_FILES


def test_models_have_the_expected_shapes():
    assert resnet9(10, 8)(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    assert resnet18(2, 16)(torch.zeros(2, 3, 32, 32)).shape == (2, 2)
    full = resnet18(2, 64)
    assert sum(p.numel() for p in full.parameters()) > 11_000_000  # the standard ResNet-18 size


def test_reduced_cifar_run_on_cpu_is_labelled(tmp_path, capsys):
    write_cifar(tmp_path / "data", per_batch=40)
    args = ["run", "--method", "finetune", "--task", "cifar10", "--task-arg", f"data_root={tmp_path / 'data'}",
            "--task-arg", "verify=false", "--task-arg", "width=4", "--task-arg", "epochs=2",
            "--task-arg", "batch_size=64", "--forget-size", "10", "--n-models", "2", "--method-arg", "steps=3",
            "--out", str(tmp_path / "out")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "reduced configuration (width=4)" in out
    [path] = (tmp_path / "out").rglob("*.json")
    record = json.loads(path.read_text())
    assert record["task"]["label"].startswith("reduced configuration")
    assert record["task"]["recipe"]["schedule"] == "one-cycle"


def test_celeba_trains_and_unlearns_on_cpu(tmp_path):
    write_celeba(tmp_path)
    task = CelebAFaces(data_root=str(tmp_path), verify=False, image_size=16, width=8, epochs=2, batch_size=16,
                       identity_fraction=0.2)
    record = run(RunSpec(method=METHODS.get("gdga")(steps=2), task=task, n_models=2))
    assert "accuracy" in record["metrics"]["utility"]["forget"]["unlearned"]


def test_recipe_survives_a_single_step():
    """One step means warm-up covers the whole schedule; the decay must not divide by zero."""
    from bench.task import Split
    task = Cifar10(width=4, epochs=1, batch_size=64)
    data = Split(torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8), torch.randint(0, 10, (8,)))
    task.train(task.make_model(0), data, 0)


def test_perf_reports_vision_throughput():
    from bench.perf import run_perf
    report = run_perf(quick=True, only=["vision-training"], log=lambda _m: None)
    assert "images/s per model" in report and "models share the device" in report
