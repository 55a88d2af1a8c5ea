"""Gang tasks on Dask: one task, k ranks on k workers at once, joined by torch.distributed.

A pipeline task with ``Task(..., gang=k)`` is planned on k workers (``plan.gangs[task]``, rank 0
first; :mod:`openautoglm.simulate.gang`). The engine runs it like this::

    inputs ──> [coordinator]  (the task's own Dask key, on rank 0's worker; retried by Dask)
                  │ picks a free port on rank 0's host, secedes from its thread
                  ├── submit rank 0 ──> worker A ─┐  init_process_group(gloo, tcp://A:port,
                  └── submit rank 1 ──> worker B ─┘  timeout) -> func(*inputs, gang=GangContext)
               output = rank 0's return value

The task's function receives every input, like any task, plus the keyword ``gang``: a
:class:`GangContext` with ``rank``, ``world_size`` and an initialised default process group
(``torch.distributed`` calls work; ``glm.train(..., world_size=gang.world_size)`` joins it).
The group is destroyed when the function returns.

If one rank raises, the coordinator cancels its siblings and raises a :class:`GangError` that
names the task and the rank; the other ranks stop too, because the failed rank's group is
destroyed (their collective fails at once) or, at worst, after ``timeout`` seconds (every
rendezvous and collective has one: nothing hangs). Dask then retries the coordinator, so the
whole gang runs again as a unit, on a fresh port, up to the task's ``retries``.

Limits: each rank needs its own process (``Engine(processes=True)`` or ``dask worker``
processes; in-process workers are refused before anything runs), and one gang rank at a time
per worker process (a second one waits for the first, up to the timeout). A run that is
cancelled or times out stops waiting for a gang at once, but its ranks, like any Dask task's
thread, finish their function (or fail at their next collective) in the background.
NCCL is used when the task asks for ``resources={"GPU": 1}`` and the worker has CUDA (not
tested here: no GPU); gloo otherwise.
Read tests/engine/test_engine_gang.py.
"""
from __future__ import annotations

import functools
import threading
import uuid
from collections.abc import Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dask._task_spec import Task as DaskTask

from openautoglm.core.graph import TaskGraph
from openautoglm.engine.dispatch import _call_with_cores
from openautoglm.engine.faults import EngineError

if TYPE_CHECKING:
    from openautoglm.simulate.schedule import Schedule

__all__ = ["GangContext", "GangError", "gang_tasks"]

#: Seconds a rendezvous or a collective waits for a missing rank (``Task(timeout=...)`` if set).
DEFAULT_TIMEOUT = 60.0

#: Seconds to wait, after a rank failed, for the others' errors (the cause is reported first).
_GRACE = 5.0

#: Ranks go before every planned task waiting for their worker (the plan's priorities are
#: at most the task count): a rank kept waiting keeps the others waiting at the rendezvous.
_RANK_PRIORITY = 2**31 - 1

_RANK_LOCK = threading.Lock()  # torch.distributed has one default group per process


class GangError(RuntimeError):
    """A rank of a gang task failed (the whole gang failed; Dask retries it as a unit)."""


@dataclass(frozen=True)
class GangContext:
    """What a gang task's function receives as ``gang=``.

    Attributes:
        rank: this rank, ``0 .. world_size - 1`` (rank 0's return value is the task's output).
        world_size: the ranks (the task's ``gang=k``).
        workers: the Dask worker of each rank.
        master_addr, master_port: the rendezvous (rank 0's host, a port free there).
        backend: ``"gloo"`` or ``"nccl"``.
        timeout: seconds a collective may wait for a peer.
    """

    rank: int
    world_size: int
    workers: tuple[str, ...]
    master_addr: str
    master_port: int
    backend: str = "gloo"
    timeout: float = DEFAULT_TIMEOUT

    @property
    def group(self) -> Any:
        """The initialised process group (torch.distributed's default group)."""
        import torch.distributed as dist

        return dist.group.WORLD


@dataclass(frozen=True)
class _GangSpec:
    name: str
    workers: tuple[str, ...]
    timeout: float
    gpu: bool


def gang_tasks(dsk: dict[Hashable, Any], graph: TaskGraph, plan: Schedule,
               workers: list[dict[str, Any]], dkey: dict[Hashable, Hashable]) -> dict[Hashable, Any]:
    """``dsk`` with every gang task's Dask task replaced by its coordinator.

    Raises:
        EngineError: a gang on in-process workers, a gang that is not a pipeline task, or a
            plan without the gang's workers (before anything is submitted).
    """
    gangs = graph.gang.tolist()
    for k, size in zip(graph.tasks, gangs):
        if size <= 1:
            continue
        task = graph.nx.nodes[k].get("task")
        if task is None:
            raise EngineError(f"task {k!r} is a gang (gang={size}) but not a pipeline Task: only "
                              "Task(..., gang=k) functions can run as gangs on Dask")
        members = plan.gangs.get(k)
        if members is None or len(members) != size:
            raise EngineError(f"gang task {k!r} (gang={size}) has no {size} workers in the plan "
                              f"(got {members!r}); plan it with a scheduler that places gangs")
        addresses = tuple(workers[w]["address"] for w in members)
        if any(a.startswith("inproc://") for a in addresses):
            raise EngineError(f"gang task {k!r}: its ranks need one process per worker, but the "
                              "workers are threads of this process; use Engine(processes=True) "
                              "or a cluster of `dask worker` processes")
        spec = _GangSpec(task.name, addresses, task.timeout or DEFAULT_TIMEOUT,
                         bool(task.resources.get("GPU")))
        old = dsk[dkey[k]]
        dsk[dkey[k]] = DaskTask(dkey[k], _run_gang, spec, *old.args)
    return dsk


def _run_gang(spec: _GangSpec, task: Any, cores: int, *args: Any) -> Any:
    """The coordinator: start the k ranks on their workers, return rank 0's result."""
    from distributed import get_worker, worker_client
    from distributed.comm import get_address_host

    members = list(spec.workers)
    me = get_worker().address
    if me in members:  # rank 0 hosts the rendezvous: here, where the free port was found
        members.remove(me)
        members.insert(0, me)
    host = get_address_host(members[0])
    port = _free_port(host if members[0] == me else "")
    attempt = uuid.uuid4().hex[:8]
    with worker_client() as client:  # secedes: this worker's thread is free for rank 0
        futures = []
        for rank, address in enumerate(members):
            ctx = GangContext(rank, len(members), tuple(members), host, port,
                              "nccl" if spec.gpu and _has_cuda() else "gloo", spec.timeout)
            futures.append(client.submit(
                _run_rank, task, cores, ctx, *args, key=f"{spec.name}-rank{rank}-{attempt}",
                workers=[address], allow_other_workers=False, pure=False, retries=0,
                priority=_RANK_PRIORITY))
        try:
            return _first_failure_or_rank0(client, futures, spec.name, members)
        finally:
            client.cancel(futures)


def _first_failure_or_rank0(client: Any, futures: list[Any], name: str, members: list[str]) -> Any:
    """Rank 0's result, or a GangError once a rank fails (every rank's error, the cause first)."""
    from distributed import as_completed, wait

    rank_of = {f.key: r for r, f in enumerate(futures)}
    failed: dict[int, BaseException] = {}
    for fut in as_completed(futures):
        if fut.status == "error":
            failed[rank_of[fut.key]] = fut.exception()
            break
    if not failed:
        return futures[0].result()
    # The other ranks fail within moments (the failed rank's group is gone): wait a little
    # for their errors, so the report leads with the cause, not with "connection reset".
    try:
        wait(futures, timeout=_GRACE)
    except TimeoutError:
        pass
    for r, f in enumerate(futures):
        if r not in failed and f.status == "error":
            failed[r] = f.exception()
    client.cancel(futures)  # any rank still running stops at its next collective
    order = sorted(failed, key=lambda r: (_is_peer_loss(failed[r]), r))
    errors = "; ".join(f"rank {r} (worker {members[r]}) raised {failed[r]!r}" for r in order)
    raise GangError(f"gang task {name!r} failed as a whole ({len(futures)} ranks): "
                    f"{errors}") from failed[order[0]]


def _is_peer_loss(exc: BaseException) -> bool:
    """A rank's error that only says a peer went away (the consequence, not the cause)."""
    text = repr(exc).lower()
    return any(w in text for w in ("gloo", "nccl", "connection reset", "connection closed",
                                   "timed out", "timeout"))


def _run_rank(task: Any, cores: int, ctx: GangContext, *args: Any) -> Any:
    """One rank: join the group, run the task's function with ``gang=ctx``, leave the group."""
    import datetime

    import torch.distributed as dist

    # A rank of a failed attempt may still be finishing here (a thread cannot be stopped; it
    # ends at its next collective, or after the timeout): wait for it, within the timeout.
    if not _RANK_LOCK.acquire(timeout=ctx.timeout):
        raise GangError(f"gang task {task.name!r}: another gang rank held this worker process "
                        f"for {ctx.timeout:g} s (one rank per process at a time)")
    try:
        if ctx.backend == "nccl":
            import torch

            torch.cuda.set_device(0)
        dist.init_process_group(ctx.backend, init_method=f"tcp://{ctx.master_addr}:{ctx.master_port}",
                                rank=ctx.rank, world_size=ctx.world_size,
                                timeout=datetime.timedelta(seconds=ctx.timeout))
        try:
            return _call_with_cores(functools.partial(task.func, gang=ctx), cores, *args)
        finally:
            dist.destroy_process_group()
    finally:
        _RANK_LOCK.release()


def _free_port(host: str) -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _has_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())
