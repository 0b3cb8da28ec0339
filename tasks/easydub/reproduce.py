"""``python -m bench reproduce easydub-pretrain --task-arg root=DIR``: EasyDUB's README table, recomputed.

Do-nothing (their pretrain models) on forget set 2 at N = 100, P95 KLoM per split, with their arithmetic
(``eval_pretrain.py``): pretrain margins 0..N-1 against oracle margins 0..N-1 straight from the files, in the
files' dtype, pretrain retain margins masked to the retain points, KLoM under the EasyDUB convention
(``bench.metrics.klom``, p = pretrain, q = oracle), ``np.percentile(.., 95)``. Our definition's numbers are
printed beside them. The summary is written to ``OUT/easydub-pretrain/`` only for a full-size release
(50,000 train and 10,000 test margins), so a miniature or partial folder never leaves a result behind.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from bench.errors import BenchError
from bench.metrics import klom
from bench.params import parse_int
from bench.atomic import write_atomic, write_json_atomic
from tasks.easydub.layout import LAYOUTS
from tasks.easydub.reader import EasyDubReader, download

SPLITS = ("retain", "forget", "val")  # their table's order
PUBLISHED = {"forget_set": 2, "n_models": 100, "p95": {"retain": 0.3191, "forget": 9.2647, "val": 0.2639},
             "source": "easydub/EasyDUB-code README (eval_pretrain.py --forget-set 2 --n-models 100)"}
OPTIONS = ("root", "forget_set", "n_models", "download")


def _options(task_args: dict | None) -> tuple[Path, int, int, bool]:
    args = dict(task_args or {})
    unknown = sorted(set(args) - set(OPTIONS))
    if unknown:
        raise BenchError(f"reproduce easydub-pretrain has no setting {unknown[0]!r}; settings: {', '.join(OPTIONS)}")
    if not args.get("root"):
        raise BenchError("reproduce easydub-pretrain needs the dataset folder: --task-arg root=DIR; "
                         + LAYOUTS["cifar10"].download_hint("DIR"))
    values = {}
    for name, default, low in (("forget_set", PUBLISHED["forget_set"], 1), ("n_models", PUBLISHED["n_models"], 2)):
        try:
            values[name] = parse_int(args[name]) if name in args else default
        except ValueError:
            raise BenchError(f"--task-arg {name} expects an integer, got {args[name]!r}") from None
        if values[name] < low:
            raise BenchError(f"--task-arg {name} must be at least {low}, got {values[name]}")
    flag = str(args.get("download", "false")).strip().lower()
    if flag not in ("true", "false", "1", "0", "yes", "no"):
        raise BenchError(f"--task-arg download expects true or false, got {args['download']!r}")
    return Path(args["root"]).expanduser(), values["forget_set"], values["n_models"], flag in ("true", "1", "yes")


def pretrain_matrices(reader: EasyDubReader, n: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(pretrain, oracle) margins [n, points] per split, aligned exactly as eval_pretrain.py aligns them."""
    names, f = reader.names, reader.forget_set
    needed = [names.margins(kind, split, k, f) for k in range(n) for kind in ("pretrain", "oracle")
              for split in SPLITS]
    reader.require(needed, f"for pretrain vs oracle margins at N = {n} (forget set {f})")
    n_train = len(reader.margins("pretrain", "retain", 0, None))
    n_val = len(reader.margins("pretrain", "val", 0, None))
    forget = reader.forget_ids(n_train)
    keep = np.ones(n_train, dtype=bool)
    keep[forget] = False
    sizes = {"oracle": {"retain": int(keep.sum()), "forget": len(forget), "val": n_val},
             "pretrain": {"retain": n_train, "forget": len(forget), "val": n_val}}
    what = {"retain": "the retain set", "forget": f"forget set {f}", "val": "the test set"}
    out = {}
    for split in SPLITS:
        oracle = np.stack([reader.margins("oracle", split, k, sizes["oracle"][split], what[split]) for k in range(n)])
        pretrain = np.stack([reader.margins("pretrain", split, k, sizes["pretrain"][split],
                                            "the training set" if split == "retain" else what[split])
                             for k in range(n)])
        if split == "retain" and pretrain.shape[1] > oracle.shape[1]:
            pretrain = pretrain[:, keep]  # their retain_mask: the retain points in sorted order
        out[split] = (pretrain, oracle)
    return out


def pretrain_table(reader: EasyDubReader, n: int) -> dict:
    """P95 (and mean) KLoM of pretrain vs oracle per split, EasyDUB convention and our definition."""
    rows = {}
    for split, (pretrain, oracle) in pretrain_matrices(reader, n).items():
        easydub = klom(pretrain, oracle, convention="easydub")
        ours = klom(pretrain, oracle)
        rows[split] = {"points": int(pretrain.shape[1]), "dtype": str(np.result_type(pretrain.dtype, oracle.dtype)),
                       "easydub_p95": float(np.percentile(easydub, 95)), "easydub_mean": float(easydub.mean()),
                       "definition_p95": float(np.percentile(ours, 95)), "definition_mean": float(ours.mean())}
    return rows


def summarize(rows: dict, forget_set: int, n: int, full: bool) -> str:
    published = forget_set == PUBLISHED["forget_set"] and n == PUBLISHED["n_models"]
    lines = [f"EasyDUB pretrain (do-nothing) vs oracle, forget set {forget_set}, N = {n}",
             f"{'Split':<8} {'P95 KLoM (EasyDUB)':>19} {'published':>10} {'match':>6} {'P95 (definition)':>17} "
             f"{'mean (EasyDUB)':>15} {'mean (definition)':>18}"]
    matches = []
    for split in SPLITS:
        r = rows[split]
        pub = PUBLISHED["p95"][split] if published else None
        match = "" if pub is None else ("yes" if f"{r['easydub_p95']:.4f}" == f"{pub:.4f}" else "NO")
        matches.append(match)
        lines.append(f"{split:<8} {r['easydub_p95']:>19.4f} {'' if pub is None else f'{pub:.4f}':>10} {match:>6} "
                     f"{r['definition_p95']:>17.4f} {r['easydub_mean']:>15.4f} {r['definition_mean']:>18.4f}")
    if not full:
        lines.append("VERDICT not the full EasyDUB release (a miniature or partial folder): not comparable with "
                     "the published table")
    elif published:
        ok = all(m == "yes" for m in matches)
        lines.append("VERDICT " + ("reproduced: every split matches the published P95 to 4 decimals" if ok else
                                   "NOT reproduced: see the rows marked NO"))
    else:
        lines.append(f"VERDICT no published numbers for forget set {forget_set} at N = {n} (published: forget set 2, "
                     "N = 100)")
    lines.append("EasyDUB convention: np.digitize over 21 edges in the margins' dtype (values at the pooled maximum "
                 "are dropped), p = pretrain, q = oracle; definition: paper 003's 20 closed bins in float64.")
    return "\n".join(lines)


def reproduce(out: Path, log: Callable[[str], None] = print, task_args: dict | None = None) -> str:
    """Print the table; write summary.txt and results.json under ``out/easydub-pretrain`` for the full release."""
    root, forget_set, n, fetch = _options(task_args)
    layout = LAYOUTS["cifar10"]
    reader = EasyDubReader(root, layout, forget_set)
    if fetch and not (root / "margins").is_dir():
        download(reader, log)
    log(f"reading pretrain and oracle margins 0..{n - 1} of forget set {forget_set} from {root}")
    rows = pretrain_table(reader, n)
    full = rows["val"]["points"] == layout.n_val and rows["retain"]["points"] + rows["forget"]["points"] == layout.n_train
    summary = summarize(rows, forget_set, n, full)
    if not full:
        return summary + "\n\nnothing written (not the full release)"
    folder = Path(out) / "easydub-pretrain"
    write_atomic(folder / "summary.txt", (summary + "\n").encode())
    write_json_atomic(folder / "results.json", {"root": str(root), "forget_set": forget_set, "n_models": n,
                                                "rows": rows, "published": PUBLISHED})
    return summary + f"\n\nwrote {folder}/summary.txt and results.json"


__all__ = ["reproduce", "pretrain_table", "pretrain_matrices", "PUBLISHED"]
