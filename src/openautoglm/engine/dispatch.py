"""A TaskGraph and its plan turned into one annotated Dask graph: each task's cores and
worker restrictions, its priority, and the key prefixes that history identities follow.
"""
from __future__ import annotations

import sys
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

from dask._task_spec import DataNode, Task, TaskRef

from openautoglm.core.graph import TaskGraph
from openautoglm.engine.faults import EngineError, call_with_timeout

if TYPE_CHECKING:
    from openautoglm.simulate.schedule import Schedule

__all__ = ["EngineError"]


#: Resource units per core: integer units, because Dask loses slots with fractional resources.
SHARE_UNITS = 1000


def _call_task(task: Any, cores: int, *args: Any) -> Any:
    """Run a pipeline task with ``cores`` threads (the plan's share), within its ``timeout``."""
    timeout = getattr(task, "timeout", None)
    if timeout is None:
        return _call_with_cores(task, cores, *args)
    return call_with_timeout(_call_with_cores, (task, cores, *args), timeout, task.name)


def _call_with_cores(task: Any, cores: int, *args: Any) -> Any:
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


def _prefix(key: Hashable) -> str:
    from dask.utils import key_split

    return key_split(key)


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
                 dkey: dict[Hashable, Hashable], run_id: str, pin: bool,
                 priorities: bool = True) -> dict[str, Any]:
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
        placed = plan.placements.get(k)  # none when the run steps aside for Dask
        w = workers[placed.worker] if placed is not None else None
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
        **({"priority": priority} if priorities else {}),
        "workers": lambda key: pins.get(key),
        "resources": lambda key: resources.get(key),
        "retries": lambda key: retries.get(key),
        "oag_run": run_id,
    }
