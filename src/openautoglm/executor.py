"""Run a plan for real on Dask: the :class:`Engine` and :func:`compute`.

A run goes: graph (or pipeline) -> history refines its costs -> a policy plans it on the
Cluster that the Dask workers form -> ONE task graph is submitted with per-key annotations that
make Dask follow the plan -> the scheduler plugin records what really happened -> history.

How the plan is honoured (see /work/shared/notes/dask.md for the measurements behind it):

- ``priority = -(rank of planned start)``: Dask orders by ``(-priority, generation, dask.order)``
  so the user's value wins over ``dask.order``.
- ``workers=[address]`` (strict: never stolen) for the worker the plan chose; if that worker
  dies, the scheduler plugin loosens the pin so the task runs elsewhere.
- ``resources={"share": units * cores}`` on workers that declare ``share`` (the embedded
  cluster gives each worker ``units * threads``, 1000 units per core: integer units, since
  fractional resources lose slots), plus the task's own resources (``{"GPU": 1}``).
- ``retries`` from the task. Inside the task, ``torch.set_num_threads(cores)`` (restored after).

Read ``tests/test_executor.py``: each of these is checked against the order and placement Dask
actually used, as recorded on the scheduler.
"""
from __future__ import annotations

import logging
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Hashable, Mapping
from typing import TYPE_CHECKING, Any

import dask
import numpy as np
from dask._task_spec import DataNode, Task, TaskRef
from dask.highlevelgraph import HighLevelGraph, MaterializedLayer
from distributed.diagnostics.plugin import SchedulerPlugin, WorkerPlugin

from .report import RunResult, collect_run
from .cluster import Cluster
from .graph import TaskGraph

if TYPE_CHECKING:
    from .history import History
    from .pipeline import Pipeline
    from .simulate import Schedule

__all__ = ["Engine", "EngineError", "compute"]

logger = logging.getLogger(__name__)

#: Resource units per core: integer units, because Dask loses slots with fractional resources.
SHARE_UNITS = 1000
RECORDER = "openautoglm-recorder"
FAILURES = "openautoglm-failures"


class EngineError(RuntimeError):
    """The engine cannot run this (unreachable cluster, unsatisfiable request, ...)."""


def _call_task(task: Any, cores: int, *args: Any) -> Any:
    """Run a pipeline task with ``cores`` threads (the plan's share), then restore them."""
    torch = sys.modules.get("torch")
    if torch is None or cores <= 1:
        return task(*args)
    before = torch.get_num_threads()
    torch.set_num_threads(cores)
    try:
        return task(*args)
    finally:
        torch.set_num_threads(before)


class Engine:
    """Executes planned task graphs on a Dask cluster.

    Args:
        address: a running Dask scheduler (``"tcp://host:8786"``); ``None`` starts an embedded
            ``LocalCluster`` that closes with the engine.
        n_workers: embedded cluster: workers (default ``min(4, cpu count)``).
        threads_per_worker: embedded cluster: threads (= cores in the plan) per worker.
        processes: embedded cluster: workers in their own processes (for pure-Python,
            GIL-bound tasks; a script then needs the ``if __name__ == "__main__":`` guard).
            Default ``False``: threads of this process, instant to start, fine for code that
            releases the GIL (torch, numpy, I/O).
        resources: embedded cluster: extra resources every worker declares, e.g. ``{"GPU": 1}``.
        speeds: relative speed per worker (sorted by address) for planning; default all 1.
        dashboard: embedded cluster: serve the Dask dashboard (its link is logged).
        progress: show a progress bar for runs longer than a second (``None``: when stderr is
            a terminal).
        timeout: seconds to wait for a remote scheduler before failing.

    Raises:
        EngineError: the address cannot be reached within ``timeout`` (names the address).

    Example:
        >>> from openautoglm.pipeline import Pipeline, Task
        >>> p = Pipeline("double", [Task("twice", func=lambda x: 2 * x, input_key="x",
        ...                              output_key="y")])
        >>> with Engine(n_workers=1, dashboard=False, progress=False) as engine:
        ...     result = engine.run(p, inputs={"x": 21})
        >>> result["y"], [t["status"] for t in result.times]
        (42, ['ok'])
    """

    def __init__(self, address: str | None = None, *, n_workers: int | None = None,
                 threads_per_worker: int = 1, processes: bool = False,
                 resources: Mapping[str, float] | None = None,
                 speeds: list[float] | None = None, dashboard: bool = True,
                 progress: bool | None = None, timeout: float = 10.0) -> None:
        import os

        from distributed import Client, LocalCluster

        self.progress = progress
        self._dashboard = dashboard
        self.speeds = speeds
        self.cluster = None
        if address is None:
            n_workers = min(4, os.cpu_count() or 1) if n_workers is None else n_workers
            if n_workers < 1 or threads_per_worker < 1:
                raise ValueError(f"n_workers={n_workers} and threads_per_worker="
                                 f"{threads_per_worker} must be >= 1")
            res = {"share": SHARE_UNITS * threads_per_worker, **dict(resources or {})}
            # Placement is the plan's: no stealing, and late queuing decisions.
            with dask.config.set({"distributed.scheduler.work-stealing": False,
                                  "distributed.scheduler.worker-saturation": 1.0}):
                self.cluster = LocalCluster(
                    n_workers=n_workers, threads_per_worker=threads_per_worker,
                    processes=processes, resources=res,
                    # A random port: several engines (and users) on one machine do not collide.
                    dashboard_address=":0", scheduler_kwargs={"dashboard": dashboard},
                )
            self.client = Client(self.cluster)
        else:
            if resources is not None or n_workers is not None:
                raise ValueError("n_workers/resources configure the embedded cluster; with "
                                 "address=..., start the workers with them instead "
                                 '(dask worker ADDRESS --resources "GPU=1").')
            try:
                self.client = Client(address, timeout=timeout)
            except (OSError, TimeoutError) as e:
                raise EngineError(
                    f"Cannot reach a Dask scheduler at {address!r} within {timeout:g} s ({e}). "
                    "Start one with `dask scheduler` and pass its address, or use Engine() "
                    "for a local cluster."
                ) from e
        try:
            self.client.register_plugin(RunRecorder())
            self.client.register_plugin(FailureRecorder())
        except Exception as e:
            self.close()
            raise EngineError(
                f"Could not install openautoglm's recorder plugins on the Dask cluster ({e!r}); "
                "install openautoglm (same version) on the scheduler and every worker."
            ) from e
        if self.dashboard_link:
            logger.info("Dask dashboard: %s", self.dashboard_link)

    # -- the cluster ---------------------------------------------------------------------
    @property
    def dashboard_link(self) -> str | None:
        """The Dask dashboard's URL (``None`` when it is not served)."""
        if self.cluster is not None and not self._dashboard:
            return None
        try:
            info = self.client.scheduler_info()
            return self.client.dashboard_link if info.get("services", {}).get("dashboard") else None
        except Exception:
            return None

    def workers(self) -> list[dict[str, Any]]:
        """The Dask workers, sorted by address: ``address``, ``nthreads``, ``resources``."""
        info = self.client.scheduler_info(n_workers=-1)["workers"]
        return [{"address": a, "nthreads": w["nthreads"], "resources": w.get("resources", {}),
                 "name": w.get("name")} for a, w in sorted(info.items())]

    def cluster_model(self, workers: list[dict[str, Any]] | None = None) -> Cluster:
        """The :class:`~openautoglm.cluster.Cluster` to plan on: one worker per Dask worker.

        Cores are the workers' threads; speeds are ``speeds`` (default 1); bandwidth is 1, so
        edge sizes are transfer seconds (as history measures them).
        """
        workers = self.workers() if workers is None else workers
        if not workers:
            raise EngineError("The Dask cluster has no workers; start some with `dask worker`.")
        speeds = self.speeds or [1.0] * len(workers)
        if len(speeds) != len(workers):
            raise ValueError(f"speeds has {len(speeds)} entries but the cluster has "
                             f"{len(workers)} workers: give one speed per worker.")
        return Cluster(speeds=speeds, bandwidth=1.0, cores=[w["nthreads"] for w in workers])

    # -- running -------------------------------------------------------------------------
    def plan(self, graph: TaskGraph, policy: str = "heft", *, history: History | None = None,
             cluster: Cluster | None = None) -> tuple[TaskGraph, Schedule]:
        """Refine ``graph`` from ``history`` and plan it with ``policy`` on the Dask workers.

        Returns:
            The (refined) graph and its schedule.
        """
        from .schedulers import schedule

        if history is not None:
            graph = history.refine(graph, identities=_identities(graph))
        return graph, schedule(graph, cluster or self.cluster_model(), policy=policy)

    def run(self, work: TaskGraph | Pipeline, policy: str = "heft", inputs: Mapping[str, Any] | None = None,
            history: History | None = None, *, plan: Schedule | None = None,
            keys: list[Hashable] | None = None, name: str | None = None,
            pin: bool | None = None) -> RunResult:
        """Plan ``work`` and run it on the cluster following the plan.

        Args:
            work: a :class:`~openautoglm.pipeline.Pipeline`, or a TaskGraph whose nodes carry a
                ``"task"`` (pipeline Task) or ``"dask"`` (Dask task spec) attribute.
            policy: any registered scheduler name (``"heft"``, ``"gnn"``, ...).
            inputs: a pipeline's input keys.
            history: refine costs from it before planning, and record this run into it.
            plan: run this schedule instead of planning (its cluster must match the workers).
            keys: the outputs to return (default: every task's; a ``from_dask`` graph: its keys).
            name: the pipeline name recorded in history.
            pin: pin each task to its planned worker (``workers=`` strict). ``None``: pin
                unless some costs are Dask's default guesses (a ``from_dask`` graph without
                history), where Dask's own data-local placement is better.

        Returns:
            A :class:`~openautoglm._run.RunResult`: a dict of outputs (for a pipeline, every
            key, inputs included) with ``schedule``, per-task ``times``, ``makespan`` and
            ``report(path)``.

        Raises:
            openautoglm.pipeline.TaskFailedError: a task still raised after its retries; its
                ``partial`` holds every output already computed, ``result`` the run's record.
            EngineError: a request no worker can satisfy (before anything is submitted).
        """
        from .pipeline import Pipeline

        inputs = dict(inputs or {})
        if isinstance(work, Pipeline):
            name = name or work.name
            graph = work.compile(inputs=inputs)
        elif isinstance(work, TaskGraph):
            graph = work
            if inputs:
                raise ValueError("inputs= are a pipeline's input keys; a TaskGraph carries its data.")
        else:
            raise TypeError(f"Engine.run() takes a Pipeline or a TaskGraph, got "
                            f"{type(work).__name__}; for Dask collections use engine.compute().")
        workers = self.workers()
        cluster = self.cluster_model(workers)
        if plan is None:
            graph, plan = self.plan(graph, policy, history=history, cluster=cluster)
        elif plan.cluster.n_workers != cluster.n_workers:
            raise ValueError(f"The plan is for {plan.cluster.n_workers} workers but the cluster "
                             f"has {cluster.n_workers}; plan on engine.cluster_model().")
        return self._execute(graph, plan, workers, inputs, history, keys, name or "graph", policy,
                             pin)

    def compute(self, *args: Any, policy: str = "heft", history: History | None = None,
                **kwargs: Any) -> tuple[Any, ...]:
        """Plan Dask collections and compute them: a drop-in for ``dask.compute``.

        Returns:
            What ``dask.compute(*args)`` returns.
        """
        from .dask_graph import collections_to_dsk, from_dask

        dsk, keys, repack = collections_to_dsk(*args, **kwargs)
        graph = from_dask(dsk, keys)
        result = self.run(graph, policy=policy, history=history, keys=keys, name="compute")
        return repack([result[k] for k in keys])

    def _execute(self, graph: TaskGraph, plan: Schedule, workers: list[dict[str, Any]],
                 inputs: dict[str, Any], history: History | None, keys: list[Hashable] | None,
                 name: str, policy: str, pin: bool | None = None) -> RunResult:
        run_id = uuid.uuid4().hex[:12]
        cores = {k: int(c) for k, c in plan.cores.items()}
        dsk, dkey, out = _build_dsk(graph, inputs, run_id, cores)
        if keys is None:
            keys = graph.nx.graph.get("dask_keys") or list(graph.tasks)
        if pin is None:
            # Placement is only worth forcing when the costs mean something: not when they
            # are Dask's blanket 500 ms guesses (then Dask's data locality does better).
            pin = not any(a.get("cost_source") == "dask-default" for _, a in graph.nx.nodes(data=True))
        annotations = _annotations(graph, plan, workers, dkey, run_id, pin)
        if history is not None:
            durations = history.durations()
            seed = {_prefix(dkey[k]): durations[i] for k, i in _identities(graph).items()
                    if i in durations}
            if seed:
                self.client.run_on_scheduler(seed_durations, durations=seed)
        started = time.time()
        # Per-key annotations ride on a layer: keys whose value is None get none (unpinned).
        layer = MaterializedLayer(dsk, annotations=annotations)
        hlg = HighLevelGraph({f"openautoglm-{run_id}": layer}, {f"openautoglm-{run_id}": set()})
        futures = self.client.get(hlg, [dkey[k] for k in keys], sync=False)
        futures = dict(zip(keys, futures))
        failed = self._wait(futures)
        return collect_run(self, graph, plan, workers, futures, failed, inputs, out, dkey,
                           run_id, started, history, name, policy)

    def _wait(self, futures: dict[Hashable, Any]) -> bool:
        """Wait for every future or the first error; a progress bar once it takes over a second.

        Polls the futures' states (set by the client's event loop) with a growing interval:
        ``as_completed`` would cost two cross-thread callbacks per future, which for 5,000
        trivial tasks is seconds of contention with the scheduler.

        Returns:
            Whether a task failed.
        """
        show = self._show_progress()
        pending = list(futures.values())
        deadline = time.monotonic() + 1.0
        delay = 0.0005
        bar = job = None
        try:
            while pending:
                still = []
                for f in pending:
                    status = f.status
                    if status == "pending":
                        still.append(f)
                    elif status != "finished":  # error, cancelled or lost
                        return True
                pending = still
                if bar is not None:
                    bar.update(job, completed=len(futures) - len(pending))
                elif show and pending and time.monotonic() > deadline:
                    from rich.progress import Progress

                    link = self.dashboard_link
                    bar = Progress(transient=True)
                    bar.start()
                    job = bar.add_task(f"running{' (dashboard: ' + link + ')' if link else ''}",
                                       total=len(futures), completed=len(futures) - len(pending))
                if pending:
                    time.sleep(delay)
                    delay = min(0.1, delay * 1.5)
        finally:
            if bar is not None:
                bar.update(job, completed=len(futures) - len(pending))
                bar.stop()
        return False

    def _show_progress(self) -> bool:
        return self.progress if self.progress is not None else sys.stderr.isatty()

    # -- lifetime ------------------------------------------------------------------------
    def close(self) -> None:
        """Disconnect, and stop the embedded cluster if this engine started it."""
        try:
            self.client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()
                self.cluster = None

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = "embedded LocalCluster" if self.cluster is not None else self.client.scheduler.address
        link = self.dashboard_link
        return f"Engine({where}, {len(self.workers())} workers{', dashboard ' + link if link else ''})"


# -- Dask plugins (importable where they run: install openautoglm on remote clusters) ---


class RunRecorder(SchedulerPlugin):
    """Scheduler plugin: per-task records of engine runs, and re-homing of orphaned pins."""

    name = RECORDER
    idempotent = True

    def __init__(self) -> None:
        self.records: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.scheduler: Any = None

    async def start(self, scheduler: Any) -> None:
        self.scheduler = scheduler

    def transition(self, key: Any, start: str, finish: str, *args: Any, **kwargs: Any) -> None:
        if start != "processing" or finish not in ("memory", "erred"):
            return
        ts = self.scheduler.tasks.get(key) if self.scheduler is not None else None
        if ts is None or not ts.annotations or "oag_run" not in ts.annotations:
            return
        rec = {
            "key": key,
            "status": "ok" if finish == "memory" else "error",
            "worker": kwargs.get("worker"),
            "nbytes": kwargs.get("nbytes", 0) or 0,
            "startstops": kwargs.get("startstops", []),
            "deps": [(d.key, d.nbytes) for d in ts.dependencies],
            "priority": ts.priority,
        }
        if finish == "erred":
            rec["exception_text"] = kwargs.get("exception_text")
            rec["traceback_text"] = kwargs.get("traceback_text")
        self.records[ts.annotations["oag_run"]].append(rec)

    def pop(self, run_id: str) -> list[dict[str, Any]]:
        return self.records.pop(run_id, [])

    def remove_worker(self, scheduler: Any, worker: str, **kwargs: Any) -> None:
        # The plan pinned tasks to this worker with strict restrictions (so that nothing steals
        # them); now that it is gone, let them run anywhere rather than wait forever.
        recs = {}
        for ts in scheduler.tasks.values():
            if ts.worker_restrictions and ts.worker_restrictions <= {worker} \
                    and ts.annotations and "oag_run" in ts.annotations:
                ts.loose_restrictions = True
                if ts.state == "no-worker":
                    recs[ts.key] = "processing"
        if recs:
            scheduler.transitions(recs, stimulus_id=f"openautoglm-rehome-{worker}")


class FailureRecorder(WorkerPlugin):
    """Worker plugin: every failed attempt of an engine task, with its exception."""

    name = FAILURES
    idempotent = True

    def __init__(self) -> None:
        self.failures: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.worker: Any = None

    def setup(self, worker: Any) -> None:
        self.worker = worker

    def transition(self, key: Any, start: str, finish: str, **kwargs: Any) -> None:
        if finish != "error" or self.worker is None:
            return
        ts = self.worker.state.tasks.get(key)
        if ts is None or not ts.annotations or "oag_run" not in ts.annotations:
            return
        compute = [s for s in ts.startstops if s.get("action") == "compute"]
        self.failures[ts.annotations["oag_run"]].append({
            "key": key,
            "worker": self.worker.address,
            "start": compute[-1]["start"] if compute else None,
            "stop": compute[-1]["stop"] if compute else None,
            "exception_text": ts.exception_text,
            "traceback_text": ts.traceback_text,
        })


def pop_records(dask_scheduler: Any, run_id: str) -> list[dict[str, Any]]:
    """``client.run_on_scheduler`` target: take a run's records off the scheduler."""
    plugin = dask_scheduler.plugins.get(RECORDER)
    return plugin.pop(run_id) if plugin is not None else []


def pop_failures(dask_worker: Any, run_id: str) -> list[dict[str, Any]]:
    """``client.run`` target: take a run's failed attempts off a worker."""
    plugin = dask_worker.plugins.get(FAILURES)
    return plugin.failures.pop(run_id, []) if plugin is not None else []


def seed_durations(dask_scheduler: Any, durations: dict[str, float]) -> int:
    """``client.run_on_scheduler`` target: seed Dask's per-prefix duration estimates.

    Sets ``distributed.scheduler.default-task-durations`` (read when a prefix is first seen)
    and the average of prefixes the scheduler already knows but has not measured.
    """
    import dask

    known = dict(dask.config.get("distributed.scheduler.default-task-durations", {}) or {})
    known.update({k: f"{float(v)}s" for k, v in durations.items()})
    dask.config.set({"distributed.scheduler.default-task-durations": known})
    n = 0
    for name, seconds in durations.items():
        tp = dask_scheduler.task_prefixes.get(name)
        if tp is not None and tp.duration_average < 0:
            tp.duration_average = float(seconds)
            n += 1
    return n


def _prefix(key: Hashable) -> str:
    from dask.utils import key_split

    return key_split(key)


def _identities(graph: TaskGraph) -> dict[Hashable, str]:
    """History identity per node: its ``identity`` attribute, a pipeline task's name, or the prefix."""
    from .history import task_identity

    out = {}
    for k, a in graph.nx.nodes(data=True):
        task = a.get("task")
        out[k] = a.get("identity") or (task.name if task is not None else task_identity(k))
    return out


def _build_dsk(graph: TaskGraph, inputs: dict[str, Any], run_id: str, cores: dict[Hashable, int]
               ) -> tuple[dict[Hashable, Any], dict[Hashable, Hashable], dict[Hashable, str]]:
    """The Dask task dict of a graph, the Dask key of each node, and each node's output key."""
    dsk: dict[Hashable, Any] = {}
    dkey: dict[Hashable, Hashable] = {}
    out: dict[Hashable, str] = {}
    writer: dict[str, Hashable] = {}
    for k in graph.tasks:
        a = graph.nx.nodes[k]
        if "dask" in a:
            dkey[k] = k
        elif "task" in a:
            # Unique per run: two runs of one pipeline must not share Dask's results.
            dkey[k] = (a["task"].name, run_id)
            out[k] = a["task"].output_key
            writer[a["task"].output_key] = k
        else:
            raise ValueError(f"Task {k!r} has neither a 'task' (pipeline Task) nor a 'dask' "
                             "(Dask task spec) attribute, so there is nothing to run; build the "
                             "graph with Pipeline.compile() or from_dask().")
    for name, value in inputs.items():
        dsk[(name, run_id)] = DataNode((name, run_id), value)
    for k in graph.tasks:
        a = graph.nx.nodes[k]
        if "dask" in a:
            dsk[k] = a["dask"]
            continue
        task = a["task"]
        args = []
        for key in task.inputs:
            if key in writer:
                args.append(TaskRef(dkey[writer[key]]))
            elif key in inputs:
                args.append(TaskRef((key, run_id)))
            else:
                raise ValueError(f"Task {task.name!r} reads {key!r}, which no task writes and "
                                 f"no input gives; pass it in inputs= (given: {sorted(inputs)}).")
        dsk[dkey[k]] = Task(dkey[k], _call_task, task, cores.get(k, 1), *args)
    return dsk, dkey, out


def _annotations(graph: TaskGraph, plan: Schedule, workers: list[dict[str, Any]],
                 dkey: dict[Hashable, Hashable], run_id: str, pin: bool) -> dict[str, Any]:
    """Per-Dask-key annotation callables that make Dask follow ``plan``.

    Raises:
        EngineError: a task asks for resources no worker has.
    """
    rank = {dkey[k]: i for i, k in enumerate(plan.start_order())}
    n = len(rank)
    # Threads already gate one-core tasks: the share resource is needed only for wider ones.
    share = all("share" in w["resources"] for w in workers) and any(
        int(c) > 1 for c in plan.cores.values())
    pins: dict[Hashable, list[str]] = {}
    resources: dict[Hashable, dict[str, float]] = {}
    retries: dict[Hashable, int] = {}
    for k in graph.tasks:
        a = graph.nx.nodes[k]
        task = a.get("task")
        need = dict(task.resources) if task is not None else {}
        cores = int(plan.cores.get(k, 1))
        able = [w for w in workers if all(w["resources"].get(r, 0) >= v for r, v in need.items())]
        if not able:
            offered = {w["address"]: w["resources"] for w in workers}
            raise EngineError(
                f"Task {k!r} asks for resources {need}, which no worker has (workers offer "
                f"{offered}); Dask would wait forever. Start workers with them "
                f'(dask worker ... --resources "{",".join(f"{r}={v}" for r, v in need.items())}" '
                "or Engine(resources=...)) or drop the request.")
        w = workers[plan.placements[k].worker]
        if pin and w in able:
            pins[dkey[k]] = [w["address"]]
        if share:
            need["share"] = SHARE_UNITS * cores
        if need:
            resources[dkey[k]] = need
        if task is not None and task.retries:
            retries[dkey[k]] = task.retries

    def priority(key: Hashable) -> int:
        return n - rank.get(key, n)

    return {
        "priority": priority,
        "workers": lambda key: pins.get(key),
        "resources": lambda key: resources.get(key),
        "retries": lambda key: retries.get(key),
        "oag_run": run_id,
    }


def compute(*args: Any, policy: str = "heft", engine: Engine | None = None,
            history: History | None = None, **engine_kwargs: Any) -> tuple[Any, ...]:
    """Plan Dask collections with ``policy`` and compute them with the plan's priorities.

    A drop-in for ``dask.compute``: same arguments, same return value.

    Args:
        *args: Dask collections or delayed objects (or structures holding them).
        policy: a registered scheduler name.
        engine: run on this engine; by default a temporary embedded one (``engine_kwargs``).
        history: refine the plan from it and record the run into it.

    Returns:
        A tuple with one computed value per argument.

    Example:
        >>> import dask
        >>> compute(dask.delayed(sum)([1, 2, 3]), {"k": dask.delayed(len)("abc")},
        ...         n_workers=1, dashboard=False, progress=False)
        (6, {'k': 3})
    """
    if engine is not None:
        return engine.compute(*args, policy=policy, history=history)
    with Engine(**engine_kwargs) as eng:
        return eng.compute(*args, policy=policy, history=history)
