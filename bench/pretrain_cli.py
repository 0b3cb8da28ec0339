"""``python -m bench pretrain-lm --out DIR``: pretrain (or load from the cache) a task's starting language model and
export it as a ``from_pretrained`` folder, printing what it was trained on and its perplexity before and after.

The framework knows no task: any registered task with an ``export_pretrained(out) -> report`` method qualifies
(``dave-small`` by default)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable

from bench.errors import BenchError


def add_parser(sub) -> None:
    cmd = sub.add_parser("pretrain-lm", help="pretrain a small GPT-2 offline (stdlib docstrings), cache and export it")
    cmd.add_argument("--out", required=True, help="folder for the model, tokenizer and pretraining.json")
    cmd.add_argument("--task", default="dave-small", help="task whose starting model is pretrained (default dave-small)")
    cmd.add_argument("--task-arg", action="append", metavar="NAME=VALUE",
                     help="task parameter, e.g. pretrain_steps=800, n_embd=128")
    cmd.add_argument("--forget-size", type=int, help=argparse.SUPPRESS)


def run(args: argparse.Namespace, make_task: Callable) -> str:
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise BenchError(f"--out {out} exists and is not a folder")
    task = make_task(args)
    export = getattr(task, "export_pretrained", None)
    if export is None:
        raise BenchError(f"task '{task.name}' has no pretrained starting model to export; use --task dave-small")
    return describe(export(out), out)


def describe(report: dict, out: Path) -> str:
    """The report in a few lines: corpus, model, time, perplexity before and after."""
    corpus, ppl = report["corpus"], report["general_perplexity"]
    source = "loaded from the model cache (pretrained earlier in" if report.get("cached") else "pretrained now in"
    return "\n".join([
        f"corpus: Python {corpus['python_version']} standard-library docstrings, {corpus['paragraphs']} prose "
        f"paragraphs from {corpus['files']} files, {corpus['characters']} characters, {corpus['tokens']} tokens, "
        f"sha256 {corpus['sha256']}",
        f"model: GPT-2, {report['config']['n_layer']} blocks, width {report['config']['n_embd']}, vocabulary "
        f"{report['vocab_size']}, {report['parameters']} parameters; {report['config']['steps']} steps of "
        f"{report['config']['batch_size']} x {report['config']['context']} tokens ({report['tokens_seen']} tokens seen)",
        f"{source} {report['total_seconds']:.0f} s{')' if report.get('cached') else ''} "
        f"on {report['torch_threads']} torch thread(s); final training loss {report['final_loss']:.3f}",
        f"perplexity on paper 000's general sentences (Table 7): {ppl['before']:.4g} before -> {ppl['after']:.4g} after "
        f"(x{ppl['before'] / ppl['after']:.3g} lower)",
        f"wrote {out}/ (config.json, model.safetensors, tokenizer files, pretraining.json)",
    ])
