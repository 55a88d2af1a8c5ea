"""Checks shared by every scheduler test in the project.

``assert_valid_schedule(schedule)`` re-derives everything from the placements alone (it does not
trust the Schedule's own timelines), like dask's ``assert_topological_sort``:

- every task is placed exactly once, on an existing worker, with 1..cores[worker] cores;
- finish = start + the cost model's run time;
- a task starts after each dependency finished, plus ``size / bandwidth`` across workers;
- no worker ever runs more cores than it has;
- the makespan is never below :func:`~openautoglm.simulate.lower_bound`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from openautoglm.simulate import Schedule

__all__ = ["assert_valid_schedule", "check_schedule"]

_REL_TOL = 1e-9


def _close_below(a: float, b: float) -> bool:
    """True when ``a`` is below ``b`` by more than rounding."""
    return a + 1e-7 * max(1.0, abs(b)) < b


def check_schedule(schedule: Schedule, complete: bool = True) -> list[str]:
    """Every way ``schedule`` breaks the cost model, as readable messages (empty when valid).

    Args:
        schedule: the schedule to check.
        complete: also require every task of the graph to be placed.
    """
    g, c = schedule.graph, schedule.cluster
    problems: list[str] = []
    et = g.exec_time(c)
    pl = schedule.placements
    if complete:
        missing = [k for k in g.tasks if k not in pl]
        if missing:
            problems.append(f"{len(missing)} task(s) not placed, e.g. {missing[:3]!r}")
    extra = [k for k in pl if k not in g.index]
    if extra:
        problems.append(f"placements for unknown tasks {extra[:3]!r}")
    events: list[list[tuple[float, int, int]]] = [[] for _ in range(c.n_workers)]
    for key, p in pl.items():
        if key not in g.index:
            continue
        i = g.index[key]
        w, s, f = p
        k = schedule.cores.get(key, 1)
        if not 0 <= w < c.n_workers:
            problems.append(f"task {key!r} on unknown worker {w}")
            continue
        if not 1 <= k <= c.cores[w]:
            problems.append(f"task {key!r} holds {k} cores on worker {w}, which has {c.cores[w]}")
        if not (np.isfinite(s) and s >= 0):
            problems.append(f"task {key!r} starts at {s!r}")
        par = g.parallel[i]
        d = et[i, w] * ((1.0 - par) + par / k)
        if abs((f - s) - d) > 1e-7 * max(1.0, abs(f)):
            problems.append(f"task {key!r} runs {f - s:.9g} s but the cost model says {d:.9g} s")
        for e in range(g.pred_ptr[i], g.pred_ptr[i + 1]):
            dep = g.tasks[g.pred_idx[e]]
            if dep not in pl:
                problems.append(f"task {key!r} is placed but its dependency {dep!r} is not")
                continue
            wd, _, fd = pl[dep]
            arrive = fd + (0.0 if wd == w else g.pred_size[e] / c.bandwidth)
            if _close_below(s, arrive):
                problems.append(f"task {key!r} starts at {s:.9g} on worker {w} before the data of "
                                f"{dep!r} (worker {wd}) arrives at {arrive:.9g}")
        if f > s:
            events[w].append((s, +1, k))
            events[w].append((f, -1, k))
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


def assert_valid_schedule(schedule: Schedule, complete: bool = True) -> None:
    """Fail with every problem listed unless ``schedule`` is valid and not below the lower bound.

    Args:
        schedule: any :class:`~openautoglm.simulate.Schedule` (from any scheduler).
        complete: also require every task to be placed (default).

    Example:
        >>> import networkx as nx, openautoglm as oag
        >>> G = nx.DiGraph([("a", "b")]); nx.set_node_attributes(G, 1.0, "cost")
        >>> s = oag.list_schedule(oag.TaskGraph.from_networkx(G), oag.Cluster.homogeneous(2), [1, 0])
        >>> assert_valid_schedule(s)
    """
    from openautoglm.simulate import lower_bound

    problems = check_schedule(schedule, complete=complete)
    if complete and not problems:
        lb = lower_bound(schedule.graph, schedule.cluster)
        if _close_below(schedule.makespan, lb):
            problems.append(f"makespan {schedule.makespan:.9g} is below the lower bound {lb:.9g}")
    assert not problems, "invalid schedule:\n  " + "\n  ".join(problems)
