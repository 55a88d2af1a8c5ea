"""Dask's records of a run turned into its tables (:func:`collect_run`): the per-task timings of
:class:`~openautoglm.engine.report.RunResult` and the Execution/Transfer rows written to History.

A run that stopped (a task failed, the deadline, lost workers, a lost scheduler) raises the error
that :mod:`openautoglm.engine.failures` builds, after its rows are written.
"""
from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

from openautoglm.core.costs import amdahl
from openautoglm.engine.failures import (fault_rows, gather_outputs, scheduler_lost_error,
                                         stop_error)
from openautoglm.engine.faults import RunWatch, pop_losses
from openautoglm.engine.plugins import RECORDER
from openautoglm.engine.report import RunResult
from openautoglm.history.cost_model import node_identities
from openautoglm.history.rows import Execution, Transfer

if TYPE_CHECKING:
    from distributed import Client


    from openautoglm.core.graph import TaskGraph
    from openautoglm.history.store import History
    from openautoglm.simulate.schedule import Schedule

__all__ = ["collect_run"]


# -- turning Dask's records into a result ----------------------------------------------------
def collect_run(client: Client, graph: TaskGraph, plan: Schedule, workers: list[dict[str, Any]],
                futures: dict[Hashable, Any], outcome: str, inputs: dict[str, Any],
                out: dict[Hashable, str], dkey: dict[Hashable, Hashable], run_id: str,
                started: float, history: History | None, name: str, policy: str,
                watch: RunWatch) -> RunResult:
    """Gather outputs and records of a finished (or stopped) run; store it; raise on failure.

    ``outcome`` is the engine's wait loop's (``"ok"``, ``"error"``, ``"timeout"``...). Takes
    the Dask client the run was submitted through, not the Engine: this module sits below
    ``engine.py`` and imports nothing of it.
    """
    from openautoglm.engine.plugins import pop_failures, pop_records

    outcome, gathered = gather_outputs(client, futures, outcome, watch)
    if outcome == "scheduler-lost":  # nothing more can be asked of the cluster
        done = sum(f.status == "finished" for f in futures.values())
        if history is not None:
            history.record_run([], run_id=run_id, pipeline=name, policy=policy,
                               n_workers=len(workers), started=started, finished=time.time(),
                               planned_makespan=float(plan.makespan), status="error")
        raise scheduler_lost_error(client.scheduler.address, run_id, done, len(futures),
                                   time.time() - started)
    wall = time.time() - started
    records = client.run_on_scheduler(pop_records, run_id=run_id)
    losses = client.run_on_scheduler(pop_losses, run_id=run_id, recorder=RECORDER)
    # A worker that died near the end can still be on the scheduler's list: the broadcast to it
    # fails (CommClosedError). What it recorded died with it; the others' records are kept.
    per_worker = client.run(pop_failures, run_id=run_id, on_error="ignore")
    attempts = [a for per in per_worker.values() for a in per]
    node_of = {v: k for k, v in dkey.items()}
    addr = [w["address"] for w in workers]
    windex = {a: i for i, a in enumerate(addr)}
    ident = node_identities(graph)
    times, executions, transfers = _tables(graph, plan, records, node_of, windex, ident, addr)
    failures = []
    for a in attempts:
        k = node_of.get(a["key"], a["key"])
        failures.append({"task": k, "worker": a["worker"], "error": a["exception_text"],
                         "traceback": a["traceback_text"]})
        executions.append(_failed_execution(a, k, ident.get(k, str(k)), times))
    executions.extend(fault_rows(losses, watch, node_of, ident, outcome))
    starts = [t["start"] for t in times if t["start"] is not None]
    makespan = max(t["finish"] for t in times if t["finish"] is not None) if starts else 0.0

    result = RunResult()
    if out:  # a pipeline: every key by its name, the inputs included
        result.update(inputs)
        result.update({out[k]: v for k, v in gathered.items()})
    else:
        result.update(gathered)
    result.run_id, result.graph, result.schedule, result.workers = run_id, graph, plan, addr
    result.times, result.makespan, result.planned_makespan = times, makespan, float(plan.makespan)
    result.wall_time, result.failures = wall, failures
    if history is not None:
        history.record_run(executions, transfers, run_id=run_id, pipeline=name, policy=policy,
                           n_workers=len(addr), started=started, finished=time.time(),
                           planned_makespan=result.planned_makespan, realised_makespan=makespan,
                           status=outcome if outcome in ("ok", "timeout") else "error")
    if outcome != "ok":
        raise stop_error(outcome, result, records, futures, node_of, attempts, losses, graph, watch)
    return result


def _tables(graph: TaskGraph, plan: Schedule, records: list[dict[str, Any]],
            node_of: dict[Hashable, Hashable], windex: dict[str, int], ident: dict[Hashable, str],
            addr: list[str]) -> tuple[list[dict[str, Any]], list[Any], list[Any]]:
    by_node = {node_of[r["key"]]: r for r in records if r["key"] in node_of}
    compute = {}
    for k, r in by_node.items():
        cs = [s for s in r["startstops"] if s.get("action") == "compute"]
        compute[k] = (cs[-1]["start"], cs[-1]["stop"]) if cs else (None, None)
    t0 = min((s for s, _ in compute.values() if s is not None), default=0.0)
    times, executions, transfers = [], [], []
    speeds = plan.cluster.speeds
    par = graph.parallel.tolist()
    for k in graph.tasks:
        p = plan.placements.get(k)
        r = by_node.get(k)
        start, stop = compute.get(k, (None, None))
        w = windex.get(r["worker"], -1) if r else None
        cores = int(plan.cores.get(k, 1))
        row = {
            "task": k, "identity": ident[k], "status": r["status"] if r else "cancelled",
            "worker": w, "start": None if start is None else start - t0,
            "finish": None if stop is None else stop - t0,
            "duration": None if start is None else stop - start,
            "planned_worker": p.worker if p else None, "planned_start": p.start if p else None,
            "planned_finish": p.finish if p else None,
            "planned_duration": (p.finish - p.start) if p else None, "cores": cores,
            "nbytes": r["nbytes"] if r else 0,
        }
        times.append(row)
        if r is None or r["status"] != "ok":
            continue
        deps = {node_of.get(d, d): n for d, n in r["deps"]}
        moved = {d: n for d, n in deps.items() if d in by_node and by_node[d]["worker"] != r["worker"]}
        speed = float(speeds[w]) if w is not None and 0 <= w < len(speeds) else 1.0
        executions.append(Execution(
            task=str(k), identity=ident[k], status="ok", worker=r["worker"], start=start, end=stop,
            duration=row["duration"], cost=row["duration"] * speed / amdahl(par[graph.index[k]], cores),
            cores=cores, input_size=int(sum(deps.values())), output_size=int(r["nbytes"]),
            bytes_moved=int(sum(moved.values())), planned_start=row["planned_start"],
            planned_finish=row["planned_finish"]))
        transfers.extend(_transfers(k, r, moved, by_node, ident))
    times.sort(key=lambda t: (t["start"] is None, t["start"] or 0.0))
    return times, executions, transfers


def _transfers(k: Hashable, r: dict[str, Any], moved: dict[Hashable, int],
               by_node: dict[Hashable, dict[str, Any]], ident: dict[Hashable, str]) -> list[Any]:
    """One Transfer per moved dependency; a gather's time is shared by bytes among its keys."""
    spent: dict[str, float] = defaultdict(float)
    for s in r["startstops"]:
        if s.get("action") == "transfer":
            spent[s.get("source")] += s["stop"] - s["start"]
    per_source: dict[str, list[Hashable]] = defaultdict(list)
    for d in moved:
        per_source[by_node[d]["worker"]].append(d)
    rows = []
    for src, deps in per_source.items():
        total = sum(moved[d] for d in deps) or 1
        for d in deps:
            share = spent.get(src, 0.0) * (moved[d] / total if total else 1 / len(deps))
            rows.append(Transfer(str(d), str(k), ident[d], ident[k], int(moved[d]), share,
                                 src, r["worker"]))
    return rows


def _failed_execution(a: dict[str, Any], k: Hashable, identity: str, times: list[dict[str, Any]]) -> Any:
    dur = a["stop"] - a["start"] if a["start"] is not None and a["stop"] is not None else None
    # A task past its Task(timeout=...) raised TaskTimeoutError (exception_text is its repr).
    timed_out = str(a["exception_text"] or "").startswith("TaskTimeoutError(")
    return Execution(task=str(k), identity=identity, status="timeout" if timed_out else "error",
                     worker=a["worker"],
                     start=a["start"], end=a["stop"], duration=dur,
                     error=f"{a['exception_text']}\n{a['traceback_text'] or ''}")
