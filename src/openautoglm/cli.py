"""The ``openautoglm`` command line (also ``python -m openautoglm``).

::

    openautoglm demo [--policy heft] [--workers 4] [--dask]
    openautoglm run pipeline.yaml [--policy heft] [--input key=value | key=@file ...] [--json]
    openautoglm schedule TRACE.json --workers 4 [--policy heft,cpop] [--ccr 1] [--gantt out.png]
    openautoglm train-scheduler [training arguments ...]

Every command returns 0 on success, 1 when a task failed while running, 2 on bad input
(printed as ``error: ...`` with what to do instead).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["main", "parse_inputs"]


def _console() -> Any:
    from rich.console import Console

    # Piped output (tests, logs) gets a fixed width rather than rich's 80 columns.
    return Console(width=None if sys.stdout.isatty() else 110, highlight=False)


def parse_inputs(pairs: Sequence[str]) -> dict[str, str]:
    """Turn ``["k=v", "doc=@notes.txt"]`` into a dict; ``@path`` reads the file's text.

    Raises:
        ValueError: A pair without ``=``, an empty key, a repeated key, or a missing file.

    Example:
        >>> parse_inputs(["raw_text=Hello world", "n=3"])
        {'raw_text': 'Hello world', 'n': '3'}
    """
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--input {pair!r} is not key=value; write e.g. --input raw_text='Some "
                             "text' or --input raw_text=@article.txt")
        if key in out:
            raise ValueError(f"--input {key!r} is given twice")
        if value.startswith("@"):
            path = Path(value[1:])
            if not path.is_file():
                raise ValueError(f"--input {key}=@{path}: file not found")
            value = path.read_text(encoding="utf-8")
        out[key] = value
    return out


def _cluster(workers: int | None, speeds: str | None, bandwidth: float) -> Any:
    from openautoglm.core.cluster import Cluster

    if speeds:
        try:
            values = [float(s) for s in speeds.split(",")]
        except ValueError:
            raise ValueError(f"--speeds {speeds!r} is not a comma-separated list of numbers, "
                             "e.g. --speeds 1,1,2,2") from None
        if workers is not None and len(values) != workers:
            raise ValueError(f"--speeds lists {len(values)} workers but --workers is {workers}; "
                             "give one speed per worker or drop --workers")
        return Cluster(speeds=values, bandwidth=bandwidth)
    workers = 4 if workers is None else workers
    if workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    return Cluster.homogeneous(workers, bandwidth=bandwidth)


def _warm_up(policy: str, cluster: Any) -> None:
    """Plan a two-task graph so imports, weight loading and JIT compilation are not timed."""
    import networkx as nx

    from openautoglm.core.graph import TaskGraph
    from openautoglm.schedulers import schedule

    G = nx.DiGraph()
    G.add_node("a", cost=1.0)
    G.add_node("b", cost=1.0)
    G.add_edge("a", "b", size=1.0)
    schedule(TaskGraph.from_networkx(G), cluster, policy=policy)


def _plan_table(schedule: Any) -> Any:
    from rich.table import Table

    table = Table()
    for col in ("task", "worker", "start (s)", "finish (s)"):
        table.add_column(col, justify="left" if col == "task" else "right")
    for key in schedule.start_order():
        w, start, finish = schedule.placements[key]
        table.add_row(str(key), str(w), f"{start:.2f}", f"{finish:.2f}")
    return table


def _short(value: Any, limit: int = 240) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _run_pipeline(pipeline: Any, args: argparse.Namespace, inputs: dict[str, Any]) -> dict[str, Any]:
    """Plan, print the plan, run (locally or on Dask) and return every key."""
    from openautoglm.simulate.schedule import lower_bound

    console = _console()
    cluster = _cluster(args.workers, None, 1.0)
    graph = pipeline.validate(inputs)
    _warm_up(args.policy, cluster)
    t0 = time.perf_counter()
    plan = pipeline.plan(policy=args.policy, cluster=cluster, graph=graph)
    planned = time.perf_counter() - t0
    console.print(f"[bold]Plan[/bold] of {pipeline.name!r}: {len(graph)} tasks, policy "
                  f"{args.policy!r}, {cluster.n_workers} workers")
    console.print(_plan_table(plan))
    console.print(f"planned makespan {plan.makespan:.2f} s (lower bound "
                  f"{lower_bound(graph, cluster):.2f} s), planned in {planned * 1e3:.1f} ms")
    if args.dask:
        from openautoglm.engine.engine import Engine

        t0 = time.perf_counter()
        with Engine(n_workers=cluster.n_workers, dashboard=False, progress=False) as engine:
            console.print(f"started a local Dask cluster of {cluster.n_workers} workers in "
                          f"{time.perf_counter() - t0:.1f} s")
            t0 = time.perf_counter()
            result = pipeline.run(engine=engine, policy=args.policy, **inputs)
        where = "on Dask, in plan priority order"
    else:
        t0 = time.perf_counter()
        result = pipeline.run(policy=args.policy, cluster=cluster, **inputs)
        where = "locally, in plan order"
    console.print(f"ran {len(graph)} tasks {where} in {time.perf_counter() - t0:.3f} s wall\n")
    return dict(result)


def _cmd_demo(args: argparse.Namespace) -> int:
    from openautoglm import demo

    pipeline = demo.build_pipeline()
    result = _run_pipeline(pipeline, args, {"raw_text": demo.DEMO_TEXT})
    console = _console()
    report = result["report"]
    console.print("[bold]Result[/bold]")
    console.print(f"  summary      {result['summary']}")
    console.print(f"  keywords     {', '.join(report['keywords'])}")
    console.print(f"  entities     {', '.join(report['entities'])}")
    console.print(f"  readability  {report['readability']}")
    console.print(f"  sentiment    {report['sentiment']}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from openautoglm.pipeline import Pipeline

    pipeline = Pipeline.from_yaml(Path(args.pipeline), allowed_modules=args.allow_module)
    inputs = parse_inputs(args.input)
    pipeline.validate(inputs)
    if args.json:
        result = pipeline.run(policy=args.policy, cluster=_cluster(args.workers, None, 1.0),
                              **inputs)
        print(json.dumps(result, default=repr, indent=2))
        return 0
    result = _run_pipeline(pipeline, args, inputs)
    console = _console()
    console.print("[bold]Result[/bold]")
    for key in pipeline.outputs:
        console.print(f"  {key} = {_short(result[key])}", markup=False)
    return 0


def _cmd_schedule(args: argparse.Namespace) -> int:
    from rich.table import Table

    from openautoglm.core.loaders import load_wfcommons
    from openautoglm.schedulers import schedule
    from openautoglm.simulate.schedule import lower_bound

    if args.bandwidth <= 0:
        raise ValueError(f"--bandwidth is bytes per second and must be > 0, got {args.bandwidth}")
    graph = load_wfcommons(args.trace, bandwidth=args.bandwidth)
    if args.ccr is not None:
        if args.ccr < 0:
            raise ValueError(f"--ccr must be >= 0, got {args.ccr}")
        graph = graph.with_ccr(args.ccr)
    cluster = _cluster(args.workers, args.speeds, 1.0)
    bound = lower_bound(graph, cluster)
    policies = [p.strip() for p in args.policy.split(",") if p.strip()]
    if not policies:
        raise ValueError("--policy is empty; name one or more policies, e.g. --policy heft,cpop")
    console = _console()
    console.print(f"{Path(args.trace).name}: {len(graph)} tasks, {len(graph.edge_src)} edges, "
                  f"CCR {graph.ccr:.3g}, {cluster.n_workers} workers")
    table = Table()
    for col in ("policy", "makespan (s)", "lower bound (s)", "ratio", "planning (ms)"):
        table.add_column(col, justify="left" if col == "policy" else "right")
    plans, notes = [], []
    for policy in policies:
        if policy == "optimal" and len(graph) > _milp_limit() and len(policies) > 1:
            notes.append(f"skipped 'optimal': the exact MILP solves at most {_milp_limit()} tasks "
                         f"and this trace has {len(graph)}; the other policies ran")
            continue
        _warm_up(policy, cluster)
        t0 = time.perf_counter()
        sched = schedule(graph, cluster, policy=policy, seed=args.seed)
        ms = (time.perf_counter() - t0) * 1e3
        plans.append((policy, sched))
        ratio = sched.makespan / bound if bound > 0 else float("nan")
        table.add_row(policy, f"{sched.makespan:.2f}", f"{bound:.2f}", f"{ratio:.3f}", f"{ms:.1f}")
    # Reference: everything in order on the single best worker (no transfers at all).
    serial = float(graph.exec_time(cluster).sum(axis=0).min())
    table.add_row("(all on one worker)", f"{serial:.2f}", f"{bound:.2f}",
                  f"{serial / bound if bound > 0 else float('nan'):.3f}", "-")
    console.print(table)
    for note in notes:
        console.print(f"note: {note}")
    if args.gantt:
        name, first = plans[0]
        first.gantt(path=args.gantt)
        print(f"Gantt chart of {name!r} written to {args.gantt}")
    return 0


def _milp_limit() -> int:
    from openautoglm.schedulers.milp import MILPScheduler

    return MILPScheduler().max_tasks


def _policy_help() -> str:
    from openautoglm.schedulers import available_policies

    return ", ".join(available_policies())


def _cmd_train(argv: Sequence[str]) -> int:
    try:
        from openautoglm.schedulers.gnn.training import main as train_main
    except ImportError as exc:
        print(f"error: train-scheduler needs openautoglm.schedulers.gnn.training, which failed to import ({exc}); "
              "reinstall the package with its dependencies (pip install -e .)", file=sys.stderr)
        return 2
    return int(train_main(list(argv)) or 0)


def _parser() -> argparse.ArgumentParser:
    from openautoglm import __version__

    ap = argparse.ArgumentParser(prog="openautoglm", description="GNN-based task orchestration: "
                                 "compile pipelines to DAGs, plan them, run them.")
    ap.add_argument("--version", action="version", version=f"openautoglm {__version__}")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def planning(p: argparse.ArgumentParser) -> None:
        p.add_argument("--policy", default="heft", help=f"scheduler: {_policy_help()} (default heft)")
        p.add_argument("--workers", type=int, default=4, help="workers to plan on (default 4)")
        p.add_argument("--dask", action="store_true",
                       help="execute on an embedded Dask cluster instead of locally")

    demo = sub.add_parser("demo", help="compile, plan and run the demo text pipeline")
    planning(demo)
    run = sub.add_parser("run", help="run a pipeline defined in YAML")
    run.add_argument("pipeline", help="the pipeline's YAML file")
    run.add_argument("--input", action="append", default=[], metavar="KEY=VALUE",
                     help="a pipeline input (repeatable); KEY=@file reads the file's text")
    run.add_argument("--json", action="store_true", help="print only the result, as JSON")
    run.add_argument("--allow-module", action="append", default=[], metavar="MODULE",
                     help="a module the pipeline's funcs may come from besides openautoglm and "
                          "the YAML file's own folder (repeatable; a pipeline file is code)")
    planning(run)
    sch = sub.add_parser("schedule", help="plan a WfFormat trace and compare with the lower bound")
    sch.add_argument("trace", help="a WfFormat 1.4/1.5 JSON file")
    sch.add_argument("--workers", type=int, default=None,
                     help="equal speed-1 workers (default 4, or one per --speeds entry)")
    sch.add_argument("--speeds", default=None, help="comma-separated worker speeds, e.g. 1,1,2,2")
    sch.add_argument("--bandwidth", type=float, default=125e6, metavar="BYTES_PER_S",
                     help="network speed that turns the trace's file bytes into transfer "
                          "seconds (default 125e6, 1 Gbit/s)")
    sch.add_argument("--policy", default="heft", help="one policy or several, comma-separated, "
                     f"of: {_policy_help()} (default heft; 'optimal' is skipped with a note on "
                     "traces of more tasks than it solves, when other policies are named)")
    sch.add_argument("--ccr", type=float, default=None,
                     help="rescale edge sizes to this communication-to-computation ratio")
    sch.add_argument("--seed", type=int, default=0, help="seed for randomised policies")
    sch.add_argument("--gantt", default=None, metavar="PNG", help="write the first policy's Gantt chart")
    sub.add_parser("serve", add_help=False,
                   help="serve models, plans and runs over HTTP on 127.0.0.1 (see "
                        "'openautoglm serve --help')")
    sub.add_parser("train-scheduler", add_help=False,
                   help="train the GNN scheduler (arguments go to openautoglm.schedulers.gnn.training; see "
                        "'openautoglm train-scheduler --help')")
    return ap


_HANDLERS = {"demo": _cmd_demo, "run": _cmd_run, "schedule": _cmd_schedule}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    Args:
        argv: Arguments without the program name (``None``: ``sys.argv[1:]``).

    Returns:
        The exit status: 0 success, 1 a task failed, 2 bad input.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "train-scheduler":
        return _cmd_train(argv[1:])
    if argv and argv[0] == "serve":
        from openautoglm.serve.cli import main as serve_main

        return serve_main(argv[1:])
    args = _parser().parse_args(argv)
    from openautoglm.pipeline.checks import PipelineError
    from openautoglm.pipeline import TaskFailedError

    try:
        return _HANDLERS[args.command](args)
    except TaskFailedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (PipelineError, ValueError, TypeError, KeyError, OSError) as exc:
        # Bad input: one line, no traceback (a directory, a binary or malformed file...).
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        if isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError):
            message = f"cannot read {exc.filename!r}: {exc.strerror or exc}"
        print(f"error: {_one_line(str(message))}", file=sys.stderr)
        return 2


def _one_line(message: str, limit: int = 2000) -> str:
    """An error message on one line, cut to ``limit`` characters."""
    text = "; ".join(part.strip() for part in message.splitlines() if part.strip())
    return text if len(text) <= limit else text[:limit] + "..."
