"""Gang tasks: one task that holds ``k`` workers at once (distributed training, MPI-style jobs).

Cast of characters:

- ``gang``: ``k``, the workers a task needs together (node attribute ``gang``, default 1).
  ``graph.cost`` holds its run time at speed 1 *on k workers*
  (:func:`openautoglm.core.gang.gang_cost`: per-k costs, or Amdahl's law with a communication
  term).
- ``members``: the k distinct workers of a placement, rank 0 first. Every member holds the
  task's cores from the same start to the same finish; the slowest member sets the pace.
- Data: every member needs every input (each rank reads them), so the gang starts once the
  inputs reached all members; its output lives on rank 0's worker (what dependents fetch).

::

    worker 0  |--a--|=======g=======|         g: gang of 2 on workers 0 and 1, starts when
    worker 1  |--b-----|~~|=======g=======|   both are free and a's and b's data reached both
    worker 2  |----c----|                     (~: transfer). Here worker 1 is free at 3 and the
                                              data there at 4: g starts at 4 on both.

The list scheduler places a gang at the start where k workers are free together for its whole
run (idle gaps included), choosing among the k-sets the one that finishes first
(:func:`place_gang`). Read ``tests/simulate/test_gang.py``.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from openautoglm.core.costs import amdahl
from openautoglm.simulate._reference import data_ready_times, priority_order

if TYPE_CHECKING:
    from openautoglm.simulate.schedule import Schedule

__all__ = ["place_gang", "run_list_gangs"]


def place_gang(sched: Schedule, i: int, k: int, d: np.ndarray, cores: int, lo: np.ndarray,
               pin: int = -1) -> tuple[tuple[int, ...], float, float]:
    """The k-set of workers and start that finish gang task ``i`` first.

    Args:
        sched: the schedule so far (its timelines).
        i: the task's index.
        k: its gang size.
        d: (W,) its run time if that worker were the slowest member (inf: not allowed there).
        cores: cores it holds on each member.
        lo: (W,) earliest start on each worker: when its inputs arrive there (or later, without
            insertion).
        pin: rank 0's worker when >= 0.

    Returns:
        ``(members, start, finish)``, rank 0 first; ties: earlier start, faster, lower indices.

    Raises:
        ValueError: fewer than k workers can run it.
    """
    W = len(d)
    allowed = [w for w in range(W) if math.isfinite(d[w])]
    if len(allowed) < k or (pin >= 0 and pin not in allowed):
        raise ValueError(f"task {sched.graph.tasks[i]!r} needs {k} workers at once but only "
                         f"{len(allowed)} can run it (cluster of {W}); lower its gang or its cores")
    C = sched.cluster.cores
    best: tuple[float, float, float] | None = None
    chosen: tuple[int, ...] = ()
    # The slowest member sets the duration: try each possible pace, fastest first.
    for pace in sorted({float(d[w]) for w in allowed}):
        able = [w for w in allowed if d[w] <= pace]
        if len(able) < k or (pin >= 0 and pin not in able):
            continue
        floor = max(sorted(float(lo[w]) for w in able)[k - 1], float(lo[pin]) if pin >= 0 else 0.0)
        if best is not None and floor + pace >= best[0]:
            continue
        # Candidate starts: when some worker's data arrives or some busy step ends.
        times = {float(lo[w]) for w in able if lo[w] >= floor}
        times.add(floor)
        for w in able:
            times.update(t for t in sched._T[w] if t > floor)
        for t in sorted(times):
            if best is not None and t + pace >= best[0]:
                break
            free = [w for w in able if lo[w] <= t and
                    sched._overload(w, t, pace, cores, int(C[w])) is None]
            if len(free) >= k and (pin < 0 or pin in free):
                free.sort(key=lambda w: (w != pin, d[w], w))
                key = (t + pace, t, pace)
                if best is None or key < best:
                    best, chosen = key, tuple(free[:k])
                break
    if best is None:  # pragma: no cover - the end of every timeline is free for any span
        raise AssertionError("no start found for a gang task")
    return chosen, best[1], best[0]


def run_list_gangs(sched: Schedule, prio: np.ndarray, K: np.ndarray, dur: np.ndarray,
                   insertion: bool, gang: np.ndarray, pin: np.ndarray | None = None) -> None:
    """The list-scheduling loop with gang tasks (pure Python).

    Tasks with ``gang == 1`` are placed as :func:`~openautoglm.simulate._reference.run_list_python`
    places them (earliest finish, ties to the lower worker, insertion into idle gaps); a gang
    task goes to :func:`place_gang` and holds ``min(K[i])`` cores on each member. ``pin[i] >= 0``
    fixes a gang's rank-0 worker (the durations of single-worker tasks already carry pins).
    """
    g = sched.graph
    W = dur.shape[1]
    C = sched.cluster.cores
    et, par = sched._et, g.parallel
    wrange = np.arange(W)
    for i in priority_order(g, prio):
        drt = data_ready_times(sched, i, wrange)
        lo = drt if insertion else np.maximum(drt, sched._last_start)
        if gang[i] > 1:
            kc = int(K[i].min())
            d = et[i] * amdahl(par[i], kc)
            d = np.where(C >= kc, d, np.inf)
            members, s, f = place_gang(sched, i, int(gang[i]), d, kc, lo,
                                       -1 if pin is None else int(pin[i]))
            sched._place_gang(i, members, s, kc, f)
        else:
            best = (math.inf, 0.0, -1)
            for w in range(W):
                if not math.isfinite(dur[i, w]):
                    continue
                s = sched._earliest_start(w, float(lo[w]), float(dur[i, w]), int(K[i, w]), int(C[w]))
                if s + dur[i, w] < best[0]:
                    best = (s + float(dur[i, w]), s, w)
            f, s, w = best
            sched._place(i, w, s, int(K[i, w]), f)
