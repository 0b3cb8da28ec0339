"""Command line: ``python -m bench {list,run,reproduce}``."""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

from bench.errors import BenchError, BudgetExceededError, DivergenceError
from bench.params import parse_assignments
from bench.registry import METHODS, TASKS, load_plugin
from bench.store import write_json_atomic


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _parse_ids(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--plugin", action="append", default=[], metavar="FILE.py",
                        help="import a Python file that registers extra methods or tasks (repeatable)")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("list", help="show every registered method and task with its parameters")

    run = sub.add_parser("run", help="run one method on one task and write a result record")
    run.add_argument("--method", required=True)
    run.add_argument("--task", required=True)
    run.add_argument("--seed", type=int, default=0, help="base seed for forget set, models and method (default 0)")
    run.add_argument("--forget-size", type=int, help="shortcut for --task-arg forget_size=K")
    run.add_argument("--forget-ids", type=_parse_ids, help="explicit forget set: comma-separated train ids")
    run.add_argument("--n-models", type=int, default=1, help="originals, oracles and unlearned models (default 1)")
    run.add_argument("--method-arg", action="append", metavar="NAME=VALUE", help="method hyperparameter")
    run.add_argument("--task-arg", action="append", metavar="NAME=VALUE", help="task parameter")
    _add_execution_args(run)
    run.add_argument("--protocol", choices=["independent", "challenge"], default="independent",
                     help="independent: unlearned model i comes from original i (paper 003); challenge: all "
                          "from one original (paper 002)")
    run.add_argument("--out", default="results", help="folder for result records (default results/)")

    ora = sub.add_parser("oracles", help="prebuild (and cache) original and oracle ensembles for a task")
    ora.add_argument("--task", required=True)
    ora.add_argument("--task-arg", action="append", metavar="NAME=VALUE", help="task parameter")
    ora.add_argument("--seed", type=int, default=0)
    ora.add_argument("--forget-size", type=int, help="shortcut for --task-arg forget_size=K")
    ora.add_argument("--forget-ids", type=_parse_ids, help="explicit forget set: comma-separated train ids")
    ora.add_argument("--n-models", type=int, default=32)
    _add_execution_args(ora)

    perf = sub.add_parser("perf", help="measure speed: batched training, epsilon scoring, caching, overhead")
    perf.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke test")
    perf.add_argument("--only", action="append", help="run only the named measurement(s)")

    rep = sub.add_parser("reproduce", help="regenerate a figure from the source papers")
    rep.add_argument("experiment", help="one of: " + ", ".join(sorted(_experiments())))
    rep.add_argument("--out", default="reports", help="folder for CSV, figures and summary (default reports/)")
    return parser


def _add_execution_args(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    cmd.add_argument("--backend", choices=["local", "dask"], default="local",
                     help="where ensembles train: local processes (default) or a dask.distributed cluster")
    cmd.add_argument("--workers", type=int, default=1, help="worker processes (local, or a local Dask cluster)")
    cmd.add_argument("--scheduler", help="address of a running Dask scheduler (with --backend dask)")
    cmd.add_argument("--cache-dir", help="model cache folder (default $BENCH_CACHE or ~/.cache/unlearning-bench)")
    cmd.add_argument("--no-cache", action="store_true", help="train everything afresh and cache nothing")


def _store(args: argparse.Namespace):
    from oracles.store import ModelStore, default_cache_root
    if args.no_cache:
        return None
    return ModelStore(args.cache_dir or default_cache_root(), log=_log)


def _executor(args: argparse.Namespace):
    from bench.executor import Executor
    return Executor(backend=args.backend, workers=args.workers, scheduler=args.scheduler)


def _task_from_args(args: argparse.Namespace):
    task_cls = TASKS.get(args.task)
    task_args = parse_assignments(args.task_arg, flag="--task-arg")
    if args.forget_size is not None:
        if "forget_size" in task_args:
            raise BenchError("give the forget size once: --forget-size or --task-arg forget_size=..., not both")
        task_args["forget_size"] = str(args.forget_size)
    return task_cls.from_strings(task_args, label=f"task '{args.task}'")


def _experiments() -> dict:
    from bench.experiments import EXPERIMENTS
    return EXPERIMENTS


def cmd_list() -> None:
    for kind, registry in (("Methods", METHODS), ("Tasks", TASKS)):
        print(f"{kind}:")
        for name in registry.names():
            cls = registry.get(name)
            print(f"  {name:24s} {cls.description()}")
            for spec in cls.param_specs():
                print(f"      {spec.name} = {spec.default!r}  ({spec.type_name})")
        print()


def result_path(out: str, record: dict) -> Path:
    """A stable file name per (method params, task, forget set, seed, N): reruns replace, variants coexist."""
    key = {k: record[k] for k in ("method", "task", "forget_ids", "n_models", "protocol")}
    key["seed"] = record["seeds"]["base"]
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return Path(out) / record["task"]["name"] / f"{record['method']['name']}-{digest}.json"


def cmd_run(args: argparse.Namespace) -> None:
    from bench.runner import RunSpec, run
    from bench.table import run_table

    method_cls = METHODS.get(args.method)
    task = _task_from_args(args)
    method = method_cls.from_strings(parse_assignments(args.method_arg, flag="--method-arg"),
                                     label=f"method '{args.method}'")
    spec = RunSpec(method=method, task=task, seed=args.seed, n_models=args.n_models, forget_ids=args.forget_ids,
                   device=args.device, protocol=args.protocol, executor=_executor(args))
    record = run(spec, store=_store(args), log=_log, progress=True)
    path = write_json_atomic(result_path(args.out, record), record)
    print(run_table(record))
    print(f"\nresult record: {path}")


def cmd_oracles(args: argparse.Namespace) -> None:
    from bench.oracle_cli import prebuild
    print(prebuild(_task_from_args(args), seed=args.seed, n_models=args.n_models, forget_ids=args.forget_ids,
                   device=args.device, executor=_executor(args), store=_store(args), log=_log))


def cmd_reproduce(args: argparse.Namespace) -> None:
    experiments = _experiments()
    if args.experiment not in experiments:
        import difflib
        close = difflib.get_close_matches(args.experiment, list(experiments), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise BenchError(f"unknown experiment '{args.experiment}'.{hint} Known: {', '.join(sorted(experiments))}")
    from bench.experiments import get_experiment
    summary = get_experiment(args.experiment)(Path(args.out), log=_log)
    print(summary)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        for plugin in args.plugin:
            load_plugin(plugin)
        if args.command == "list":
            cmd_list()
        elif args.command == "run":
            cmd_run(args)
        elif args.command == "oracles":
            cmd_oracles(args)
        elif args.command == "perf":
            from bench.perf import run_perf
            print(run_perf(quick=args.quick, only=args.only, log=_log))
        elif args.command == "reproduce":
            cmd_reproduce(args)
    except BenchError as err:
        _log(f"error: {err}")
        return err.exit_code
    except (DivergenceError, BudgetExceededError) as err:
        _log(f"error: {err}\nno result was written.")
        return err.exit_code
    return 0
