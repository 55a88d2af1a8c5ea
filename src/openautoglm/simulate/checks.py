"""Every way a plan breaks the cost model, as readable messages: the checker behind
``check_schedule``, ``Schedule.validate`` and :func:`openautoglm.testing.assert_valid_schedule`.

It reads plain placements and rebuilds every constraint from scratch (run times, transfers,
core capacity, gang members), independently of how the plan was built, with its own rounding
tolerance (1e-7 relative): a checker that shared the builder's shortcuts would share its bugs.
Tests: ``tests/simulate/test_simulate.py``, ``tests/simulate/test_gang.py``.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from openautoglm._typing import TaskKey, WorkerIndex
from openautoglm.core.cluster import Cluster
from openautoglm.core.costs import amdahl, transfer_time
from openautoglm.core.graph import TaskGraph

__all__ = ["placement_problems", "close_below"]


def placement_problems(g: TaskGraph, c: Cluster,
                       pl: Mapping[TaskKey, tuple[WorkerIndex, float, float]],
                       cores: Mapping[TaskKey, int],
                       gangs: Mapping[TaskKey, tuple[WorkerIndex, ...]],
                       complete: bool = True) -> list[str]:
    """Every way these placements break the cost model (empty when valid).

    Args:
        g: the tasks.
        c: the workers.
        pl: ``(worker, start, finish)`` per placed task (a gang's rank 0 worker).
        cores: cores held per placed task (1 when missing).
        gangs: every member of each gang task, rank 0 first.
        complete: also require every task of the graph to be placed.
    """
    problems: list[str] = []
    et = g.exec_time(c)
    if complete:
        missing = [k for k in g.tasks if k not in pl]
        if missing:
            problems.append(f"{len(missing)} task(s) not placed, e.g. {missing[:3]!r}")
    extra = [k for k in pl if k not in g.index]
    if extra:
        problems.append(f"placements for unknown tasks {extra[:3]!r}")
    events: list[list[tuple[float, int, int]]] = [[] for _ in range(c.n_workers)]
    extra = [k for k in gangs if k in g.index and g.gang[g.index[k]] == 1]
    if extra:
        problems.append(f"gang members given for tasks that are not gangs: {extra[:3]!r}")
    for key, p in pl.items():
        if key not in g.index:
            continue
        i = g.index[key]
        w, s, f = p
        k = cores.get(key, 1)
        members = (w,)
        if g.gang[i] > 1:
            members = tuple(gangs.get(key, ()))
            if (len(set(members)) != g.gang[i] or len(members) != g.gang[i]
                    or members[0] != w):
                problems.append(f"gang task {key!r} needs {g.gang[i]} distinct workers, rank 0 "
                                f"on {w}; it has {members!r}")
                continue
        if not all(0 <= m < c.n_workers for m in members):
            problems.append(f"task {key!r} on unknown worker(s) {members}")
            continue
        if not all(1 <= k <= c.cores[m] for m in members):
            problems.append(f"task {key!r} holds {k} cores on worker(s) {members}, which have "
                            f"{[int(c.cores[m]) for m in members]}")
        if not (np.isfinite(s) and s >= 0):
            problems.append(f"task {key!r} starts at {s!r}")
        d = max(et[i, m] for m in members) * amdahl(g.parallel[i], k)
        if abs((f - s) - d) > 1e-7 * max(1.0, abs(f)):
            problems.append(f"task {key!r} runs {f - s:.9g} s but the cost model says {d:.9g} s")
        for e in range(g.pred_ptr[i], g.pred_ptr[i + 1]):
            dep = g.tasks[g.pred_idx[e]]
            if dep not in pl:
                problems.append(f"task {key!r} is placed but its dependency {dep!r} is not")
                continue
            wd, _, fd = pl[dep]  # a gang's output lives on its rank 0
            for m in members:  # every member reads every input
                arrive = fd + (0.0 if wd == m else float(transfer_time(g.pred_size[e], c)))
                if close_below(s, arrive):
                    problems.append(f"task {key!r} starts at {s:.9g} on worker {m} before the "
                                    f"data of {dep!r} (worker {wd}) arrives at {arrive:.9g}")
        if f > s:
            for m in members:
                events[m].append((s, +1, k))
                events[m].append((f, -1, k))
    problems += _over_capacity(events, c)
    return problems


def _over_capacity(events: list[list[tuple[float, int, int]]], c: Cluster) -> list[str]:
    """Workers whose cores are over-subscribed, from per-worker (time, +1/-1, cores) events."""
    problems: list[str] = []
    for w, ev in enumerate(events):
        # Releases sort before acquisitions at equal times; nudge by rounding tolerance.
        ev.sort(key=lambda x: (x[0] + (-1e-7 * max(1.0, abs(x[0])) if x[1] < 0 else 0.0), x[1]))
        used = 0
        for t, sign, k in ev:
            used += sign * k
            if used > c.cores[w]:
                problems.append(f"worker {w} runs {used} cores at {t:.9g} but has {c.cores[w]}")
                break
    return problems


def close_below(a: float, b: float) -> bool:
    """True when ``a`` is below ``b`` by more than rounding."""
    return a + 1e-7 * max(1.0, abs(b)) < b
