"""Command line: ``python -m bench {list,run,oracles,datamodels,perf,reproduce,report,pretrain-lm}``."""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

from bench.bounds import Range, Seed
from bench.errors import BenchError, BudgetExceededError, DivergenceError, MethodFailedError
from bench.params import parse_assignments, split_annotation
from bench.preflight import check_cache_dir, check_forget_flags, check_scheduler, check_writable_dir, int_arg, parse_ids
from bench.registry import METHODS, TASKS, load_plugin
from bench.atomic import write_json_atomic
from bench.strict_json import strict_record

_SEED = int_arg("--seed", split_annotation(Seed)[1])
_N_MODELS = int_arg("--n-models", Range(1, 100_000))
_WORKERS = int_arg("--workers", Range(1, 4096))
_THREADS = int_arg("--threads", Range(1, 1024))
_FORGET_SIZE = int_arg("--forget-size", Range())  # its range depends on the train set: checked there
# the names of bench.perf.MEASUREMENTS, listed here so --help does not import it (a test keeps them equal)
PERF_MEASUREMENTS = ("batched-training", "epsilon", "cache", "overhead", "vision-training", "units-memory",
                     "units-workers", "rescore", "shards")


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _add_ensemble_args(parser: argparse.ArgumentParser) -> None:
    """Task, forget set and ensemble size: what ``oracles`` and ``margins export`` both build from."""
    parser.add_argument("--task", required=True)
    parser.add_argument("--task-arg", action="append", metavar="NAME=VALUE", help="task parameter")
    parser.add_argument("--seed", type=_SEED, default=0)
    parser.add_argument("--forget-size", type=_FORGET_SIZE, help="shortcut for --task-arg forget_size=K")
    parser.add_argument("--forget-ids", type=parse_ids, help="explicit forget set: comma-separated train ids")
    parser.add_argument("--n-models", type=_N_MODELS, default=32)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--plugin", action="append", default=[], metavar="FILE.py",
                        help="import a Python file that registers extra methods or tasks (repeatable)")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("list", help="show every registered method and task with its parameters")

    run = sub.add_parser("run", help="run one method on one task and write a result record")
    run.add_argument("--method", required=True)
    run.add_argument("--task", required=True)
    run.add_argument("--seed", type=_SEED, default=0, help="base seed for forget set, models and method (default 0)")
    run.add_argument("--forget-size", type=_FORGET_SIZE, help="shortcut for --task-arg forget_size=K")
    run.add_argument("--forget-ids", type=parse_ids, help="explicit forget set: comma-separated train ids")
    run.add_argument("--n-models", type=_N_MODELS, default=1, help="originals, oracles and unlearned models (default 1)")
    run.add_argument("--method-arg", action="append", metavar="NAME=VALUE", help="method hyperparameter")
    run.add_argument("--task-arg", action="append", metavar="NAME=VALUE", help="task parameter")
    _add_execution_args(run)
    run.add_argument("--protocol", choices=["independent", "challenge"], default="independent",
                     help="independent: unlearned model i comes from original i (paper 003); challenge: all "
                          "from one original (paper 002)")
    run.add_argument("--metrics", action="append", choices=["ulira"], default=[],
                     help="extra metrics: ulira (U-LiRA and a population membership-inference attack)")
    run.add_argument("--max-scored-points", type=int, default=50_000, metavar="K",
                     help="retain and validation points scored per split, a seeded sample when there are more "
                          "(default 50,000; the forget set is always scored in full)")
    run.add_argument("--shard", metavar="I/K|merge",
                     help="compute only units I, I+K, I+2K, ... into the shared cache (cluster job arrays; "
                          "numbered from 0), or 'merge': score the stored units, listing any that are missing")
    run.add_argument("--oracle-margins", metavar="DIR",
                     help="score against oracle statistics exported by 'margins export' instead of training oracles")
    run.add_argument("--out", default="results", help="folder for result records (default results/)")

    ora = sub.add_parser("oracles", help="prebuild (and cache) original and oracle ensembles for a task")
    _add_ensemble_args(ora)
    _add_execution_args(ora)

    mar = sub.add_parser("margins", help="export per-model statistics of originals and oracles for sharing")
    mar_sub = mar.add_subparsers(dest="margins_command", required=True)
    exp = mar_sub.add_parser("export", help="write margins, confidences and losses per model and split + manifest")
    _add_ensemble_args(exp)
    exp.add_argument("--max-scored-points", type=int, default=50_000, metavar="K")
    exp.add_argument("--forget-set-number", type=int_arg("--forget-set-number", Range(1, 1_000_000)), default=1,
                     metavar="F", help="F in the EasyDUB-layout file names (forget_F, forget_set_F.npy; default 1)")
    exp.add_argument("--out", required=True, help="folder to write (manifest.json and one .npy per model and split)")
    _add_execution_args(exp)

    dms = sub.add_parser("datamodels", help="train subset models and fit linear datamodels; report LDS")
    dms.add_argument("--task", required=True)
    dms.add_argument("--task-arg", action="append", metavar="NAME=VALUE", help="task parameter")
    dms.add_argument("--n-models", type=_N_MODELS, default=500, help="subset models (default 500)")
    dms.add_argument("--alpha", type=float, default=0.5, help="fraction of the train set per model (default 0.5)")
    dms.add_argument("--seed", type=_SEED, default=0)
    dms.add_argument("--ridge", type=float, default=1.0, help="ridge penalty of each regression (default 1)")
    dms.add_argument("--forget-size", type=_FORGET_SIZE, help=argparse.SUPPRESS)
    dms.add_argument("--compare", action="store_true",
                     help="LDS per unit of compute: datamodels at --sizes subset models vs TRAK at --checkpoints")
    dms.add_argument("--sizes", type=parse_ids, default=[100, 300, 1000], help="with --compare (default 100,300,1000)")
    dms.add_argument("--checkpoints", type=parse_ids, default=[1, 5, 20], help="with --compare (default 1,5,20)")
    dms.add_argument("--eval-models", type=_N_MODELS, default=50, help="with --compare: shared held-out subset models")
    dms.add_argument("--proj-dim", type=int_arg("--proj-dim", Range(1, 1_000_000)), default=512, help="TRAK projection dimension (default 512)")
    dms.add_argument("--out", default="reports", help="with --compare: folder for the plot and JSON")
    _add_execution_args(dms)

    perf = sub.add_parser("perf", help="measure speed: batched training, epsilon scoring, caching, overhead")
    perf.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke test")
    perf.add_argument("--only", action="append", metavar="NAME",
                      help="run only this measurement (repeat for several): " + ", ".join(PERF_MEASUREMENTS))

    rep = sub.add_parser("reproduce", help="regenerate a figure from the source papers",
                         formatter_class=_ReproduceHelp)
    rep.add_argument("experiment", help="one of: %(reproductions)s")
    rep.add_argument("--out", default="reports", help="folder for CSV, figures and summary (default reports/)")
    rep.add_argument("--task", help="task to run the experiment on, for experiments that take one (dm-pareto)")
    rep.add_argument("--task-arg", action="append", default=[], metavar="KEY=VALUE",
                     help="task parameter (with --task), or a setting of experiments that take them "
                          "(easydub-pretrain: root=DIR, forget_set, n_models)")
    rep.add_argument("--device", help="auto, cpu or cuda, for experiments that take one (dm-pareto)")
    rep.add_argument("--n-models", type=_N_MODELS, help="models per ensemble (dm-pareto)")
    rep.add_argument("--datamodel-models", type=int_arg("--datamodel-models", Range(1, 1_000_000)),
                     help="subset models of the datamodels (dm-pareto)")

    from bench import pretrain_cli
    pretrain_cli.add_parser(sub)

    board = sub.add_parser("report", help="build one self-contained HTML leaderboard from every result record")
    board.add_argument("--results", default="results", help="folder searched recursively for records (default results/)")
    board.add_argument("--out", default="reports/index.html", help="HTML file to write (default reports/index.html)")
    board.add_argument("--force", action="store_true",
                       help="overwrite --out even if it is not an earlier report (never a result record)")
    return parser


def _add_execution_args(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    cmd.add_argument("--backend", choices=["local", "dask"], default="local",
                     help="where ensembles train: local processes (default) or a dask.distributed cluster")
    cmd.add_argument("--workers", type=_WORKERS, default=1, help="worker processes (local, or a local Dask cluster)")
    cmd.add_argument("--scheduler", help="address of a running Dask scheduler (with --backend dask)")
    cmd.add_argument("--cache-dir", help="model cache folder (default $BENCH_CACHE or ~/.cache/unlearning-bench)")
    cmd.add_argument("--no-cache", action="store_true", help="train everything afresh and cache nothing")
    cmd.add_argument("--threads", type=_THREADS, default=None,
                     help="torch threads in this process (default on CPU: 1, which was 20-40x faster than "
                          "torch's default for tiny models on a shared 2-core machine; raise it for big models)")


def _store(args: argparse.Namespace):
    from oracles.cache import ModelStore, default_cache_root
    if args.no_cache:
        return None
    return ModelStore(args.cache_dir or default_cache_root(), log=_log)


def _executor(args: argparse.Namespace):
    from bench.executor import Executor
    return Executor(backend=args.backend, workers=args.workers, scheduler=args.scheduler)


def _apply_threads(args: argparse.Namespace) -> None:
    """Choose the thread count deliberately: ``--threads``, else one thread on CPU (tiny models)."""
    import torch
    threads = args.threads
    if threads is None and (args.device == "cpu" or (args.device == "auto" and not torch.cuda.is_available())):
        threads = 1
    if threads is not None:
        torch.set_num_threads(threads)


def _preflight(args: argparse.Namespace, *, out: bool = False) -> None:
    """What can be checked before any training: output folder, model cache, Dask scheduler; then threads."""
    if out:
        check_writable_dir(args.out, "result records", "--out")
    if not args.no_cache:
        check_cache_dir(args.cache_dir)
    if args.scheduler:
        check_scheduler(args.scheduler)
    _apply_threads(args)


def _task_from_args(args: argparse.Namespace):
    task_cls = TASKS.get(args.task)
    task_args = parse_assignments(args.task_arg, flag="--task-arg")
    check_forget_flags(getattr(args, "forget_ids", None), args.forget_size, task_args)
    if args.forget_size is not None:
        if "forget_size" in task_args:
            raise BenchError("give the forget size once: --forget-size or --task-arg forget_size=..., not both")
        task_args["forget_size"] = str(args.forget_size)
    return task_cls.from_strings(task_args, label=f"task '{args.task}'")


class _ReproduceHelp(argparse.HelpFormatter):
    """Lists the registered reproductions only when help is printed (loading them imports every task)."""

    def _expand_help(self, action: argparse.Action) -> str:
        if action.dest == "experiment":
            from bench.catalog import REPRODUCTIONS
            return action.help.replace("%(reproductions)s", ", ".join(REPRODUCTIONS.names()))
        return super()._expand_help(action)


def cmd_list() -> None:
    for kind, registry in (("Methods", METHODS), ("Tasks", TASKS)):
        names = registry.names()  # loads plugins first, so their warnings come before the listing
        print(f"{kind}:")
        for name in names:
            cls = registry.get(name)
            print(f"  {name:24s} {cls.description()}")
            print(f"      from {registry.source(name).short}")
            for spec in cls.param_specs():
                bounds = f", {spec.bounds.describe()}" if spec.bounds else ""
                print(f"      {spec.name} = {spec.default!r}  ({spec.type_name}{bounds})")
        for name, sources in registry.conflicts().items():
            print(f"  {name:24s} UNUSABLE: claimed by {' and by '.join(map(str, sources))}")
        print()


def result_path(out: str, record: dict) -> Path:
    """A stable file name per (method params, task, forget set, seed, N): reruns replace, variants coexist."""
    key = {k: record[k] for k in ("method", "task", "forget_ids", "n_models", "protocol")}
    key["seed"] = record["seeds"]["base"]
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:12]
    path = Path(out) / record["task"]["name"] / f"{record['method']['name']}-{digest}.json"
    root = Path(out).resolve()
    if path.resolve().parent.parent != root:
        raise BenchError(f"the record path {path} for method {record['method']['name']!r} and task "
                         f"{record['task']['name']!r} would leave {out}/<task>/; names must be slugs")
    return path


def write_record(out: str, record: dict, cached: bool) -> Path:
    """Write the record atomically; if that fails (disk full, read-only), say what was kept and what to rerun."""
    target = result_path(out, record)
    try:
        return write_json_atomic(target, strict_record(record))
    except OSError as err:
        kept = ("every trained and unlearned model is kept in the model cache, so rerunning the same command "
                "with a writable --out only scores and writes the record" if cached else
                "nothing was cached (--no-cache), so a rerun trains again")
        raise BenchError(f"could not write the result record {target}: {err.strerror or err}. The table above "
                         f"is the result; {kept}.") from None


def cmd_run(args: argparse.Namespace) -> None:
    from bench.runner import RunSpec, run, run_shard
    from bench.shards import Shard, parse_shard
    from bench.table import run_table

    method_cls = METHODS.get(args.method)
    task = _task_from_args(args)
    method = method_cls.from_strings(parse_assignments(args.method_arg, flag="--method-arg"),
                                     label=f"method '{args.method}'")
    _preflight(args, out=True)
    spec = RunSpec(method=method, task=task, seed=args.seed, n_models=args.n_models, forget_ids=args.forget_ids,
                   device=args.device, protocol=args.protocol, executor=_executor(args), metrics=tuple(args.metrics),
                   max_scored_points=args.max_scored_points, shard=parse_shard(args.shard),
                   oracle_margins=args.oracle_margins)
    if isinstance(spec.shard, Shard):
        done = run_shard(spec, store=_store(args), log=_log, progress=True)
        print(f"shard {done['shard']}: {done['computed']} units computed, {done['cached']} already cached "
              f"(units {', '.join(map(str, done['units'][:20]))}{' ...' if len(done['units']) > 20 else ''}); "
              "when every shard is done, rerun with --shard merge to score")
        return
    record = run(spec, store=_store(args), log=_log, progress=True)
    result_path(args.out, record)  # refuse an escaping path before printing anything
    print(run_table(record), flush=True)
    path = write_record(args.out, record, cached=not args.no_cache)
    print(f"\nresult record: {path}")


def cmd_oracles(args: argparse.Namespace) -> None:
    from bench.oracle_cli import prebuild
    task = _task_from_args(args)
    _preflight(args)
    print(prebuild(task, seed=args.seed, n_models=args.n_models, forget_ids=args.forget_ids,
                   device=args.device, executor=_executor(args), store=_store(args), log=_log))


def cmd_margins(args: argparse.Namespace) -> None:
    from bench.margins_io import export_margins
    store = _store(args)
    if store is None:
        raise BenchError("margins export reads the statistics from the model cache; drop --no-cache")
    path = export_margins(_task_from_args(args), n_models=args.n_models, out=args.out, store=store,
                          executor=_executor(args), seed=args.seed, forget_ids=args.forget_ids,
                          max_scored_points=args.max_scored_points, device=args.device, progress=True, log=_log,
                          forget_set_number=args.forget_set_number)
    print(f"margins of {args.n_models} originals, oracles and noise-floor models: {path}")


def cmd_datamodels_compare(args: argparse.Namespace, task) -> None:
    """LDS with intervals and compute of datamodels and TRAK at several sizes; table, JSON and plot."""
    from pathlib import Path

    from bench.runner import resolve_device
    from oracles.lds_compare import compare, plot, table, write_json
    if args.eval_models < 3 or min(args.sizes) < 10 or min(args.checkpoints) < 1:
        raise BenchError("--compare needs --eval-models >= 3, --sizes >= 10 and --checkpoints >= 1")
    rows = compare(task, datamodel_sizes=sorted(args.sizes), trak_checkpoints=sorted(args.checkpoints),
                   eval_models=args.eval_models, seed=args.seed, device=resolve_device(args.device),
                   store=_store(args), executor=_executor(args), proj_dim=args.proj_dim, alpha=args.alpha,
                   progress=True, log=_log)
    label = task.name + (f" ({task.config_label()})" if task.config_label() else "")
    print(table(label, rows, args.eval_models))
    out = Path(args.out)
    results = {label: rows}
    stem = f"lds_compare_{task.name}"
    write_json(results, out / f"{stem}.json")
    plot(results, out / f"{stem}.png")
    print(f"wrote {out / (stem + '.png')} and {out / (stem + '.json')}")


def cmd_datamodels(args: argparse.Namespace) -> None:
    from bench.runner import resolve_device
    from oracles.datamodels import build_datamodels
    if args.n_models < 10:
        raise BenchError(f"--n-models must be at least 10 (some are held out to score the datamodels), got {args.n_models}")
    if not 0 < args.alpha < 1:
        raise BenchError(f"--alpha must be between 0 and 1, got {args.alpha}")
    task = _task_from_args(args)
    _preflight(args)
    if not task.supports_datamodels:
        raise BenchError(f"task '{task.name}' does not support datamodels (its outputs are not fixed-size)")
    if args.compare:
        return cmd_datamodels_compare(args, task)
    dm = build_datamodels(task, n_models=args.n_models, alpha=args.alpha, seed=args.seed,
                          device=resolve_device(args.device), store=_store(args), executor=_executor(args),
                          ridge=args.ridge, progress=True, log=_log)
    lds = dm.lds
    print(f"datamodels for {task.name}: {args.n_models} models on alpha={args.alpha} subsets, "
          f"{dm.n_train + dm.n_val} targets x {dm.out_dim} outputs")
    print(f"linear datamodeling score (Spearman, held-out models): {lds['mean']:.3f} "
          f"(95% CI {lds['ci_low']:.3f} to {lds['ci_high']:.3f}; {lds['targets']} targets, "
          f"{lds['held_out_models']} held-out models)")
    source = "loaded from the cache; training took" if dm.cached else "trained now in"
    print(f"datamodels {source} {dm.train_seconds:.1f} s")


def cmd_reproduce(args: argparse.Namespace) -> None:
    from bench.catalog import REPRODUCTIONS, get_reproduction
    experiments = REPRODUCTIONS.names()
    if args.experiment not in experiments:
        import difflib
        close = difflib.get_close_matches(args.experiment, experiments, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise BenchError(f"unknown experiment '{args.experiment}'.{hint} Known: {', '.join(experiments)}")
    experiment = get_reproduction(args.experiment)
    print(experiment(Path(args.out), log=_log, **_experiment_options(args, experiment)))


def _experiment_options(args: argparse.Namespace, experiment) -> dict:
    """The reproduce flags given, as keyword arguments; a flag the experiment does not take is refused."""
    import inspect
    accepted = inspect.signature(experiment).parameters
    given = {"task": args.task, "device": args.device, "n_models": args.n_models,
             "datamodel_models": args.datamodel_models}
    given = {k: v for k, v in given.items() if v is not None}
    if args.task_arg and not args.task:
        if "task_args" not in accepted:
            raise BenchError(f"experiment '{args.experiment}': --task-arg needs --task; add --task T "
                             "or drop --task-arg")
        given["task_args"] = parse_assignments(args.task_arg, flag="--task-arg")
    refused = [k for k in given if k not in accepted]
    if refused:
        flags = ", ".join("--" + k.replace("_", "-") for k in refused)
        raise BenchError(f"experiment '{args.experiment}' has a fixed configuration and does not take {flags}; "
                         "drop the flag")
    if "task" in given:
        task_cls = TASKS.get(args.task)
        given["task"] = task_cls.from_strings(parse_assignments(args.task_arg, flag="--task-arg"),
                                              label=f"task '{args.task}'")
    return given


def cmd_report(args: argparse.Namespace) -> None:
    from bench.report.build import build_report
    print(build_report(Path(args.results), Path(args.out), log=_log, force=args.force))


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # argparse has printed its message; return its code (2) rather than exit
        return int(stop.code or 0)
    try:
        for plugin in args.plugin:
            load_plugin(plugin)
        if args.command == "list":
            cmd_list()
        elif args.command == "run":
            cmd_run(args)
        elif args.command == "oracles":
            cmd_oracles(args)
        elif args.command == "datamodels":
            cmd_datamodels(args)
        elif args.command == "margins":
            cmd_margins(args)
        elif args.command == "perf":
            from bench.perf import run_perf
            print(run_perf(quick=args.quick, only=args.only, log=_log))
        elif args.command == "reproduce":
            cmd_reproduce(args)
        elif args.command == "report":
            cmd_report(args)
        elif args.command == "pretrain-lm":
            from bench import pretrain_cli
            print(pretrain_cli.run(args, _task_from_args))
    except BenchError as err:
        _log(f"error: {err}")
        return err.exit_code
    except (DivergenceError, BudgetExceededError, MethodFailedError) as err:
        _log(f"error: {err}\nno result was written.")
        return err.exit_code
    except KeyboardInterrupt as err:  # one line, not a traceback: what was kept and how to resume
        from bench.runner import RunInterrupted
        message = str(err) if isinstance(err, RunInterrupted) else (
            "interrupted; finished models and units stay in the cache: rerun the same command to resume")
        _log(message)
        return 130
    return 0
