"""Run a plan for real on Dask: the :class:`Engine` and :func:`compute`.

A run goes: graph (or pipeline) -> history refines its costs -> a policy plans it on the
Cluster that the Dask workers form -> ONE task graph is submitted with per-key annotations that
make Dask follow the plan -> the scheduler plugin records what really happened -> history.

How the plan is honoured (see /work/shared/notes/dask.md for the measurements behind it):

- ``priority = -(rank of planned start)``: Dask orders by ``(-priority, generation, dask.order)``
  so the user's value wins over ``dask.order``.
- ``workers=[address]`` (strict: never stolen) for the worker the plan chose; if that worker
  dies, the scheduler plugin drops the pin so the task runs elsewhere (see ``faults``).
- ``resources={"share": units * cores}`` on workers that declare ``share`` (the embedded
  cluster gives each worker ``units * threads``, 1000 units per core: integer units, since
  fractional resources lose slots), plus the task's own resources (``{"GPU": 1}``).
- ``retries`` from the task. Inside the task, ``torch.set_num_threads(cores)`` (restored after).
- A gang task (``Task(gang=k)``) runs as k ranks on its planned workers (``engine/gang.py``).

Read ``tests/engine/test_engine.py``: each of these is checked against the order and placement Dask
actually used, as recorded on the scheduler.
"""
from __future__ import annotations

import logging
import os
import sys
import time
import uuid
from collections.abc import Hashable, Mapping
from typing import TYPE_CHECKING, Any

import dask
from dask.highlevelgraph import HighLevelGraph, MaterializedLayer

from openautoglm.core.cluster import Cluster
from openautoglm.core.graph import TaskGraph
from openautoglm.engine.dispatch import (
    SHARE_UNITS,
    EngineError,
    _annotations,
    _build_dsk,
    _prefix,
)
from openautoglm.engine.drift import annotate_estimates, pop_corrections
from openautoglm.engine.faults import RunWatch, SchedulerLostError
from openautoglm.engine.gang import gang_tasks
from openautoglm.engine.install import InstallError, check_versions, find_wheel, ship
from openautoglm.engine.modes import compute_collections
from openautoglm.engine.plugins import (
    RECORDER,
    FailureRecorder,
    RunRecorder,
    pop_records,
    seed_durations,
)
from openautoglm.engine.record import collect_run
from openautoglm.engine.report import RunResult
from openautoglm.history.cost_model import node_identities
from openautoglm.schedulers import schedule

if TYPE_CHECKING:
    from openautoglm.history.store import History
    from openautoglm.pipeline import Pipeline
    from openautoglm.simulate.schedule import Schedule

__all__ = ["Engine", "EngineError", "RunCancelledError", "SchedulerLostError", "compute"]

logger = logging.getLogger(__name__)


class RunCancelledError(EngineError):
    """The run was cancelled with :meth:`Engine.cancel` before it finished."""



def _worker_on(host: str) -> Any:
    """A Dask ``Worker`` class whose HTTP server listens on ``host`` (threads mode: no nanny)."""
    from distributed import Worker

    class LoopbackWorker(Worker):
        def __init__(self, *args: Any, dashboard_address: str | None = None, **kwargs: Any) -> None:
            super().__init__(*args, dashboard_address=dashboard_address or f"{host}:0", **kwargs)

    return LoopbackWorker


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
        no_worker_timeout: seconds a run waits when some of its tasks can run on no worker in
            the cluster (all workers died, or the only ones with a needed resource) before
            failing with :class:`~openautoglm.engine.faults.WorkerLostError`.
        metrics: an :class:`~openautoglm.engine.metrics.EngineMetrics` to report plans and runs
            to (opt-in Prometheus metrics; ``None``: none).
        install: remote cluster: ship this openautoglm to the scheduler and workers that lack
            it (``pip install`` of a wheel through a Dask worker plugin, workers that join
            later included): ``True`` for the wheel of this version in the source checkout's
            ``dist/``, or the path of a wheel. Without it, a remote cluster must already have
            this version (checked).
        host: embedded cluster: the interface the scheduler, workers and dashboard listen on;
            ``"127.0.0.1"`` (default) keeps them off the network (they have no
            authentication); pass ``"0.0.0.0"`` only on a trusted network.

    Raises:
        EngineError: the address cannot be reached within ``timeout`` (names the address); a
            cluster process lacks openautoglm or has another version, or cannot install it
            (names the process and what to do).

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
                 progress: bool | None = None, timeout: float = 10.0,
                 no_worker_timeout: float = 30.0, metrics: Any = None,
                 install: bool | str | os.PathLike = False,
                 host: str = "127.0.0.1") -> None:
        from distributed import Client, LocalCluster

        if not isinstance(host, str) or not host:
            raise ValueError(f"host must be an interface address such as '127.0.0.1', got {host!r}")
        self.progress = progress
        self.metrics = metrics
        self._active: dict[str, dict[Hashable, Any]] = {}  # run id -> futures, while it runs
        self._cancelled: set[str] = set()
        self._dashboard = dashboard
        self._host = host
        self.speeds = speeds
        self.no_worker_timeout = _seconds("no_worker_timeout", no_worker_timeout)
        self.cluster = None
        #: The RunResult of the last ``compute`` (its ``decision`` says which mode and why).
        self.last_run: RunResult | None = None
        if install and address is None:
            raise ValueError("install= ships openautoglm to a remote cluster (address=...); the "
                             "embedded cluster runs this process's openautoglm already.")
        try:  # a wrong wheel is refused before connecting
            wheel = find_wheel(install) if install else None
        except InstallError as e:
            raise EngineError(str(e)) from e
        if address is None:
            n_workers = min(4, os.cpu_count() or 1) if n_workers is None else n_workers
            if n_workers < 1 or threads_per_worker < 1:
                raise ValueError(f"n_workers={n_workers} and threads_per_worker="
                                 f"{threads_per_worker} must be >= 1")
            res = {"share": SHARE_UNITS * threads_per_worker, **dict(resources or {})}
            # Late queuing decisions. Work stealing stays on (Dask's default): pinned tasks
            # are never stolen, and runs that step aside or give priorities only are Dask's.
            with dask.config.set({"distributed.scheduler.worker-saturation": 1.0}):
                self.cluster = LocalCluster(
                    n_workers=n_workers, threads_per_worker=threads_per_worker,
                    processes=processes, resources=res,
                    # A random port: several engines (and users) on one machine do not collide.
                    # Every listener on `host` (127.0.0.1 by default: no open port on the
                    # network); threads use the in-process transport, which has no host.
                    # In-process workers' HTTP server (metrics, health) on `host` too, with
                    # their dashboards off (bokeh would add seconds to the first start).
                    **({"host": host} if processes else {"worker_class": _worker_on(host)}),
                    dashboard_address=f"{host}:0",
                    scheduler_kwargs={"dashboard": dashboard},
                )
            self.client = Client(self.cluster)
            # The client's view of the workers is refreshed every few seconds: wait until it
            # shows them, or a plan made right away would see an empty cluster.
            self.client.wait_for_workers(n_workers, timeout=max(60.0, timeout))
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
                if wheel is not None:
                    ship(self.client, wheel, preload=(RunRecorder.__module__,))
                check_versions(self.client)
            except InstallError as e:
                self.close()
                raise EngineError(str(e)) from e
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
            port = self.client.scheduler_info().get("services", {}).get("dashboard")
        except Exception:
            return None
        if not port:
            return None
        if self.cluster is not None:
            # Dask formats the link with the machine's address, but the embedded dashboard
            # listens on `host` only (127.0.0.1 by default): link to where it really is.
            return f"http://{self._host}:{port}/status"
        return self.client.dashboard_link

    def workers(self) -> list[dict[str, Any]]:
        """The Dask workers, sorted by address: ``address``, ``nthreads``, ``resources``."""
        # Asked afresh: client.scheduler_info() returns a cache that the client's periodic
        # update (which omits workers) can overwrite under load, giving no workers at all.
        info = self.client.sync(self.client.scheduler.identity, n_workers=-1)["workers"]
        return [{"address": a, "nthreads": w["nthreads"], "resources": w.get("resources", {}),
                 "name": w.get("name")} for a, w in sorted(info.items())]

    def cluster_model(self, workers: list[dict[str, Any]] | None = None) -> Cluster:
        """The :class:`~openautoglm.core.cluster.Cluster` to plan on: one worker per Dask worker.

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
        if history is not None:
            graph = history.refine(graph)
        cluster = cluster or self.cluster_model()
        started = time.perf_counter()
        plan = schedule(graph, cluster, policy=policy)
        if self.metrics is not None:
            self.metrics.observe_plan(policy, time.perf_counter() - started)
        return graph, plan

    def run(self, work: TaskGraph | Pipeline, policy: str = "heft", inputs: Mapping[str, Any] | None = None,
            history: History | None = None, *, plan: Schedule | None = None,
            keys: list[Hashable] | None = None, name: str | None = None,
            pin: bool | None = None, timeout: float | None = None,
            run_id: str | None = None) -> RunResult:
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
            timeout: seconds the whole call may take; then the run is cancelled and
                :class:`~openautoglm.engine.faults.RunTimeoutError` names the tasks still running
                (its ``partial`` holds the outputs already computed). ``None``: no limit (each
                task's own ``Task(timeout=...)`` still applies).
            run_id: the run's id (default a new random one), for :meth:`run_progress` and
                :meth:`cancel` from another thread.

        Returns:
            A :class:`~openautoglm._run.RunResult`: a dict of outputs (for a pipeline, every
            key, inputs included) with ``schedule``, per-task ``times``, ``makespan`` and
            ``report(path)``.

        Raises:
            openautoglm.pipeline.TaskFailedError: a task still raised after its retries; its
                ``partial`` holds every output already computed, ``result`` the run's record.
            EngineError: a request no worker can satisfy (before anything is submitted);
                :class:`~openautoglm.engine.faults.WorkerLostError` (workers died and some tasks
                can run nowhere), ``SchedulerLostError``, ``RunTimeoutError``.
            RunCancelledError: :meth:`cancel` stopped the run.
        """
        from openautoglm.pipeline import Pipeline

        deadline = None if timeout is None else time.monotonic() + _seconds("timeout", timeout)
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
        if self.metrics is None:
            return self._execute(graph, plan, workers, inputs, history, keys, name or "graph",
                                 policy, pin, (deadline, timeout), run_id)
        self.metrics.in_progress.inc()
        result, status = None, "error"
        try:
            result = self._execute(graph, plan, workers, inputs, history, keys, name or "graph",
                                   policy, pin, (deadline, timeout), run_id)
            status = "ok"
            return result
        except RunCancelledError:
            status = "cancelled"
            raise
        except Exception as exc:
            result = getattr(exc, "result", None)
            raise
        finally:
            self.metrics.in_progress.dec()
            self.metrics.observe_run(result, policy, status)

    def run_progress(self, run_id: str) -> tuple[int, int] | None:
        """``(finished, total)`` outputs of a run in progress; ``None`` if it is not running."""
        futures = self._active.get(run_id)
        if futures is None:
            return None
        values = list(futures.values())
        return sum(f.status == "finished" for f in values), len(values)

    def cancel(self, run_id: str) -> bool:
        """Cancel a run in progress (its ``run`` raises :class:`RunCancelledError`).

        A run still being planned is cancelled as soon as it is submitted.

        Returns:
            Whether the run had been submitted to Dask.
        """
        self._cancelled.add(run_id)
        futures = self._active.get(run_id)
        if futures is None:
            return False
        self.client.cancel(list(futures.values()))
        return True

    def compute(self, *args: Any, policy: str = "heft", history: History | None = None,
                mode: str = "auto", **kwargs: Any) -> tuple[Any, ...]:
        """Plan Dask collections and compute them: a drop-in for ``dask.compute``.

        Each run chooses how much of the plan Dask follows (``mode="auto"``): strict pins,
        priorities only, or stepping aside (plain Dask) when the plan's predicted gain does
        not beat the uncertainty of its costs; see :mod:`openautoglm.engine.modes`. The
        decision is ``engine.last_run.decision`` and is stored in ``history``.

        Args:
            *args: what ``dask.compute`` takes.
            policy: the scheduling policy that plans.
            history: costs from earlier runs; this run is recorded into it.
            mode: ``"auto"``, or force ``"strict"``, ``"priorities"`` or ``"dask"``.
            **kwargs: ``backup=True`` (pure tasks only: re-run a straggling critical task on
                another worker), ``optimize_graph``, ``traverse`` as for ``dask.compute``.

        Returns:
            What ``dask.compute(*args)`` returns.
        """
        return compute_collections(self, args, policy=policy, history=history, mode=mode,
                                   **kwargs)

    def _execute(self, graph: TaskGraph, plan: Schedule, workers: list[dict[str, Any]],
                 inputs: dict[str, Any], history: History | None, keys: list[Hashable] | None,
                 name: str, policy: str, pin: bool | None = None,
                 limit: tuple[float | None, float | None] = (None, None),
                 run_id: str | None = None, *, priorities: bool = True,
                 estimates: bool = False, backup: bool = False) -> RunResult:
        run_id = run_id or uuid.uuid4().hex[:12]
        cores = {k: int(c) for k, c in plan.cores.items()}
        dsk, dkey, out = _build_dsk(graph, inputs, run_id, cores)
        if keys is None:
            keys = graph.nx.graph.get("dask_keys") or list(graph.tasks)
        if pin is None:
            # Placement is only worth forcing when the costs mean something: not when they
            # are Dask's blanket 500 ms guesses (then Dask's data locality does better).
            pin = not any(a.get("cost_source") == "dask-default" for _, a in graph.nx.nodes(data=True))
        annotations = _annotations(graph, plan, workers, dkey, run_id, pin, priorities)
        dsk = gang_tasks(dsk, graph, plan, workers, dkey)  # k ranks per gang (engine/gang.py)
        if estimates:
            annotate_estimates(self.client, annotations, plan, dkey, backup)
        if history is not None:
            durations = history.durations()
            seed = {_prefix(dkey[k]): durations[i] for k, i in node_identities(graph).items()
                    if i in durations}
            if seed:
                self.client.run_on_scheduler(seed_durations, durations=seed)
        started = time.time()
        # Per-key annotations ride on a layer: keys whose value is None get none (unpinned).
        layer = MaterializedLayer(dsk, annotations=annotations)
        hlg = HighLevelGraph({f"openautoglm-{run_id}": layer}, {f"openautoglm-{run_id}": set()})
        futures = self.client.get(hlg, [dkey[k] for k in keys], sync=False)
        futures = dict(zip(keys, futures))
        watch = RunWatch(self.client, run_id, RECORDER, limit[0], self.no_worker_timeout,
                         timeout=limit[1])
        self._active[run_id] = futures
        try:
            if run_id in self._cancelled:  # cancelled while it was being planned
                self.client.cancel(list(futures.values()))
            outcome = self._wait(futures, watch)
        finally:
            self._active.pop(run_id, None)
        if run_id in self._cancelled:
            self._cancelled.discard(run_id)
            self.client.cancel(list(futures.values()))
            self.client.run_on_scheduler(pop_records, run_id=run_id)
            raise RunCancelledError(f"run {run_id} was cancelled; nothing of it is recorded")
        corrections = pop_corrections(self.client, run_id) if estimates else []
        result = collect_run(self.client, graph, plan, workers, futures, outcome, inputs, out, dkey,
                             run_id, started, history, name, policy, watch)
        result.corrections = corrections
        return result

    def _wait(self, futures: dict[Hashable, Any], watch: RunWatch) -> str:
        """Wait for every future or the first error; a progress bar once it takes over a second.

        Polls the futures' states (set by the client's event loop) with a growing interval:
        ``as_completed`` would cost two cross-thread callbacks per future, which for 5,000
        trivial tasks is seconds of contention with the scheduler.

        A ``"lost"`` future (its result was on a worker that died) is waited for: Dask
        recomputes it. ``watch`` stops the wait at the run's deadline, when tasks can run on no
        worker in the cluster, or when the scheduler is gone.

        Returns:
            ``"ok"``, ``"error"`` (a task failed), ``"cancelled"`` (the cluster cancelled the
            run's tasks), or ``watch.reason`` (``"timeout"``, ``"stuck"``, ``"scheduler-lost"``).
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
                    if status in ("pending", "lost"):
                        still.append(f)
                    elif status == "error":
                        return "error"
                    elif status == "cancelled":
                        return "scheduler-lost" if watch.scheduler_lost() else "cancelled"
                pending = still
                if pending and watch.check():
                    return watch.reason
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
                    # Short: each poll is cheap, and every ms waited after the last result
                    # is a ms plain dask.compute does not pay.
                    delay = min(0.02, delay * 1.5)
        finally:
            if bar is not None:
                bar.update(job, completed=len(futures) - len(pending))
                bar.stop()
        return "ok"

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


def _seconds(name: str, value: Any) -> float:
    """A limit in seconds: a number > 0 (``inf`` allowed: no limit)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a number of seconds > 0 (float('inf'): no limit), "
                         f"got {value!r}")
    return float(value)


def compute(*args: Any, policy: str = "heft", engine: Engine | None = None,
            history: History | None = None, mode: str = "auto", backup: bool = False,
            **engine_kwargs: Any) -> tuple[Any, ...]:
    """Plan Dask collections with ``policy`` and compute them, or step aside for Dask.

    A drop-in for ``dask.compute``: same arguments, same return value. ``mode="auto"``
    chooses per run between strict pins, the plan's priorities only and plain Dask (see
    :meth:`Engine.compute`); the decision is ``engine.last_run.decision``.

    Args:
        *args: Dask collections or delayed objects (or structures holding them).
        policy: a registered scheduler name.
        engine: run on this engine; by default a temporary embedded one (``engine_kwargs``).
        history: refine the plan from it and record the run into it.
        mode: ``"auto"``, ``"strict"``, ``"priorities"`` or ``"dask"``.
        backup: pure tasks only: a critical task straggling on a slow worker is re-run on
            another one (see :mod:`openautoglm.engine.drift`).

    Returns:
        A tuple with one computed value per argument.

    Example:
        >>> import dask
        >>> compute(dask.delayed(sum)([1, 2, 3]), {"k": dask.delayed(len)("abc")},
        ...         n_workers=1, dashboard=False, progress=False)
        (6, {'k': 3})
    """
    if engine is not None:
        return engine.compute(*args, policy=policy, history=history, mode=mode, backup=backup)
    with Engine(**engine_kwargs) as eng:
        return eng.compute(*args, policy=policy, history=history, mode=mode, backup=backup)
