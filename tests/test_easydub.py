"""EasyDUB as a task: a miniature dataset in their exact layout, loaded, aligned, run, reproduced, and refused."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.errors import BenchError
from bench.registry import METHODS
from bench.runner import RunSpec, run
from oracles.cache import ModelStore
from tasks.easydub.derived import confidence_from_margin, loss_from_margin
from tasks.easydub.layout import CIFAR10
from tasks.easydub.reader import EasyDubReader
from tasks.easydub.resnet9 import easydub_resnet9, load_checkpoint, read_state_dict, strip_prefixes
from tasks.easydub.task import EasyDubCifar10

sys.path.insert(0, str(Path(__file__).parent))
from easydub_miniature import FORGET, NAMES, write_miniature  # noqa: E402

WIDTH = 4


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    root = tmp_path_factory.mktemp("easydub") / "EasyDUB-dataset"
    written = write_miniature(root, n_pretrain=3, n_oracles=6, width=WIDTH, oracle_models=7)
    return root, written


@pytest.fixture
def copy(mini, tmp_path):
    """A private copy to damage."""
    target = tmp_path / "EasyDUB-dataset"
    shutil.copytree(mini[0], target)
    return target


def task_at(root, **kw) -> EasyDubCifar10:
    return EasyDubCifar10(root=str(root), verify=False, width=WIDTH, **kw)


def noop_run(task, n=3, **kw):
    return run(RunSpec(method=METHODS.get("noop")(), task=task, n_models=n, device="cpu", **kw))


# ---- layout, architecture, derived statistics ------------------------------------------------------------

def test_file_names_follow_their_layout():
    assert NAMES.forget_set(2) == "forget_sets/cifar10/forget_set_2.npy"
    assert NAMES.model("pretrain", 7) == "models/cifar10/pretrain/resnet9/id_7_epoch_23.pt"
    assert NAMES.model("oracle", 7, 3) == "models/cifar10/oracle/forget_3/resnet9/id_7_epoch_23.pt"
    assert NAMES.margins("pretrain", "retain", 0, 2) == "margins/cifar10/pretrain/retain/resnet9/id_0_epoch_23.npy"
    assert NAMES.margins("pretrain", "forget", 0, 2) == "margins/cifar10/pretrain/forget_2/resnet9/id_0_epoch_23.npy"
    assert NAMES.margins("oracle", "val", 199, 10) == "margins/cifar10/oracle/forget_10/val/resnet9/id_199_epoch_23.npy"
    assert NAMES.logits("oracle", "forget", 1, 2) == "logits/cifar10/oracle/forget_2/forget/resnet9/id_1_epoch_23.npy"


def test_their_resnet9_layout_loads_a_prefixed_full_width_state_dict(tmp_path):
    model = easydub_resnet9()
    # hand count: convs 3*64*9 + 64*128*25 + 2*128*128*9 + 128*256*9 + 2*256*256*9 + 256*128*9 = 2,270,912,
    # batch norms 2*(64+128+128+128+256+256+256+128) = 2,688, linear 128*10 = 1,280
    assert sum(p.numel() for p in model.parameters()) == 2_274_880
    keys = list(model.state_dict())
    assert keys[:2] == ["0.0.weight", "0.1.weight"] and "2.module.1.1.running_mean" in keys and keys[-1] == "9.weight"
    torch.save({"module." + k: v for k, v in model.state_dict().items()}, tmp_path / "sd.pt")
    fresh = load_checkpoint(easydub_resnet9(), tmp_path / "sd.pt")
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(fresh.eval()(x), model.eval()(x))
    assert model.eval()(x).shape == (2, 10)


def test_prefixes_and_wrappers_are_stripped(tmp_path):
    t = torch.zeros(1)
    assert strip_prefixes({"module.model.0.0.weight": t, "module.model.9.weight": t}) == {"0.0.weight": t,
                                                                                        "9.weight": t}
    assert list(strip_prefixes({"model.a": t, "b": t})) == ["model.a", "b"]  # only a prefix every key shares
    torch.save({"state_dict": {"_orig_mod.9.weight": t}, "epoch": 23}, tmp_path / "wrapped.pt")
    assert list(read_state_dict(tmp_path / "wrapped.pt")) == ["9.weight"]


def test_bad_checkpoints_are_refused_naming_the_file(tmp_path):
    from tasks.vision.recipe import resnet9 as dawnbench
    torch.save(dawnbench(10, 8).state_dict(), tmp_path / "other.pt")
    with pytest.raises(BenchError, match=r"other\.pt does not fit EasyDUB's ResNet-9 layout: missing keys"):
        load_checkpoint(easydub_resnet9(10, 8), tmp_path / "other.pt")
    torch.save(easydub_resnet9(10, 8).state_dict(), tmp_path / "w8.pt")
    with pytest.raises(BenchError, match=r"wrong shapes \['0\.0\.weight \(8, 3, 3, 3\) \(expected \(4, 3, 3, 3\)\)"):
        load_checkpoint(easydub_resnet9(10, 4), tmp_path / "w8.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(BenchError, match=r"junk\.pt cannot be read as a torch state dict"):
        read_state_dict(tmp_path / "junk.pt")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(BenchError, match=r"list\.pt holds a list, not a state dict"):
        read_state_dict(tmp_path / "list.pt")


def test_statistics_derived_from_margins_by_hand():
    # m = 0: p_y = 1/2, so cross-entropy = ln 2 and the challenge statistic log(1/2) - log(1/2) = 0.
    assert loss_from_margin(np.array([0.0]))[0] == pytest.approx(np.log(2), rel=1e-6)
    assert confidence_from_margin(np.array([0.0]))[0] == 0.0
    # m = ln 3: p_y = 3/4: loss = ln(4/3), statistic = log(3/4) - log(1/4) = ln 3.
    assert loss_from_margin(np.array([np.log(3)]))[0] == pytest.approx(np.log(4 / 3), rel=1e-6)
    assert confidence_from_margin(np.array([np.log(3)]))[0] == pytest.approx(np.log(3), rel=1e-12)
    # m = 200: 1 - p_y = e^-200 < 1e-45, so the official floors give log(1 + 1e-45) - log(e^-200 + 1e-45).
    assert confidence_from_margin(np.array([200.0]))[0] == pytest.approx(-np.logaddexp(-200.0, np.log(1e-45)))
    from bench.metrics import confidence_statistic
    logits = np.random.default_rng(0).normal(0, 4, (50, 10))
    y = np.arange(50) % 10
    others = logits.copy()
    others[np.arange(50), y] = -np.inf
    m = logits[np.arange(50), y] - np.log(np.exp(others).sum(1))
    np.testing.assert_allclose(confidence_from_margin(m), confidence_statistic(logits, y), atol=1e-10)


# ---- loading and alignment -------------------------------------------------------------------------------

def test_loading_and_alignment_of_every_split(mini):
    root, written = mini
    task = task_at(root)
    train, val = task.load()
    assert train.x.shape == (40, 3, 32, 32) and train.x.dtype == torch.uint8 and len(val) == 8
    assert task.forget_size == 6 and task.select_forget(train, None).tolist() == sorted(FORGET.tolist())
    from bench.runner import make_plan, resolve_device
    plan, _ = make_plan(RunSpec(method=METHODS.get("noop")(), task=task, n_models=3, device="cpu"),
                        ModelStore(root.parent / "c"), resolve_device("cpu"))
    source = plan.imported
    order = np.argsort(FORGET)  # the run's forget ids are sorted; their forget files follow the file's order
    for role, k in (("oracle", 1), ("floor", 3 + 1)):
        stats = source.stats(role, 1)
        np.testing.assert_array_equal(stats.arrays["forget"]["margin"], written["oracle"]["forget"][k][order])
        np.testing.assert_array_equal(stats.arrays["retain"]["margin"], written["oracle"]["retain"][k])
        np.testing.assert_array_equal(stats.arrays["val"]["margin"], written["oracle"]["val"][k])
        assert stats.arrays["retain"]["margin"].dtype == np.float32
    # oracle retain margins index the retain points in sorted order
    assert plan.points.ids["retain"].tolist() == [i for i in range(40) if i not in set(FORGET.tolist())]
    assert "accuracy" in source.stats("oracle", 0).utility["val"]
    check = source.describe()["pretrain_margin_check"]
    assert check["checked"] and check["max_abs_diff"] < 1e-5 and check["agrees"]


def test_originals_are_their_checkpoints_prefix_stripped(mini):
    root, written = mini
    task = task_at(root)
    train, _ = task.load()
    from tasks.easydub.source import EasyDubSource
    source = EasyDubSource(task.reader(), task)
    for k in (0, 1):  # saved with model. and module. prefixes
        model, meta = source.model("original", k, torch.device("cpu"))
        assert meta["checkpoint"].endswith(f"id_{k}_epoch_23.pt")
        with torch.no_grad():
            margins = task.margin(model, train.x, train.y).numpy()
        np.testing.assert_allclose(margins, written["pretrain"]["retain"][k], atol=1e-5)


# ---- runs --------------------------------------------------------------------------------------------------

def test_two_methods_run_against_their_files_without_training_a_model(mini, tmp_path):
    root, _ = mini
    store = ModelStore(tmp_path / "cache")
    task = task_at(root)
    noop = run(RunSpec(method=METHODS.get("noop")(), task=task, n_models=3, device="cpu"), store=store)
    tuned = run(RunSpec(method=METHODS.get("finetune")(steps=3, lr=0.05), task=task, n_models=3, device="cpu"),
                store=store)
    specs = [json.loads(p.read_text())["spec"] for p in (tmp_path / "cache").rglob("*.json")]
    assert not [s for s in specs if s.get("kind") == "trained"]  # no original, oracle or floor was trained
    for record in (noop, tuned):
        metrics = record["metrics"]
        assert set(metrics["klom"]) == set(metrics["klom_easydub"]) == {"forget", "retain", "val"}
        assert "floor" in metrics["klom_easydub"]["forget"]
        assert metrics["challenge"]["forget_score"] is not None and metrics["challenge"]["final_score"] is not None
        assert record["scoring"]["oracle_source"]["noise_floor"] == "their oracle margins 3..5"
        assert record["timings"]["retrain_gradient_evals"] == 24 * 34  # their 24 epochs over 34 retain points
        assert "steps timed" in record["timings"]["retrain_estimated"]
    assert noop["metrics"]["utility"]["forget"]["original"] == noop["metrics"]["utility"]["forget"]["unlearned"]
    assert max(tuned["steps_used"]) == 3
    assert tuned["per_example"]["klom"] != noop["per_example"]["klom"]
    # the floor is the same in both: their oracles 3..5 against 0..2
    assert tuned["metrics"]["klom"]["forget"]["floor"] == noop["metrics"]["klom"]["forget"]["floor"]


def test_oracle_matching_targets_are_their_oracle_checkpoints(mini, tmp_path):
    root, _ = mini  # oracle checkpoints 0..6 exist: targets for N = 2 are oracles 4 and 5
    record = run(RunSpec(method=METHODS.get("oracle-matching")(steps=2), task=task_at(root), n_models=2,
                         device="cpu"), store=ModelStore(tmp_path / "c"))
    specs = [json.loads(p.read_text())["spec"] for p in (tmp_path / "c").rglob("*.json")]
    assert not [s for s in specs if s.get("kind") == "trained"]
    assert max(record["steps_used"]) == 2


def test_cli_run_writes_a_record(mini, tmp_path, capsys):
    from bench.cli import main
    root, _ = mini
    code = main(["run", "--method", "noop", "--task", "easydub-cifar10", "--task-arg", f"root={root}",
                 "--task-arg", "verify=false", "--task-arg", f"width={WIDTH}", "--n-models", "2", "--device", "cpu",
                 "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache")])
    out = capsys.readouterr().out
    assert code == 0 and "KLoM under the easydub convention" in out
    assert list((tmp_path / "out" / "easydub-cifar10").glob("noop-*.json"))


# ---- reproduce: their arithmetic ---------------------------------------------------------------------------

def their_binned_kl(p_samples, q_samples):
    """eval.py's binned_kl_divergence, restated: np.digitize over 21 edges of the pooled clipped range."""
    p, q = np.clip(p_samples, -100, 100), np.clip(q_samples, -100, 100)
    lo, hi = min(p.min(), q.min()), max(p.max(), q.max())
    if lo >= hi:
        hi = lo + 1.0
    edges = np.linspace(lo, hi, 21)
    pc = np.array([np.sum(np.digitize(p, edges) == i) for i in range(1, 21)])
    qc = np.array([np.sum(np.digitize(q, edges) == i) for i in range(1, 21)])
    pp = pc / pc.sum() if pc.sum() > 0 else np.zeros(20)
    qq = qc / qc.sum() if qc.sum() > 0 else np.zeros(20)
    qs = np.where(pp > 0, np.maximum(qq, 1e-5), qq)
    mask = pp > 0
    return float(np.sum(pp[mask] * np.log(pp[mask] / qs[mask])))


def test_reproduce_matches_a_direct_computation(mini, tmp_path):
    from tasks.easydub.reproduce import pretrain_table, reproduce
    root, written = mini
    n = 3
    rows = pretrain_table(EasyDubReader(root, CIFAR10, 2), n)
    keep = np.ones(40, dtype=bool)
    keep[FORGET] = False
    for split in ("retain", "forget", "val"):
        oracle = np.stack(written["oracle"][split][:n])
        pretrain = np.stack(written["pretrain"][split][:n])
        if split == "retain":
            pretrain = pretrain[:, keep]
        direct = [their_binned_kl(pretrain[:, j], oracle[:, j]) for j in range(oracle.shape[1])]
        assert rows[split]["easydub_p95"] == pytest.approx(np.percentile(direct, 95), abs=1e-12)
        assert rows[split]["dtype"] == "float32"
    text = reproduce(tmp_path / "reports", log=lambda _m: None, task_args={"root": str(root), "n_models": "3"})
    assert "nothing written (not the full release)" in text and not (tmp_path / "reports").exists()
    assert f"{rows['forget']['easydub_p95']:.4f}" in text


def test_reproduce_writes_its_summary_only_for_a_full_release(mini, tmp_path, monkeypatch, capsys):
    import dataclasses

    import tasks.easydub.reproduce as repro
    from bench.cli import main
    root, _ = mini
    monkeypatch.setitem(repro.LAYOUTS, "cifar10", dataclasses.replace(CIFAR10, n_train=40, n_val=8))
    args = ["reproduce", "easydub-pretrain", "--out", str(tmp_path), "--task-arg", f"root={root}",
            "--task-arg", "n_models=3"]
    assert main(args) == 0
    summary = (tmp_path / "easydub-pretrain" / "summary.txt").read_text()
    assert "forget set 2, N = 3" in summary and "no published numbers" in summary
    saved = json.loads((tmp_path / "easydub-pretrain" / "results.json").read_text())
    assert set(saved["rows"]) == {"retain", "forget", "val"}
    assert main([*args[:4], "--task-arg", "rooot=x"]) == 2
    assert "no setting 'rooot'" in capsys.readouterr().err
    assert main(["reproduce", "dm-pareto", "--task-arg", "x=1"]) == 2


def test_published_verdict_compares_four_decimals():
    from tasks.easydub.reproduce import summarize
    rows = {s: {"easydub_p95": v + 1e-6, "definition_p95": 0.0, "easydub_mean": 0.0, "definition_mean": 0.0}
            for s, v in {"retain": 0.3191, "forget": 9.2647, "val": 0.2639}.items()}
    assert "reproduced: every split matches" in summarize(rows, 2, 100, True)
    rows["val"]["easydub_p95"] = 0.2645
    assert "NOT reproduced" in summarize(rows, 2, 100, True)


# ---- every error message -----------------------------------------------------------------------------------

def test_missing_folder_and_missing_root(tmp_path):
    with pytest.raises(BenchError, match=r"does not exist .*huggingface-cli download --repo-type dataset "
                                         r"easydub/EasyDUB-dataset --local-dir .*download=true"):
        task_at(tmp_path / "nowhere").load()
    with pytest.raises(BenchError, match="needs the EasyDUB dataset folder: --task-arg root=DIR"):
        EasyDubCifar10().load()


def test_missing_files_are_listed(copy):
    (copy / NAMES.margins("oracle", "val", 4, 2)).unlink()
    with pytest.raises(BenchError, match=r"--n-models 3 needs oracle margins 0\.\.5 of forget set 2 .*oracles 0\.\.3 "
                                         r"only \(first missing: margins/cifar10/oracle/forget_2/val/resnet9/"
                                         r"id_4_epoch_23\.npy\)\. Use --n-models 2 or fewer"):
        noop_run(task_at(copy))
    assert noop_run(task_at(copy), n=2)["n_models"] == 2  # 4 oracles: enough for N = 2 with its floor
    (copy / NAMES.model("pretrain", 1)).unlink()
    with pytest.raises(BenchError, match=r"incomplete: 1 of 2 files for the pretrain models \(originals\) are missing "
                                         r"\(models/cifar10/pretrain/resnet9/id_1_epoch_23\.pt\)"):
        noop_run(task_at(copy), n=2)
    (copy / NAMES.forget_set(2)).unlink()
    with pytest.raises(BenchError, match=r"forget set 2 not found"):
        noop_run(task_at(copy), n=2)


def test_nothing_to_prebuild_or_export(mini, capsys):
    from bench.cli import main
    root, _ = mini
    args = ["--task", "easydub-cifar10", "--task-arg", f"root={root}", "--task-arg", "verify=false", "--task-arg",
            f"width={WIDTH}", "--n-models", "2", "--device", "cpu"]
    assert main(["oracles", *args]) == 2
    assert "nothing to prebuild" in capsys.readouterr().err
    assert main(["margins", "export", *args, "--out", str(root.parent / "x")]) == 2
    assert "share those files" in capsys.readouterr().err
    assert main(["run", "--method", "noop", *args, "--oracle-margins", str(root), "--out", str(root.parent / "o")]) == 2
    assert "drop --oracle-margins" in capsys.readouterr().err


def test_another_forget_set_is_named(copy):
    with pytest.raises(BenchError, match=r"forget_set_3\.npy is missing \(this folder has forget_set_2\.npy"):
        noop_run(task_at(copy, forget_set=3), n=2)
    with pytest.raises(BenchError, match="drop --forget-ids"):
        noop_run(task_at(copy), n=2, forget_ids=[1, 2, 3])


@pytest.mark.parametrize("damage, message", [
    (lambda p: np.save(p, np.zeros((34, 2), np.float32)), r"should be a 1-D array of margins .* shape \(34, 2\)"),
    (lambda p: np.save(p, np.zeros(34, np.int64)), r"should hold floating-point margins, has dtype int64"),
    (lambda p: np.save(p, np.zeros(35, np.float32)), r"has 35 values but its retain set has 34 points"),
    (lambda p: np.save(p, np.array([{"a": 1}], dtype=object), allow_pickle=True), r"Python objects"),
    (lambda p: p.write_bytes(b"\x93NUMPY garbage"), r"is not a plain \.npy array|cannot be read as \.npy"),
])
def test_bad_margin_files_are_refused_naming_the_file(copy, damage, message):
    victim = copy / NAMES.margins("oracle", "retain", 5, 2)
    damage(victim)
    with pytest.raises(BenchError, match=message) as err:
        noop_run(task_at(copy))
    assert "id_5_epoch_23.npy" in str(err.value)


def test_bad_forget_sets_are_refused(copy):
    path = copy / NAMES.forget_set(2)
    np.save(path, FORGET.astype(np.float64))
    with pytest.raises(BenchError, match=r"forget_set_2\.npy should hold integer training indices, has dtype float64"):
        noop_run(task_at(copy), n=2)
    np.save(path, np.array([1, 1, 2]))
    with pytest.raises(BenchError, match="repeats training indices"):
        noop_run(task_at(copy), n=2)
    np.save(path, np.array([1, 400]))
    with pytest.raises(BenchError, match=r"indices outside the 40 training images \(e\.g\. 400\)"):
        noop_run(task_at(copy), n=2)


def test_bad_state_dict_in_the_dataset_is_refused(copy):
    torch.save({"model.fc.weight": torch.zeros(10, 8)}, copy / NAMES.model("pretrain", 0))
    with pytest.raises(BenchError, match=r"id_0_epoch_23\.pt does not fit EasyDUB's ResNet-9 layout: missing keys "
                                         r"\['0\.0\.weight'.*unexpected keys \['fc\.weight'\]"):
        noop_run(task_at(copy), n=2)


def test_download_needs_huggingface_hub_and_says_how(copy, monkeypatch):
    (copy / NAMES.forget_set(2)).unlink()
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import fails
    with pytest.raises(BenchError, match=r"download=true needs the huggingface_hub package: pip install "
                                         r"huggingface_hub; or download by hand: .*huggingface-cli download"):
        task_at(copy, download=True).load()


def test_download_fetches_only_what_a_forget_set_needs(copy, mini, monkeypatch):
    import types
    (copy / NAMES.forget_set(2)).unlink()
    calls = []

    def snapshot_download(repo_id, repo_type, local_dir, allow_patterns):
        calls.append((repo_id, repo_type, allow_patterns))
        shutil.copy(mini[0] / NAMES.forget_set(2), Path(local_dir) / NAMES.forget_set(2))

    monkeypatch.setitem(sys.modules, "huggingface_hub", types.SimpleNamespace(snapshot_download=snapshot_download))
    train, _ = task_at(copy, download=True).load()
    assert len(train) == 40
    repo, kind, patterns = calls[0]
    assert (repo, kind) == ("easydub/EasyDUB-dataset", "dataset")
    assert "margins/cifar10/oracle/forget_2/**" in patterns and not any("oracle/forget_3" in p for p in patterns)

    def offline(**_kw):
        raise OSError("no network")

    (copy / NAMES.forget_set(2)).unlink()
    monkeypatch.setitem(sys.modules, "huggingface_hub", types.SimpleNamespace(snapshot_download=offline))
    with pytest.raises(BenchError, match=r"downloading easydub/EasyDUB-dataset to .* failed \(OSError: no network\)"):
        task_at(copy, download=True).load()


def test_retraining_methods_get_their_recipe(mini, tmp_path):
    root, _ = mini
    record = run(RunSpec(method=METHODS.get("retrain")(), task=task_at(root), n_models=2, device="cpu"),
                 store=ModelStore(tmp_path / "c"))
    # 34 retain points, batches of 256: one step per epoch, 24 epochs; the reference is the same recipe
    assert record["steps_used"] == [24, 24]
    assert record["timings"]["gradient_evals_relative_to_retrain"] == 1.0


def test_their_one_cycle_schedule_by_hand(mini):
    from torch.optim.optimizer import register_optimizer_step_pre_hook
    root, _ = mini
    task = task_at(root, epochs=6, peak_epoch=2, lr=0.4)
    train, _ = task.load()
    lrs = []
    handle = register_optimizer_step_pre_hook(lambda opt, args, kwargs: lrs.append(opt.param_groups[0]["lr"]))
    try:
        task.train(task.make_model(0), train, seed=0)  # 40 images, batch 256: 6 steps
    finally:
        handle.remove()
    # torch's one-cycle, linear: from 0.4/1e6 up to 0.4 at step pct_start * total - 1 = 2/6 * 6 - 1 = 1,
    # then down to 0.4/1e6/1e6 at the last step (5), linearly over steps 1..5
    low, end = 0.4 / 1e6, 0.4 / 1e12
    expected = [low, 0.4] + [0.4 + (end - 0.4) * (s - 1) / 4 for s in range(2, 6)]
    assert lrs == pytest.approx(expected, rel=1e-9, abs=1e-15)


def test_sampled_points_index_their_files(mini):
    from bench.runner import make_plan, resolve_device
    root, written = mini
    plan, _ = make_plan(RunSpec(method=METHODS.get("noop")(), task=task_at(root), n_models=2, device="cpu",
                                max_scored_points=10), ModelStore(root.parent / "s"), resolve_device("cpu"))
    ids = plan.points.ids["retain"]
    assert len(ids) == 10
    retain = written["retain"].tolist()
    at = [retain.index(i) for i in ids]  # oracle retain files hold the retain points in sorted order
    np.testing.assert_array_equal(plan.imported.stats("floor", 0).arrays["retain"]["margin"],
                                  written["oracle"]["retain"][2][at])
    np.testing.assert_array_equal(plan.imported.stats("oracle", 1).arrays["val"]["margin"],
                                  written["oracle"]["val"][1][plan.points.ids["val"]])
