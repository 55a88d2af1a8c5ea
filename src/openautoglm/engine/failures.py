"""A run that stops: gather what it computed, write history rows for what went wrong, and build
the error that says so.

The engine's wait loop ends with an *outcome*: ``"ok"``, ``"error"`` (a task failed),
``"cancelled"``, ``"timeout"`` (``Engine.run(timeout=...)``), ``"stuck"`` (tasks no live worker
can run) or ``"scheduler-lost"``. :func:`gather_outputs` fetches every requested output on
``"ok"`` (waiting while Dask recomputes results lost with a worker: a missing output is never
dropped silently) and what finished otherwise. :func:`stop_error` turns a non-``ok`` outcome
into the error the user sees; :func:`fault_rows` gives history one row per worker death
(``"worker-died"``) and per task cut by the run's deadline (``"timeout"``).
"""
from __future__ import annotations

import asyncio
import time
import traceback
from collections.abc import Callable, Hashable
from typing import Any

from distributed.scheduler import KilledWorker

from openautoglm.engine.faults import (EngineError, RunTimeoutError, RunWatch, SchedulerLostError,
                                       WorkerKilledError, WorkerLostError)
from openautoglm.history.rows import Execution
from openautoglm.pipeline import TaskFailedError

__all__ = ["gather_outputs", "fault_rows", "stop_error", "scheduler_lost_error"]

#: Seconds allowed to gather the outputs that finished, once a run has stopped.
GATHER_GRACE = 30.0


def _gather(client: Any, futures: list[Any], errors: str, stop: Callable[[], str | None]) -> list[Any]:
    """``client.gather`` that gives up as soon as ``stop()`` returns a reason.

    Raises:
        _Stopped: ``stop()`` fired first (the gather is cancelled).
    """
    coro = client.gather(futures, errors=errors, asynchronous=True)
    pending = asyncio.run_coroutine_threadsafe(coro, client.loop.asyncio_loop)
    delay = 0.001
    while True:
        try:
            return pending.result(timeout=delay)
        except TimeoutError:
            pass
        reason = stop()
        if reason is not None:
            pending.cancel()
            raise _Stopped(reason)
        delay = min(0.1, delay * 2)


class _Stopped(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def gather_outputs(client: Any, futures: dict[Hashable, Any], outcome: str,
                   watch: RunWatch) -> tuple[str, dict[Hashable, Any]]:
    """The run's outputs: all of them on ``"ok"``, what finished otherwise.

    On ``"ok"`` a result lost with its worker after the wait (``"lost"`` future) is recomputed
    by Dask and gathered; if that cannot happen (the deadline, no worker left, its task fails),
    the outcome changes and the run stops like any other failure.

    Returns:
        The (possibly changed) outcome, and the outputs by requested key.
    """
    if outcome == "scheduler-lost":
        return outcome, {}
    if outcome == "ok":
        try:
            values = _gather(client, list(futures.values()), "raise", watch.check)
            return "ok", dict(zip(futures, values))
        except _Stopped as e:
            outcome = e.reason
        except Exception:  # a recomputed task failed: its future says how
            outcome = "scheduler-lost" if watch.scheduler_lost() else "error"
        if outcome == "scheduler-lost":
            return outcome, {}
    # Stop the run: nothing more starts; what finished is kept.
    client.cancel([f for f in futures.values() if f.status in ("pending", "lost")])
    finished = {k: f for k, f in futures.items() if f.status == "finished"}
    grace = time.monotonic() + GATHER_GRACE
    try:
        values = _gather(client, list(finished.values()), "skip",
                         lambda: "timeout" if time.monotonic() > grace else None)
    except _Stopped:
        return outcome, {}
    return outcome, {k: v for (k, f), v in zip(finished.items(), values) if f.status == "finished"}


def fault_rows(losses: list[dict[str, Any]], watch: RunWatch, node_of: dict[Hashable, Hashable],
               ident: dict[Hashable, str], outcome: str) -> list[Any]:
    """History rows: one per task a dying worker was running, one per task the deadline cut."""
    rows = []
    for loss in losses:
        if loss["what"] != "running":
            continue
        k = node_of.get(loss["key"], loss["key"])
        start, end = loss["start"], loss["time"]
        rows.append(Execution(
            task=str(k), identity=ident.get(k, str(k)), status="worker-died", worker=loss["worker"],
            start=start, end=end, duration=None if start is None else end - start,
            error=f"worker {loss['worker']} died while running this task "
                  f"(death {loss['deaths']} of this task)"))
    if outcome == "timeout" and watch.state:
        now = time.time()
        for key, (worker, sent) in watch.state["processing"].items():
            k = node_of.get(key, key)
            rows.append(Execution(
                task=str(k), identity=ident.get(k, str(k)), status="timeout", worker=worker,
                start=sent, end=now, duration=None if sent is None else now - sent,
                error=f"still running when engine.run(timeout={watch.timeout:g}) ran out; cancelled"))
    return rows


def stop_error(outcome: str, result: Any, records: list[dict[str, Any]],
               futures: dict[Hashable, Any], node_of: dict[Hashable, Hashable],
               attempts: list[dict[str, Any]], losses: list[dict[str, Any]], graph: Any,
               watch: RunWatch) -> BaseException:
    """The error for a run that stopped with ``outcome``; ``partial`` and ``result`` attached."""
    partial = result.outputs
    if outcome == "timeout":
        running = _running(watch, node_of, futures)
        err: BaseException = RunTimeoutError(
            f"engine.run(timeout={watch.timeout:g}) ran out: the run was cancelled while "
            f"{_names(running, graph)} still ran or waited ({len(partial)} outputs computed, in "
            f"this error's .partial). Raise timeout=, or give the slow task its own "
            f"Task(timeout=...).", watch.timeout or 0.0, running, partial)
    elif outcome == "stuck":
        err = _stuck_error(watch, losses, node_of, graph, partial)
    elif outcome == "cancelled":
        err = EngineError(
            f"the Dask cluster cancelled this run's tasks (scheduler restarted, or another "
            f"client cancelled them); {len(partial)} outputs computed (in .partial). Run again.")
        err.partial = partial  # type: ignore[attr-defined]
    else:
        err = _task_failed(result, records, futures, node_of, attempts, losses, graph)
    err.result = result  # type: ignore[attr-defined]
    return err


def scheduler_lost_error(address: str, run_id: str, n_done: int, n_tasks: int,
                         seconds: float) -> SchedulerLostError:
    return SchedulerLostError(
        f"lost the connection to the Dask scheduler at {address} during run {run_id} (after "
        f"{seconds:.1f} s; {n_done} of {n_tasks} outputs had finished, but their values live on "
        "the workers and cannot be gathered without the scheduler). Restart the scheduler (and "
        "its workers) and run again.")


def _names(keys: list[Hashable], graph: Any, most: int = 8) -> str:
    labels = [_label(k, graph) for k in keys]
    more = f" and {len(labels) - most} more" if len(labels) > most else ""
    return ", ".join(repr(x) for x in labels[:most]) + more if labels else "no task"


def _label(k: Hashable, graph: Any) -> str:
    attrs = graph.nx.nodes.get(k, {})
    return attrs["task"].name if "task" in attrs else str(k)


def _running(watch: RunWatch, node_of: dict[Hashable, Hashable],
             futures: dict[Hashable, Any]) -> list[Hashable]:
    if watch.state and watch.state["processing"]:
        return [node_of.get(k, k) for k in watch.state["processing"]]
    return [k for k, f in futures.items() if f.status != "finished"]


def _stuck_error(watch: RunWatch, losses: list[dict[str, Any]], node_of: dict[Hashable, Hashable],
                 graph: Any, partial: dict[Hashable, Any]) -> WorkerLostError:
    state = watch.state or {"no_worker": [], "workers": 0}
    stuck = [node_of.get(s["key"], s["key"]) for s in state["no_worker"]]
    lost: dict[str, list[Hashable]] = {}
    for loss in losses:
        held = lost.setdefault(loss["worker"], [])
        if loss["what"] == "running":
            held.append(node_of.get(loss["key"], loss["key"]))
    needs = {tuple(sorted(s["resources"].items())) for s in state["no_worker"] if s["resources"]}
    why = (f"no worker is left ({state['workers']} connected)" if not state["workers"] else
           f"no live worker offers the resources they need ({', '.join(map(str, map(dict, needs)))})"
           if needs else "no live worker can take them")
    died = "; ".join(f"{w} (running {_names(ks, graph)})" for w, ks in lost.items()) or "none seen"
    return WorkerLostError(
        f"{_names(stuck, graph)} cannot run: {why}, for {watch.no_worker_timeout:g} s "
        f"(Engine(no_worker_timeout=...)). Workers lost during this run: {died}. "
        f"{len(partial)} outputs computed (in .partial). Start workers "
        "(with the resources these tasks ask for) and run again.", lost, stuck, partial)


def _task_failed(result: Any, records: list[dict[str, Any]], futures: dict[Hashable, Any],
                 node_of: dict[Hashable, Hashable], attempts: list[dict[str, Any]],
                 losses: list[dict[str, Any]], graph: Any) -> BaseException:
    """The TaskFailedError for the task that failed first (not its erred dependents)."""
    erred = [r for r in records if r["status"] == "error"]
    bad = [k for k, f in futures.items() if f.status == "error"]
    if not erred and not bad:
        return EngineError(
            f"the run stopped but no task reports an error ({len(result)} outputs computed, in "
            ".partial); this is a bug in openautoglm's engine: please report it.")
    task = node_of.get(erred[0]["key"], erred[0]["key"]) if erred else node_of.get(bad[0], bad[0])
    f = futures.get(task)
    if f is None or f.status != "error":
        f = futures[bad[0]] if bad else None
    cause: BaseException | None = f.exception() if f is not None else None
    tb = f.traceback() if f is not None else None
    tb_text = "".join(traceback.format_tb(tb)) if tb is not None else (
        erred[0].get("traceback_text") if erred else None)
    label = _label(task, graph)
    deaths = [x for x in losses if x["what"] == "running" and node_of.get(x["key"], x["key"]) == task]
    if isinstance(cause, KilledWorker) or (cause is None and deaths):
        dask_cause = cause
        cause = WorkerKilledError(label, len(deaths), [x["worker"] for x in deaths])
        cause.__cause__ = dask_cause
    if cause is None:
        cause = RuntimeError(erred[0].get("exception_text") if erred else "unknown error")
    n_attempts = sum(1 for a in attempts if node_of.get(a["key"], a["key"]) == task) + len(deaths)
    err = TaskFailedError(label, n_attempts or 1, cause, result.outputs)
    err.traceback = tb_text  # type: ignore[attr-defined]
    err.__cause__ = cause
    return err
