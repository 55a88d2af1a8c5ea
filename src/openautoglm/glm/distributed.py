"""Data-parallel GLM training: the ranks of ``train(..., world_size=k)``.

Every rank draws the SAME global batch of ``batch_size`` windows from the same seeded
generator and keeps its own contiguous slice of ``batch_size / k`` rows; the loss each rank
back-propagates is its rows' summed token loss divided by the GLOBAL token count (times ``k``,
which DDP's gradient average divides out again). So the gradient is the single-process one,
the clip sees the same norm, AdamW takes the same step, and the loss curve is that of
``world_size=1`` up to floating-point summation order (tests/glm/test_distributed.py: 1e-4
after 50 steps). Dropout is the exception: its masks come from each process's own generator,
so with ``dropout > 0`` the curves agree only statistically (each rank then seeds its
generator from ``(seed, rank)``, so a run is still reproducible).

Two ways in:

- a process group already exists (a gang task on the Engine: see
  :mod:`openautoglm.engine.gang`): ``train`` is one rank of it;
- none exists: :func:`launch` makes this process rank 0, starts ``k - 1`` more with
  :mod:`torch.multiprocessing` (spawn), rendezvous over gloo on 127.0.0.1 and a free port,
  and returns rank 0's result.
"""
from __future__ import annotations

import datetime
import socket
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist

__all__ = ["Ranks", "check_world_size", "free_port", "init_group", "launch"]

#: Seconds a rendezvous or a collective may wait for a peer before failing (no hang).
DEFAULT_TIMEOUT = 120.0


def check_world_size(world_size: Any, batch_size: int) -> None:
    """A ValueError naming ``world_size`` unless it is an int >= 1 that divides the batch."""
    if not isinstance(world_size, int) or isinstance(world_size, bool) or world_size < 1:
        raise ValueError(f"train: world_size must be a positive int (ranks), got {world_size!r}")
    if batch_size % world_size:
        raise ValueError(f"train: batch_size={batch_size} does not split over world_size="
                         f"{world_size} ranks: use a batch_size divisible by {world_size}")


class Ranks:
    """This process's place in data-parallel training: ``rank``, ``world_size``, its rows."""

    def __init__(self, world_size: int, batch_size: int) -> None:
        check_world_size(world_size, batch_size)
        self.world_size = world_size
        self.rank = 0
        if world_size > 1:
            if not dist.is_initialized():
                raise RuntimeError("Ranks needs an initialised process group")  # launch() made one
            if dist.get_world_size() != world_size:
                raise ValueError(f"train: world_size={world_size} but the process group has "
                                 f"{dist.get_world_size()} ranks: pass world_size="
                                 f"{dist.get_world_size()} (or gang.world_size)")
            self.rank = dist.get_rank()
        share = batch_size // world_size
        self.rows = slice(self.rank * share, (self.rank + 1) * share)

    def part(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """This rank's rows of a global batch (the batch itself on one rank)."""
        if self.world_size == 1:
            return batch
        return {k: v[self.rows] for k, v in batch.items()}

    def total(self, value: torch.Tensor) -> float:
        """The sum of ``value`` over the ranks."""
        if self.world_size == 1:
            return float(value.detach())
        value = value.detach().clone()
        dist.all_reduce(value)
        return float(value)

    def agree(self, flag: bool) -> bool:
        """Rank 0's ``flag``, on every rank (the callback runs on rank 0 only)."""
        if self.world_size == 1:
            return flag
        t = torch.tensor([1 if flag else 0])
        dist.broadcast(t, src=0)
        return bool(t.item())

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """The model that back-propagates: DDP over the group when there are several ranks."""
        if self.world_size == 1:
            return model
        return torch.nn.parallel.DistributedDataParallel(model)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on ``host`` a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def init_group(rank: int, world_size: int, addr: str, port: int, backend: str = "gloo",
               timeout: float = DEFAULT_TIMEOUT) -> None:
    """Join the process group at ``tcp://addr:port``; a missing peer fails after ``timeout`` s."""
    dist.init_process_group(backend, init_method=f"tcp://{addr}:{port}", rank=rank,
                            world_size=world_size,
                            timeout=datetime.timedelta(seconds=timeout))


def _rank_main(rank: int, world_size: int, port: int, threads: int, timeout: float,
               train: Callable[..., Any], kwargs: dict[str, Any]) -> None:
    """A spawned rank (1..k-1): join the group, train, leave."""
    torch.set_num_threads(threads)
    init_group(rank, world_size, "127.0.0.1", port, timeout=timeout)
    try:
        train(world_size=world_size, **kwargs)
    finally:
        dist.destroy_process_group()


def launch(train: Callable[..., Any], world_size: int, kwargs: dict[str, Any],
           timeout: float = DEFAULT_TIMEOUT) -> Any:
    """Run ``train(world_size=k, **kwargs)`` as k local processes; rank 0 is this one.

    The other ranks get ``kwargs`` without ``callback`` (it runs on rank 0 only) and the
    torch thread count of this process.

    Raises:
        RuntimeError: a rank exited with an error (its exit code), or this process is already
            in a process group.
    """
    import torch.multiprocessing as mp

    if dist.is_initialized():
        raise RuntimeError("train(world_size=k) launches its own ranks, but this process is "
                           "already in a process group: pass world_size equal to the group's")
    import multiprocessing

    if multiprocessing.current_process().daemon:
        raise RuntimeError(f"train(world_size={world_size}) cannot start its ranks from a daemonic "
                           "process (such as a Dask worker's): run it as a gang task, "
                           "Task(..., gang=k) calling train(..., world_size=gang.world_size)")
    ctx = mp.get_context("spawn")
    port = free_port()
    others = {k: v for k, v in kwargs.items() if k != "callback"}
    procs = [ctx.Process(target=_rank_main, daemon=True,
                         args=(r, world_size, port, torch.get_num_threads(), timeout, train,
                               others))
             for r in range(1, world_size)]
    for p in procs:
        p.start()
    try:
        init_group(0, world_size, "127.0.0.1", port, timeout=timeout)
        try:
            result = train(world_size=world_size, **kwargs)
        finally:
            dist.destroy_process_group()
    finally:
        for p in procs:
            p.join(timeout)
            if p.is_alive():
                p.terminate()
                p.join()
    failed = {r: p.exitcode for r, p in enumerate(procs, 1) if p.exitcode != 0}
    if failed:
        raise RuntimeError(f"train(world_size={world_size}): ranks {sorted(failed)} exited with "
                           f"codes {list(failed.values())}; see their tracebacks above")
    return result
